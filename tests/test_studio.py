"""The LF studio: its views, its security checks, and the page in a real headless Chromium."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipelines import weak_label
from pipelines.studio import Studio, create_app, quick_lf_line, serve, with_quick_lf
from tests.test_images import LF_SOURCE as IMAGE_LFS  # LFs over a "brightness" field
from tests.test_iterate import _argv, _synthetic_session
from transforms.core.labeler import LabelerConfig

ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SYNTHETIC_LFS = "from transforms import keyword_lf\n\n" + "".join(
    f'kw_{j} = keyword_lf("kw_{j}", ["w{j}x"], {j % 2})\n' for j in range(8)
)
TOKEN = "test-token"


@pytest.fixture()
def studio(tmp_path):
    path = tmp_path / "lfs.py"
    path.write_text(SYNTHETIC_LFS)
    return Studio(_synthetic_session(LabelerConfig()), str(path), str(tmp_path / "export"))


@pytest.fixture()
def client(studio):
    return create_app(studio, TOKEN).test_client()


def _get(client, path, **headers):
    return client.get(path, headers={"X-Studio-Token": TOKEN, **headers})


def test_quick_lf_lines_are_literals_and_bad_fields_are_named():
    assert quick_lf_line({"kind": "keyword", "name": "has_free", "words": "free, win", "label": "1"}) == (
        "has_free = keyword_lf('has_free', ['free', 'win'], 1)\n"
    )
    assert quick_lf_line({"kind": "regex", "name": "r", "pattern": "it's (free|win)\nimport os", "label": 0}) == (
        "r = regex_lf('r', \"it's (free|win)\\nimport os\", 0)\n"
    )
    for form, message in (
        ({"kind": "keyword", "name": "x = 1; y", "words": "a", "label": 1}, "not a Python identifier"),
        ({"kind": "keyword", "name": "x", "words": " , ", "label": 1}, "at least one keyword"),
        ({"kind": "keyword", "name": "x", "words": "a", "label": "one"}, "not a class number"),
        ({"kind": "sql", "name": "x", "label": 1}, "kind 'sql' is unknown"),
    ):
        with pytest.raises(ValueError, match=message):
            quick_lf_line(form)
    assert with_quick_lf("X = 1\n", "y = 2\n") == "X = 1\nfrom transforms import keyword_lf, regex_lf\ny = 2\n"


def test_requests_need_the_token_a_local_host_and_the_same_origin(client):
    assert client.get("/api/state").status_code == 403
    assert client.get("/?token=wrong").status_code == 403
    assert client.get(f"/?token={TOKEN}").status_code == 200
    assert _get(client, "/api/state", Origin="http://evil.example").status_code == 403
    assert _get(client, "/api/state", **{"Sec-Fetch-Site": "cross-site"}).status_code == 403
    assert _get(client, "/api/state", Host="evil.example:8765").status_code == 403
    assert _get(client, "/api/state", Origin="http://localhost").status_code == 200
    page = client.get(f"/?token={TOKEN}")
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    assert client.get("/static/studio.js").status_code == 200


def test_a_quick_keyword_lf_changes_the_table_and_metrics_and_shows_gained_examples(client, studio):
    before = _get(client, "/api/state").get_json()
    assert [row["lf"] for row in before["lf_table"]] == [f"kw_{j}" for j in range(8)]
    assert before["applied"] == []  # the file's LFs are the session's: nothing re-applied
    response = client.post("/api/quick_lf", headers={"X-Studio-Token": TOKEN},
                           json={"kind": "keyword", "name": "kw_extra", "words": "w9x, w11x", "label": "1"})
    state = response.get_json()
    assert response.status_code == 200 and state["applied"] == ["kw_extra"]
    assert state["lf_table"][-1]["lf"] == "kw_extra" and state["refit"] == "fast"
    assert "kw_extra = keyword_lf('kw_extra', ['w9x', 'w11x'], 1)" in Path(studio.lf_path).read_text()
    assert state["metrics"]["tune"]["delta_accuracy"] is not None and state["changed_count"] >= 0
    details = _get(client, "/api/lf/kw_extra").get_json()
    assert details["gained_count"] > 0
    gained = details["gained"][0]
    assert gained["source_id"] != gained["id"] and 0 < gained["similarity"] <= 1
    row = int(np.searchsorted(studio.session.ids, gained["source_id"]))
    assert studio.session.votes[row, -1] == 1  # the source neighbour voted
    assert _get(client, "/api/lf/nope").status_code == 404
    hits = _get(client, "/api/search?q=W9X").get_json()
    assert hits["count"] > 0 and all("w9x" in hit["text"] for hit in hits["hits"])
    written = client.post("/api/export", headers={"X-Studio-Token": TOKEN}, json={}).get_json()["written"]
    assert pq.read_table(written["labels"]).num_rows == len(studio.session.ids)
    assert "kw_extra" in Path(written["labeling_functions"]).read_text()
    assert "kw_extra" in Path(written["report"]).read_text()


def test_edits_in_another_editor_and_broken_files_are_picked_up(client, studio):
    version = _get(client, "/api/state").get_json()["version"]
    assert _get(client, f"/api/state?since={version}").get_json() == {"version": version, "unchanged": True}
    path = Path(studio.lf_path)
    path.write_text(SYNTHETIC_LFS.replace('["w3x"]', '["w3x", "w5x"]'))
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    state = _get(client, f"/api/state?since={version}").get_json()
    assert state["applied"] == ["kw_3"] and state["version"] == version + 1
    path.write_text("def broken(:\n")
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 2 * 10**9))
    state = _get(client, "/api/state").get_json()
    assert "failed to import" in state["error"] and len(state["lf_table"]) == 8  # last good state kept


def _chrome(profile: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1400,1000", f"--user-data-dir={profile}"):  # fmt: skip
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


needs_chromium = pytest.mark.skipif(
    not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
    reason=f"{CHROMIUM} or {CHROMEDRIVER} is absent (apt-get install chromium chromium-driver)",
)


@contextlib.contextmanager
def _browse(studio: Studio, profile: Path, lf_rows: int):
    """Serves ``studio``, opens its page in headless Chromium once the LF table has ``lf_rows``
    rows, yields ``(driver, wait)``; afterwards checks the page logged no console error."""
    pytest.importorskip("selenium")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    server = serve(studio)
    driver = _chrome(profile)
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        wait = WebDriverWait(driver, 30)
        driver.get(server.url)
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#lf_table tr.lf")) == lf_rows)
        yield driver, wait
        errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        assert errors == [], errors
    finally:
        driver.quit()
        server.stop()


@pytest.mark.chromium
@needs_chromium
def test_studio_in_headless_chromium(corpus_files, tiny_model, tmp_path):
    pytest.importorskip("selenium")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    from pipelines.iterate import Session

    cache = str(tmp_path / "cache")
    weak_label.run(_argv(corpus_files, tiny_model, str(tmp_path / "out"), corpus_files["lfs"], "--cache_dir", cache))
    session = Session.open(cache, corpus_files["lfs"])
    studio = Studio(session, corpus_files["lfs"], str(tmp_path / "export"))
    with _browse(studio, tmp_path / "profile", lf_rows=6) as (driver, wait):
        metrics_before = driver.find_element(By.ID, "metrics").text
        driver.save_screenshot(str(ARTIFACTS / "studio_loaded.png"))

        form = driver.find_element(By.ID, "keyword_form")
        form.find_element(By.NAME, "name").send_keys("has_free")
        form.find_element(By.NAME, "words").send_keys("free, win, plz")
        Select(form.find_element(By.NAME, "label")).select_by_visible_text("SPAM")
        form.find_element(By.CSS_SELECTOR, "button").click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#lf_table tr.applied[data-lf='has_free']"))
        assert "applied has_free" in driver.find_element(By.ID, "status").text
        assert "keyword_lf('has_free'" in driver.find_element(By.ID, "source").get_property("value")
        assert driver.find_element(By.ID, "metrics").text != metrics_before
        driver.save_screenshot(str(ARTIFACTS / "studio_after_edit.png"))

        driver.find_element(By.CSS_SELECTOR, "#lf_table tr[data-lf='has_free']").click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#gained .doc .source"))
        source = driver.find_element(By.CSS_SELECTOR, "#gained .doc .source").text
        assert source.startswith("from neighbour doc") and "similarity" in source
        driver.save_screenshot(str(ARTIFACTS / "studio_gained.png"))


def test_studio_command_names_a_missing_file_or_cache(tmp_path, capsys):
    from pipelines import cli

    assert cli.main(["studio", "--cache_dir", str(tmp_path), "--labeling_functions", str(tmp_path / "no.py")]) == 2
    assert "is not a file" in capsys.readouterr().err
    lfs = tmp_path / "lfs.py"
    lfs.write_text(SYNTHETIC_LFS)
    assert cli.main(["studio", "--cache_dir", str(tmp_path), "--labeling_functions", str(lfs)]) == 2
    assert "run the pipeline with --cache_dir first" in capsys.readouterr().err


# ---------------------------------------------------------------- non-text documents

MARKUP = '<img src=x onerror="document.title=1"><b id="xss-marker">frame</b>'


def _png(level: float) -> str:
    import base64
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), int(255 * level), np.uint8)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


@pytest.fixture()
def image_studio(tmp_path):
    """A studio over image rows: no text, fields ``brightness``, ``frame``, ``image`` (PNG), ``note``."""
    import json

    import pyarrow as pa

    from pipelines.iterate import Session
    from transforms.labeling_functions import load_lf_set

    rng = np.random.default_rng(5)
    n = 120
    y = rng.integers(0, 2, n)
    brightness = np.clip(0.25 + 0.5 * y + rng.normal(0, 0.15, n), 0, 1)
    fields = [
        json.dumps({"brightness": float(b), "frame": i, "image": _png(b), "note": MARKUP})
        for i, b in enumerate(brightness)
    ]
    same = [np.flatnonzero(y == c) for c in (0, 1)]
    neighbours = np.stack([rng.choice(same[c], 5) for c in y])
    sims = np.sort(rng.uniform(0.5, 0.95, neighbours.shape), axis=1)[:, ::-1].astype(np.float32)
    dev = rng.random(n) < 0.3
    path = tmp_path / "image_lfs.py"
    path.write_text(IMAGE_LFS)
    session = Session(
        ids=np.asarray([f"frame{i:03d}" for i in range(n)]), texts=pa.array([""] * n), fields_json=fields,
        gold=np.where(dev, y, -1), eval_gold=np.where(dev, y, -1), split=np.where(dev, "tune", "corpus"),
        neighbours=neighbours, sims=sims, embeddings=None, lfs=load_lf_set(str(path)).lfs,
        votes=np.stack([np.where(brightness > 0.6, 1, -1), np.where(brightness < 0.4, 0, -1)], axis=1),
        config=LabelerConfig(end_model=False, min_gold=10), class_names=("dark", "bright"),
    )  # fmt: skip
    return Studio(session, str(path), str(tmp_path / "export"))


def test_non_text_documents_show_their_id_fields_and_a_thumbnail(image_studio):
    from pipelines import studio_views

    session, result = image_studio.session, image_studio.result
    details = studio_views.lf_details(session, result, "bright")
    assert details["votes_count"] > 0 and details["gained_count"] > 0
    for doc in details["votes"] + details["gained"] + [d["source"] for d in details["gained"]]:
        assert doc["thumbnail"].startswith("data:image/png;base64,iVBOR"), doc["id"]
        assert doc["id"].startswith("frame") and "image=[image]" in doc["text"]
        assert f"brightness={session.fields(int(doc['id'][5:]))['brightness']:.4g}" in doc["text"]
    assert details["votes"][0]["meta"][0] == details["votes"][0]["id"]
    page = studio_views.report_html(session, result)  # the export's report.html: escaped, thumbnails
    assert '<b id="xss-marker">' not in page and "&lt;b id=&quot;xss-marker&quot;&gt;" not in page  # no examples
    assert "bright" in page and 'id="lf-table"' in page


@pytest.mark.chromium
@needs_chromium
def test_non_text_documents_in_headless_chromium(image_studio, tmp_path):
    pytest.importorskip("selenium")
    from selenium.webdriver.common.by import By

    with _browse(image_studio, tmp_path / "profile", lf_rows=2) as (driver, wait):
        driver.find_element(By.CSS_SELECTOR, "#lf_table tr[data-lf='bright']").click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#gained .doc .source img.thumbnail"))
        images = driver.find_elements(By.CSS_SELECTOR, "#lf_details .doc img.thumbnail")
        assert images and all(driver.execute_script("return arguments[0].naturalWidth", img) == 8 for img in images)
        doc = driver.find_element(By.CSS_SELECTOR, "#lf_details .doc")
        assert doc.get_attribute("data-id").startswith("frame")
        assert "brightness=" in doc.text and "frame=" in doc.text and "image=[image]" in doc.text
        assert driver.find_elements(By.ID, "xss-marker") == [] and driver.title == "epoxy-beam LF studio"
        assert 'note=<img src=x onerror="document.title=1">' in doc.text  # markup in a field shows as text
        driver.save_screenshot(str(ARTIFACTS / "studio_non_text.png"))
