"""RUN/report.html: written by pretrain, refreshed by evaluate, rebuilt by `selfsup report`; self-contained, escaped,
every section present when its file is, a one-line "not available" otherwise; rendered in headless chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import yaml

from selfsup import api
from selfsup.report import REPORT_FILE, refresh_report, write_report
from selfsup.report.curves import plotted_columns, read_metrics
from selfsup.report.embeddings import SAMPLE_FILE

from cli_checks import assert_one_line_error, run_cli
from conftest import write_class_folder

FAST = {"encoder": "tiny_cnn", "batch_size": 8, "image_size": 16, "progress_bar": False}
EVERY_STEP = {"trainer.log_every": 1, "trainer.health_every": 1}
SECTIONS = ("settings", "quality", "training", "method", "evaluation", "map", "neighbours")


class Page(HTMLParser):
    """The sections, <img> and every src/href of a page."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.images: list[dict[str, str]] = []
        self.links: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self.sections.append(attrs["id"])
        if tag == "img":
            self.images.append(attrs)
        self.links += [value for key, value in attrs.items() if key in ("src", "href") and value is not None]


def section(html: str, anchor: str) -> str:
    found = re.search(rf'<section id="{anchor}">(.*?)</section>', html, flags=re.S)
    assert found, f"no section {anchor}"
    return found.group(1)


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    """A tiny image run: pretrained 6 steps (report read back right after), then evaluated with two baselines."""
    root = tmp_path_factory.mktemp("report")
    train = write_class_folder(root / "train", per_class=8, seed=1)
    test = write_class_folder(root / "test", per_class=5, seed=2)
    run = api.pretrain(train, "simclr", root / "run", max_steps=6, overrides=EVERY_STEP, **FAST)
    after_pretrain = (run / REPORT_FILE).read_text(encoding="utf-8")
    api.evaluate(run, train, test, protocols=["knn", "linear"], label_fractions=[0.5, 1.0], baseline="scratch,pixels")
    return {"root": root, "run": run, "train": train, "test": test, "after_pretrain": after_pretrain}


def test_pretrain_writes_the_report_and_says_what_is_missing(image_run):
    html = image_run["after_pretrain"]
    assert Page(html).sections == list(SECTIONS)
    assert "not available: run `selfsup evaluate" in section(html, "evaluation")
    assert "not available: run `selfsup inspect DATA --run" in section(html, "quality")
    assert "not available: the method was given (simclr)" in section(html, "method")
    # the map embeds the training data through the modality: 24 images, no labels
    assert "DATA holds</td><td>24 images" in section(html, "settings")
    assert "t-SNE of 24 embeddings from the training data" in section(html, "map")
    neighbours = section(html, "neighbours")
    assert neighbours.count("<figure") == 6 * 6 and "cosine " in neighbours
    assert len(re.findall(r'alt="training curves"', html)) == 1
    panels = plotted_columns(read_metrics(image_run["run"] / "metrics.csv"))  # what that image draws
    assert panels[:5] == ["loss_step", "lr", "samples_per_s", "health/embedding_std", "health/rankme"]


def test_evaluate_refreshes_it_with_the_table_every_baseline_and_labelled_map(image_run):
    run = image_run["run"]
    html = (run / REPORT_FILE).read_text(encoding="utf-8")
    evaluation = section(html, "evaluation")
    assert 'alt="label efficiency"' in evaluation
    header = re.findall(r"<th>(.*?)</th>", evaluation)
    assert header == ["protocol", "fraction", "n_labels", "pretrained", "scratch", "pixels", "gain"]
    results = json.loads((run / "eval.json").read_text())["results"]
    for r in results:  # every value of eval.json is in the table
        assert f'<td class="num">{r["value"]:.4f}</td>' in evaluation
    with np.load(run / SAMPLE_FILE) as sample:  # evaluate kept the pretrained encoder's test embeddings
        assert sample["features"].shape[0] == 15 and sorted(set(sample["labels"])) == ["blob", "hstripes", "vstripes"]
        references = [Path(p) for p in sample["references"]]
    assert all(p.is_file() and p.is_relative_to(image_run["test"]) for p in references)
    assert "t-SNE of 15 embeddings from the labelled test set" in section(html, "map")
    assert "coloured by label" in section(html, "map")
    neighbours = section(html, "neighbours")
    assert neighbours.count("label: ") == 6 * 6 and 'class="match"' in neighbours
    assert neighbours.count('class="thumb"') == 6 * 6  # every example is an image thumbnail


def test_the_report_is_self_contained(image_run):
    page = Page((image_run["run"] / REPORT_FILE).read_text(encoding="utf-8"))
    assert page.images and all(img["src"].startswith("data:image/png;base64,") for img in page.images)
    assert all(link.startswith(("data:", "#")) for link in page.links), page.links
    assert "http" not in "".join(page.links)
    assert "<script" not in (image_run["run"] / REPORT_FILE).read_text(encoding="utf-8")


def test_every_section_shows_its_file_when_present(image_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(image_run["run"], run)
    first = next(image_run["train"].rglob("*.png"))
    (run / "inspection.json").write_text(json.dumps({
        "unreadable": ["broken.png"], "exact_duplicates": [[str(first), "copy.png"]],
        "near_duplicates": [{"a": str(first), "b": "near.png", "similarity": 0.97}],
        "leaks": [{"data": str(first), "against": "test/x.png", "similarity": 0.99}],
        "outliers": [{"path": "odd.png", "score": 3.5}], "num_files": 24}))
    (run / "health.json").write_text(json.dumps({
        "alarms": [{"step": 3, "metric": "health/rankme", "value": 1.2, "floor": 2.0,
                    "message": "RankMe below its floor: the embeddings collapsed"}],
        "stopped_at": 4, "healthy_checkpoint": "checkpoints/healthy.ckpt"}))
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["auto"] = {"candidates": ["simclr", "byol"], "chosen": "byol", "reason": "highest RankMe", "pilot_minutes": 1.5,
                      "heldout": {"path": "RUN/auto/heldout.txt", "count": 8},
                      "scores": {"simclr": {"rankme": 5.0, "alpha_req": 1.1, "probe_knn": None, "score": 0.4},
                                 "byol": {"rankme": 7.0, "alpha_req": 0.9, "probe_knn": None, "score": 0.6}}}
    (run / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    html = write_report(run).read_text(encoding="utf-8")
    assert "not available" not in html
    quality = section(html, "quality")
    for finding, count in [("unreadable", 1), ("exact duplicates", 1), ("near duplicates", 1), ("leaks", 1),
                           ("outliers", 1)]:
        assert f"<td>{finding}</td><td class=\"num\">{count}</td>" in quality
    assert "test/x.png" in quality and "0.9900" in quality and "num_files" in quality
    training = section(html, "training")
    assert "RankMe below its floor" in training and "Stopped at step 4" in training
    method = section(html, "method")
    assert "Chosen: <b>byol</b>. highest RankMe" in method and "<td>✔ byol</td>" in method and "7.0000" in method
    assert "Scored on 8 inputs held out of training (RUN/auto/heldout.txt)" in method


def test_hostile_text_is_escaped_and_a_run_without_eval_json_survives(tmp_path):
    hostile = '<script>alert("x")</script> & <img src=x onerror=alert(1)>'
    topics = ["cat dog bird horse cow", "city river mountain garden house"]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(f"{topics[i % 2]} {i} {hostile}" for i in range(40)) + "\n", encoding="utf-8")
    run = api.pretrain(corpus, "simcse", tmp_path / "run", modality="text", batch_size=8, max_length=24,
                       vocab_size=120, max_steps=2, progress_bar=False)
    html = (run / REPORT_FILE).read_text(encoding="utf-8")
    assert not (run / "eval.json").exists() and "not available: run `selfsup evaluate" in html
    assert "<script" not in html and "onerror=alert(1)>" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;img src=x onerror=alert(1)&gt;" in \
        section(html, "neighbours")
    assert [img["alt"] for img in Page(html).images] == ["training curves", "embedding map"]
    views = _check_sample_matches_embed(run, corpus, tmp_path / "texts.parquet")
    assert all(v.caption.endswith(hostile) and v.picture is None for v in views)


def test_missing_or_damaged_parts_never_fail_a_report(image_run, tmp_path, caplog):
    run = tmp_path / "run"
    shutil.copytree(image_run["run"], run)
    (run / "inspection.json").write_text("{not json")
    (run / SAMPLE_FILE).unlink()
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["data"]["path"] = str(tmp_path / "moved away")
    (run / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    html = write_report(run).read_text(encoding="utf-8")
    assert "not available: could not be built (JSONDecodeError" in section(html, "quality")
    assert "not available: the training data" in section(html, "map")
    assert 'alt="label efficiency"' in section(html, "evaluation")  # the other parts stand
    # pretrain/evaluate's refresh: a warning, never an error; `selfsup report` on a non-run: one line
    assert refresh_report(tmp_path / "nothing") is None and "was not written" in caplog.text
    assert_one_line_error(*run_cli(["report", tmp_path / "nothing"])[::2], "not a selfsup run folder", "config.yaml")


def test_selfsup_report_rebuilds_it(image_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(image_run["run"], run)
    (run / REPORT_FILE).unlink()
    code, out, err = run_cli(["report", run])
    assert code == 0, err
    assert out.strip() == f"report: {run / REPORT_FILE}" and (run / REPORT_FILE).stat().st_size > 10_000


CHROMIUM_INSTALL = ".ci/run installs it: apt-get install -y --no-install-recommends chromium chromium-driver"


def test_the_report_renders_in_headless_chromium(image_run, tmp_path):
    """No console error (SEVERE), every image decodes (naturalWidth > 0), a screenshot is kept."""
    from selenium import webdriver  # the dev extra: make test installs it

    if shutil.which("chromium") is None or shutil.which("chromedriver") is None:
        missing = f"chromium or chromedriver is not installed; {CHROMIUM_INSTALL}"
        if os.environ.get("SELFSUP_REQUIRE_BROWSER"):  # set by .ci/run: there the browser check must run
            pytest.fail(missing)
        pytest.skip(missing)
    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(flag)
    options.binary_location = shutil.which("chromium")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = webdriver.ChromeService(executable_path=shutil.which("chromedriver"))
    driver = webdriver.Chrome(options=options, service=service)
    try:
        driver.get((image_run["run"] / REPORT_FILE).resolve().as_uri())
        widths = driver.execute_script(
            "return Array.from(document.images).map(i => i.complete ? i.naturalWidth : 0)")
        sections = driver.execute_script("return Array.from(document.querySelectorAll('section')).map(s => s.id)")
        severe = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        height = driver.execute_script("return document.body.scrollHeight")
        driver.set_window_size(1280, min(int(height), 8000))
        shot = tmp_path / "report.png"
        assert driver.save_screenshot(str(shot))
    finally:
        driver.quit()
    assert severe == []
    assert len(widths) > 36 and all(w > 0 for w in widths), widths
    assert sections == list(SECTIONS)
    assert shot.stat().st_size > 10_000


def _embedded(path: Path) -> dict[str, np.ndarray]:
    """``selfsup embed``'s rows of a .parquet file by their key (path, text or user)."""
    import pyarrow.parquet as pq

    table = pq.read_table(path).to_pydict()
    key = next(k for k in table if k != "embedding")
    return {str(k): np.asarray(v, dtype=np.float32) for k, v in zip(table[key], table["embedding"])}


def _check_sample_matches_embed(run: Path, data: Path, out: Path) -> list:
    """The report's sample of the training data: the embeddings `selfsup embed` writes for the same items; returns
    the modality's views of the first five."""
    from selfsup.artifacts import load
    from selfsup.modalities import get_modality

    loaded = load(run)
    modality = get_modality(loaded.modality)
    sample = modality.report_sample(loaded, data, 7, 0, yaml.safe_load((run / "config.yaml").read_text())["data"], "cpu")
    assert len(sample.references) == 7 == sample.features.shape[0] and sample.total > 7
    rows = _embedded(api.embed(run, data, out))
    for reference, feature in zip(sample.references, sample.features.numpy()):
        np.testing.assert_allclose(feature, rows[reference], rtol=1e-4, atol=1e-5)
    return modality.report_items(loaded, sample.references[:5], {})


def test_audio_report_shows_waveforms_and_durations(tmp_path):
    from test_audio_cli import RATE, SMALL, write_classes

    data = write_classes(tmp_path / "audio", per_class=6, seed=0)
    overrides = [s for s in SMALL if s != "--set"]
    run = api.pretrain(data, None, tmp_path / "run", modality="audio", sample_rate=RATE, clip_seconds=2.0,
                       batch_size=4, max_steps=2, progress_bar=False, overrides=overrides)
    views = _check_sample_matches_embed(run, data, tmp_path / "embedded.parquet")
    assert all(re.fullmatch(r"(high|low)/\w+\.(wav|flac) · 0\.\d\d s", v.caption) for v in views), views
    assert all(v.picture.shape == (48, 160, 3) and (v.picture != 255).any() for v in views)
    html = (run / REPORT_FILE).read_text(encoding="utf-8")
    assert section(html, "neighbours").count('class="thumb"') == 6 * 6


def test_sequence_report_shows_users_by_their_recent_items(tmp_path):
    from test_sequence_eval import write_log

    log, _, _ = write_log(tmp_path)
    run = api.pretrain(log, None, tmp_path / "run", modality="sequence", batch_size=16, max_length=10, max_steps=2,
                       progress_bar=False)
    views = _check_sample_matches_embed(run, log, tmp_path / "users.parquet")
    for view in views:  # user u7 of group b walks b3, b4, ...: its last 8 of 12 items
        user = int(re.match(r"user u(\d+) · 12 items: …, ", view.caption).group(1))
        group = "ab"[user % 2]
        assert view.caption.endswith(", ".join(f"{group}{(user // 2 + t) % 8}" for t in range(4, 12)))
        assert view.picture is None
    assert "<figcaption>user u" in section((run / REPORT_FILE).read_text(encoding="utf-8"), "neighbours")


def test_the_image_sample_is_what_embed_writes(image_run, tmp_path):
    views = _check_sample_matches_embed(image_run["run"], image_run["train"], tmp_path / "images.parquet")
    assert all(v.picture.shape == (64, 64, 3) and v.picture.dtype == np.uint8 for v in views)


def test_the_sample_of_image_shards_is_what_embed_writes(image_run, tmp_path):
    api.shard(image_run["train"], tmp_path / "sh", shard_size="8KB", progress=False)
    views = _check_sample_matches_embed(image_run["run"], tmp_path / "sh", tmp_path / "images.parquet")
    assert all(v.picture is None and v.caption.endswith("(not readable here)") for v in views)  # inside shards
