"""``--method auto`` (train/auto.py) and its label-free scores (evaluation/label_free.py): α-ReQ recovers a known
decay, collapse scores worse than spread, and a tiny image run pilots every candidate, keeps the best-scoring one
within the budget, and leaves a normal run of the winner that loads, evaluates and resumes."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import yaml

from selfsup import api
from selfsup.artifacts import load
from selfsup.cli import main
from selfsup.errors import SelfSupError
from selfsup.evaluation.label_free import alpha_quality, alpha_req, combined_scores, rankme
from selfsup.modalities import get_modality_info, register_modality, unregister_modality
from selfsup.modalities.base import ModalityInfo
from selfsup.train import auto
from selfsup.train.checkpoint import load_checkpoint

FAST = {"encoder": None, "batch_size": 16, "image_size": 16, "progress_bar": False}


def power_law_embeddings(alpha: float, n: int = 4000, dim: int = 64, seed: int = 0) -> torch.Tensor:
    """Gaussian embeddings whose covariance eigenvalues are i^-alpha (i = 1..dim)."""
    generator = torch.Generator().manual_seed(seed)
    scales = torch.arange(1, dim + 1, dtype=torch.float32).pow(-alpha / 2)
    return torch.randn(n, dim, generator=generator) * scales


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
def test_alpha_req_recovers_the_decay_of_a_synthetic_spectrum(alpha):
    assert alpha_req(power_law_embeddings(alpha)) == pytest.approx(alpha, rel=0.06)


def test_a_collapsed_representation_scores_worse_than_a_spread_one_on_both_scores():
    spread = power_law_embeddings(1.0)
    constant = torch.ones(4000, 64) * 0.3
    line = torch.randn(4000, 1) * torch.randn(1, 64)  # collapsed to one direction
    for collapsed in (constant, line):
        assert rankme(collapsed) < rankme(spread) / 5
        assert alpha_quality(alpha_req(collapsed)) < alpha_quality(alpha_req(spread))
    assert math.isinf(alpha_req(constant)) and math.isinf(alpha_req(line))
    assert alpha_quality(1.0) > alpha_quality(2.0) == pytest.approx(alpha_quality(0.5))


def test_combined_scores_average_the_normalised_ranks():
    # a: best on both; b: worst on the first, middle on the second; c: NaN counts as worst
    scores = combined_scores({"rankme": [3.0, 1.0, 2.0], "alpha": [0.0, -1.0, float("nan")]})
    assert scores == pytest.approx([1.0, 0.25, 0.25])
    assert combined_scores({"x": [1.0, 1.0]}) == [0.5, 0.5]


def test_every_built_in_modality_has_candidates_on_one_encoder():
    from selfsup.registry import get_method

    for modality in ("image", "text", "audio", "sequence"):
        names = auto.candidates(modality)
        assert len(names) >= 3
        encoders = {get_method(n, modality).cls.encoder_for(modality) for n in names}
        # sequences: bert4rec reads histories both ways, on the bidirectional twin of sasrec_tiny (same size)
        assert encoders == {"sasrec_tiny", "bert4rec_tiny"} if modality == "sequence" else len(encoders) == 1


def test_a_modality_without_candidates_gets_one_line():
    info = ModalityInfo(name="nocandidates", unit="rows", data_help="rows", default_method="simclr",
                        default_encoders={"any": "tiny_cnn"}, implementation="x:Y")
    register_modality(info)
    try:
        with pytest.raises(SelfSupError, match=r"nocandidates data has no candidate methods.*--method"):
            auto.candidates("nocandidates")
    finally:
        unregister_modality("nocandidates")


def test_method_settings_with_auto_get_one_line(image_folder, tmp_path, capsys):
    code = main(["pretrain", str(image_folder), "--method", "auto", "--out", str(tmp_path / "run"),
                 "--set", "method.temperature=0.2", "--max-steps", "4", "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "method.temperature" in err[0] and "auto" in err[0]
    assert not (tmp_path / "run").exists()


BUDGET_STEPS = 24


@pytest.fixture(scope="module")
def auto_run(tmp_path_factory, write_images):
    root = tmp_path_factory.mktemp("auto")
    data = write_images(root / "images", 16, 0)
    run = api.pretrain(data, "auto", root / "run", max_steps=BUDGET_STEPS, **{k: v for k, v in FAST.items() if v})
    return data, run


def test_auto_pilots_every_candidate_and_keeps_the_best_scoring(auto_run):
    _, run = auto_run
    saved = yaml.safe_load((run / "config.yaml").read_text())
    record = saved["auto"]
    names = list(get_modality_info("image").auto_methods)
    assert record["candidates"] == names
    for name in names:  # each pilot a real run of its method
        pilot = yaml.safe_load((run / "pilots" / name / "config.yaml").read_text())
        assert pilot["method"]["name"] == name and (run / "pilots" / name / "checkpoints" / "last.ckpt").exists()
        assert set(record["scores"][name]) == {"rankme", "alpha_req", "probe_knn", "score"}
        assert record["scores"][name]["rankme"] > 1
    best = max(record["scores"].values(), key=lambda s: s["score"])["score"]
    assert record["scores"][record["chosen"]]["score"] == best
    assert saved["method"]["name"] == record["chosen"] and record["chosen"] in record["reason"]
    assert record["pilot_minutes"] > 0


def test_the_winner_continues_from_its_pilot_within_the_step_budget(auto_run):
    _, run = auto_run
    record = yaml.safe_load((run / "config.yaml").read_text())["auto"]
    pilot_steps = BUDGET_STEPS * auto.PILOT_SHARE // len(record["candidates"])
    steps = {name: load_checkpoint(run / "pilots" / name / "checkpoints" / "last.ckpt")["global_step"]
             for name in record["candidates"]}
    assert set(steps.values()) == {pilot_steps}
    final = load_checkpoint(run / "checkpoints" / "last.ckpt")["global_step"]
    assert final > pilot_steps  # it went on from its pilot
    assert final + record["spent_by_others"]["steps"] == BUDGET_STEPS  # the whole budget, pilots included
    rows = (run / "metrics.csv").read_text().splitlines()
    assert len(rows) > 1  # the pilot's rows, then the continuation's


def test_the_auto_run_loads_evaluates_and_resumes_its_winner(auto_run, labeled_pair, tmp_path):
    data, run = auto_run
    loaded = load(run)
    assert loaded.encoder.config["name"] == "tiny_cnn"
    train, test = labeled_pair
    results = api.evaluate(run, train, test, protocols=["knn"], label_fractions=[1.0], baseline="none")
    assert results and all(0 <= r.value <= 1 for r in results)
    before = load_checkpoint(run / "checkpoints" / "last.ckpt")["global_step"]
    pilots_before = {p: p.stat().st_mtime for p in (run / "pilots").rglob("last.ckpt")}
    api.pretrain(data, "auto", run, max_steps=BUDGET_STEPS + 4, **{k: v for k, v in FAST.items() if v})
    assert load_checkpoint(run / "checkpoints" / "last.ckpt")["global_step"] == before + 4  # the winner resumed
    assert {p: p.stat().st_mtime for p in (run / "pilots").rglob("last.ckpt")} == pilots_before  # no new pilots
    assert "auto" in yaml.safe_load((run / "config.yaml").read_text())  # the record survives the resume
    assert auto.describe(run).startswith("--method auto chose")


def test_auto_keeps_to_a_time_budget(image_folder, tmp_path):
    minutes = 0.3
    run = api.pretrain(image_folder, "auto", tmp_path / "run", max_minutes=minutes, epochs=1000,
                       **{k: v for k, v in FAST.items() if v})
    record = yaml.safe_load((run / "config.yaml").read_text())["auto"]
    count = len(record["candidates"])
    share = minutes * auto.PILOT_SHARE / count

    def trained(folder: Path) -> float:
        state = load_checkpoint(folder / "checkpoints" / "last.ckpt")
        return next(v for k, v in state["callbacks"].items() if "Timer" in k)["time_elapsed"]["train"] / 60

    slack = 5 / 60  # Lightning checks its time limit after each step; a first step on a busy CPU takes seconds
    for name in record["candidates"]:  # equal pilots
        assert share * 0.9 <= trained(run / "pilots" / name) <= share + slack
    others = record["spent_by_others"]["minutes"]  # the other pilots' wall time, their setup and the scoring
    assert others >= (count - 1) * share * 0.9
    # the winner trains on for exactly the rest of the budget (or stays at its pilot when nothing is left)
    assert trained(run) == pytest.approx(max(trained(run / "pilots" / record["chosen"]), minutes - others),
                                         abs=slack)


def test_a_probe_set_joins_the_score(image_folder, labeled_pair, tmp_path):
    probe, _ = labeled_pair
    run = api.pretrain(image_folder, "auto", tmp_path / "run", max_steps=12, overrides={"trainer.probe": str(probe)},
                       **{k: v for k, v in FAST.items() if v})
    record = yaml.safe_load((run / "config.yaml").read_text())["auto"]
    knn = {name: s["probe_knn"] for name, s in record["scores"].items()}
    assert all(0 <= value <= 1 for value in knn.values())
    assert "probe" in record["reason"]
    # with the probe weighted as both label-free scores together, the winner is at least middling on kNN
    assert knn[record["chosen"]] >= sorted(knn.values())[len(knn) // 2 - 1]
