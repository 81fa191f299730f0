"""epoxy-beam: weak labeling at corpus scale on Apache Beam."""

import setuptools

# The pins below were checked together on Python 3.11: scann 1.4.2 needs
# TensorFlow 2.20.x, tensorflow_hub imports pkg_resources (setuptools < 81),
# and Beam 2.77 bounds numpy < 2.5 and pyarrow < 26.
INSTALL_REQUIRES = [
    "apache-beam==2.77.*",
    "numpy>=1.26,<2.5",
    "pyarrow>=14,<26",
    "scann==1.4.2",
    "tensorflow~=2.20.0",
    "tf-keras~=2.20.0",
    "tensorflow-hub==0.16.1",
    "tensorflow-text~=2.20.0",
    "safetensors>=0.4",
    "matplotlib>=3.8,<4",
    "setuptools<81",
    # The LF studio (epoxy-beam studio): a local Flask app.
    "flask>=3.1,<3.2",
]

DASK_REQUIRES = ["dask==2026.8.0", "distributed==2026.8.0"]

EXTRAS_REQUIRE = {
    # tests/test_dask_runner.py runs the job on a LocalCluster, so CI installs the dask extra.
    # tests/test_dataflow_job.py builds the job for DataflowRunner offline (--dry_run).
    # selenium drives Debian's chromium + chromium-driver in tests/test_studio.py.
    "test": ["pytest>=8", "selenium>=4.30,<5", *DASK_REQUIRES, "apache-beam[gcp]==2.77.*"],
    # --runner=DaskRunner (pipelines/dask_runner.py): a Dask cluster, local or remote.
    "dask": DASK_REQUIRES,
    "dataflow": ["apache-beam[gcp]==2.77.*"],
    # examples/digits/render_data.py renders scikit-learn's bundled digits.
    "examples": ["scikit-learn==1.5.2"],
    # The PyTorch reference for tests/test_reference_equivalence.py and the embedder benchmarks.
    # torch must be the CPU wheel (PyTorch's CPU index), or pip pulls a multi-GB CUDA build.
    "reference": ["torch==2.13.0", "sentence-transformers==6.2.0", "transformers==5.24.0"],
    # The DagBag import test (tests/test_airflow_dag.py); Airflow recommends its own
    # environment with its constraints file, see docs in README "Run nightly".
    "airflow": [
        "apache-airflow>=2.9,<3",
        "apache-airflow-providers-google>=22",
        "apache-airflow-providers-apache-beam>=6",
    ],
}

setuptools.setup(
    name="epoxy-beam",
    version="0.1.0",
    description="Weak labeling at corpus scale on Apache Beam (Epoxy extension + label model).",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10,<3.13",
    packages=setuptools.find_packages(include=["pipelines", "pipelines.*", "transforms", "transforms.*"]),
    include_package_data=True,
    package_data={"pipelines": ["studio_static/*"]},
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
    entry_points={"console_scripts": ["epoxy-beam=pipelines.cli:main"]},
    license="Apache-2.0",
)
