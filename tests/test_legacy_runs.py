"""Run folders written by the selfsup of commit fec26a0 (before the modality packages of issue 17) still
resume, evaluate, embed and export, and their encoders give the embeddings they gave then.

The folders in ``fixtures/legacy_runs/`` were made by ``fixtures/make_legacy_runs.py`` with that code; the
``expected_embeddings.npy`` beside each is what ``selfsup embed`` returned for it then, on the data that
``fixtures/legacy_data.py`` rebuilds.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from cli_checks import global_step, run_cli

FIXTURES = Path(__file__).parent / "fixtures"
sys.path.insert(0, str(FIXTURES))
from legacy_data import write_all  # noqa: E402
from make_legacy_runs import RUNS  # noqa: E402

MODALITIES = ("image", "text", "audio", "sequence")
EMBED_INPUT = {"image": "image_test", "text": "text_test", "audio": "audio_test", "sequence": "sequence"}
HUGGINGFACE = {"text", "audio"}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    return write_all(tmp_path_factory.mktemp("legacy-data"))


def copy_run(name: str, tmp_path: Path, data: dict[str, Path]) -> Path:
    """The fixture run, copied (resuming writes into it) and pointed at this test's copy of its data."""
    run = tmp_path / name
    shutil.copytree(FIXTURES / "legacy_runs" / name, run)
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["data"]["path"] = str(data[name])
    (run / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return run


def embed_input(name: str, data: dict[str, Path]) -> Path:
    return data[EMBED_INPUT[name]] if name != "text" else _texts_only(data["text_test"])


def _texts_only(labeled: Path) -> Path:
    texts = labeled.with_name("test_texts.txt")
    texts.write_text("\n".join(line.split("\t", 1)[1] for line in labeled.read_text().splitlines()) + "\n")
    return texts


@pytest.mark.parametrize("name", MODALITIES)
def test_legacy_run_embeds_as_it_did(name, tmp_path, data):
    run = copy_run(name, tmp_path, data)
    code, out, err = run_cli(["embed", run, embed_input(name, data), "--out", tmp_path / "emb.npy"])
    assert code == 0, err
    expected = np.load(FIXTURES / "legacy_runs" / f"{name}.expected_embeddings.npy")
    np.testing.assert_allclose(np.load(tmp_path / "emb.npy"), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", MODALITIES)
def test_legacy_run_resumes_evaluates_and_exports(name, tmp_path, data):
    run = copy_run(name, tmp_path, data)
    assert global_step(run) == 3
    code, _, err = run_cli(["pretrain", data[name], "--out", run, "--max-steps", "4", "--no-progress", *RUNS[name]])
    assert code == 0, err
    assert global_step(run) == 4  # continued from the old checkpoint, not restarted

    if name == "sequence":
        args = ["--protocol", "ranking"]
    else:
        args = ["--train", data[f"{name}_train"], "--test", data[f"{name}_test"], "--protocol", "knn,linear",
                "--label-fractions", "1.0"]
    code, out, err = run_cli(["evaluate", run, *args, "--baseline", "none", "--json", tmp_path / "eval.json"])
    assert code == 0, err
    rows = json.loads((tmp_path / "eval.json").read_text())["results"]
    assert rows and all(r["encoder"] in ("pretrained", "baseline") and 0.0 <= r["value"] <= 1.0 for r in rows)

    formats = ["safetensors", *(["huggingface"] if name in HUGGINGFACE else [])]
    for fmt in formats:
        out_dir = tmp_path / f"export-{fmt}"
        code, _, err = run_cli(["export", run, "--format", fmt, "--out", out_dir])
        assert code == 0, err
        code, _, err = run_cli(["embed", out_dir, embed_input(name, data), "--out", tmp_path / f"{fmt}.npy"])
        assert code == 0, err
    code, _, err = run_cli(["embed", run, embed_input(name, data), "--out", tmp_path / "run.npy"])
    assert code == 0, err
    for fmt in formats:  # every export of the resumed run embeds as the run does
        np.testing.assert_allclose(np.load(tmp_path / f"{fmt}.npy"), np.load(tmp_path / "run.npy"), rtol=1e-4, atol=1e-5)
