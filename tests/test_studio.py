"""The LF studio: its views, its security checks, and the page in a real headless Chromium."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipelines import weak_label
from pipelines.studio import Studio, create_app, quick_lf_line, serve, with_quick_lf
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


@pytest.mark.chromium
@pytest.mark.skipif(
    not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
    reason=f"{CHROMIUM} or {CHROMEDRIVER} is absent (apt-get install chromium chromium-driver)",
)
def test_studio_in_headless_chromium(corpus_files, tiny_model, tmp_path):
    pytest.importorskip("selenium")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    from pipelines.iterate import Session

    cache = str(tmp_path / "cache")
    weak_label.run(_argv(corpus_files, tiny_model, str(tmp_path / "out"), corpus_files["lfs"], "--cache_dir", cache))
    session = Session.open(cache, corpus_files["lfs"])
    server = serve(Studio(session, corpus_files["lfs"], str(tmp_path / "export")))
    driver = _chrome(tmp_path / "profile")
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        wait = WebDriverWait(driver, 30)
        driver.get(server.url)
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#lf_table tr.lf")) == 6)
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
        errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        assert errors == [], errors
    finally:
        driver.quit()
        server.stop()


def test_studio_command_names_a_missing_file_or_cache(tmp_path, capsys):
    from pipelines import cli

    assert cli.main(["studio", "--cache_dir", str(tmp_path), "--labeling_functions", str(tmp_path / "no.py")]) == 2
    assert "is not a file" in capsys.readouterr().err
    lfs = tmp_path / "lfs.py"
    lfs.write_text(SYNTHETIC_LFS)
    assert cli.main(["studio", "--cache_dir", str(tmp_path), "--labeling_functions", str(lfs)]) == 2
    assert "run the pipeline with --cache_dir first" in capsys.readouterr().err
