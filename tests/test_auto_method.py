"""``--method auto`` (train/auto.py) and its label-free scores (evaluation/label_free.py): α-ReQ recovers a known
decay, collapse scores worse than spread, and a tiny image run pilots every candidate, keeps the best-scoring one
within the budget, and leaves a normal run of the winner that loads, evaluates and resumes. Every modality holds a
part of DATA out of the pilots' training (``Modality.hold_out``) and scores the pilots on it."""

from __future__ import annotations

import json
import math
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch
import yaml

from selfsup import api
from selfsup.artifacts import load
from selfsup.cli import main
from selfsup.config import DataConfig, RunConfig
from selfsup.errors import SelfSupError
from selfsup.evaluation.label_free import alpha_quality, alpha_req, combined_scores, rankme
from selfsup.modalities import get_modality, get_modality_info, register_modality, unregister_modality
from selfsup.modalities.base import HELD_OUT_MIN, ModalityInfo
from selfsup.train import auto
from selfsup.train.checkpoint import load_checkpoint

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
from legacy_data import write_corpus, write_log, write_tones  # noqa: E402

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


def test_auto_trains_on_the_training_part_and_scores_the_held_out_part(auto_run):
    _, run = auto_run
    saved = yaml.safe_load((run / "config.yaml").read_text())
    heldout, training = saved["auto"]["heldout"], Path(saved["data"]["path"])
    assert training == run / "auto" / "train.txt" and heldout == {"path": str(run / "auto" / "heldout.txt"),
                                                                   "count": HELD_OUT_MIN}  # 48 images: 8 held out
    for name in saved["auto"]["candidates"]:
        assert yaml.safe_load((run / "pilots" / name / "config.yaml").read_text())["data"]["path"] == str(training)
    held = Path(heldout["path"]).read_text().splitlines()
    assert len(held) == HELD_OUT_MIN and not set(held) & set(training.read_text().splitlines())
    config = RunConfig.load(run / "pilots" / saved["method"]["name"] / "config.yaml")
    name = saved["method"]["name"]
    sample = auto.sample_embeddings(run / "pilots" / name, config, "cpu", sample=heldout["path"])
    assert sample.shape[0] == HELD_OUT_MIN  # the recorded score is the held-out part's, not the training part's
    assert saved["auto"]["scores"][name]["rankme"] == pytest.approx(rankme(sample), abs=1e-3)
    assert rankme(auto.sample_embeddings(run / "pilots" / name, config, "cpu")) != pytest.approx(rankme(sample), abs=1e-3)


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
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert "auto" in saved  # the record survives the resume
    assert saved["data"]["path"] == str(run / "auto" / "train.txt")  # on the same training part
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


# ---------------------------------------------------------------------------------------------- held-out samples


def split(modality: str, path: Path, folder: Path, limit: int = 2048, **settings):
    data = DataConfig(path=str(path), modality=modality, **settings)
    return data, get_modality(modality).hold_out(data, limit, 0, folder)


@pytest.mark.parametrize("modality", ["image", "audio"])
def test_file_data_is_split_into_two_lists_of_its_files(modality, tmp_path, write_images):
    from selfsup.modalities.audio.readers import find_audio_files
    from selfsup.modalities.image.readers import find_images

    find = find_images if modality == "image" else find_audio_files
    data = write_images(tmp_path / "images", 30, 0) if modality == "image" else write_tones(tmp_path / "tones", 45, 0)
    _, held = split(modality, data, tmp_path / "auto")
    every = find(data)  # 90 files: 9 (10 %) held out
    training, held_out = find(held.training), find(held.held_out)
    assert held.training.suffix == held.held_out.suffix == ".txt" and held.total == len(every) == 90
    assert len(held_out) == held.count == 9 and not set(training) & set(held_out)
    assert sorted(training + held_out) == sorted(p.resolve() for p in every)
    _, again = split(modality, held.training, tmp_path / "again", limit=3)  # a list file as DATA; the limit holds
    assert again.count == 3 and len(find(again.training)) == 78


@pytest.mark.parametrize("layout", ["lines", "jsonl", "csv"])
def test_a_text_corpus_is_split_into_two_corpora_read_as_it_is(layout, tmp_path):
    from selfsup.modalities.text.readers import find_text_files, iter_texts

    texts = [f"text {i} with \"quotes\", é and\ta tab" for i in range(40)]
    if layout == "lines":
        data = tmp_path / "corpus.txt"
        data.write_text("\n".join(texts) + "\n\n", encoding="latin-1")
        settings = {"encoding": "latin-1"}
    elif layout == "jsonl":  # a line break inside a text, a custom field
        texts = [t + "\nsecond line" for t in texts]
        data = tmp_path / "corpus.jsonl"
        data.write_text("".join(json.dumps({"body": t, "label": "x"}) + "\n" for t in texts), encoding="utf-8")
        settings = {"text_field": "body"}
    else:  # a folder with a csv whose quoted field spans lines
        (tmp_path / "folder").mkdir()
        data = tmp_path / "folder"
        texts = [t.replace("\t", " ") + "\nmore" for t in texts]
        import csv
        with open(data / "a.csv", "w", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerows([["id", "text"], *[[i, t] for i, t in enumerate(texts)]])
        settings = {}
    config, held = split("text", data, tmp_path / "auto", **settings)

    def read(path):
        return list(iter_texts(find_text_files(path), config.encoding, config.text_field))

    assert read(data) == texts
    training, held_out = read(held.training), read(held.held_out)
    assert len(held_out) == held.count == HELD_OUT_MIN and len(training) == 40 - HELD_OUT_MIN
    assert Counter(training) + Counter(held_out) == Counter(texts) and not set(training) & set(held_out)


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".parquet"])
def test_a_log_is_split_by_whole_users_with_its_header_and_columns(suffix, tmp_path):
    from selfsup.modalities.sequence.readers import LogColumns, read_interactions

    rows = [{"who": f"u{u}", "what": f"i{(u * t) % 13}", "when": 100 * u + t, "extra": "a,b"}
            for u in range(30) for t in range(5 + u % 3)]
    data = tmp_path / f"log{suffix}"
    if suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), data)
    else:
        sep = "," if suffix == ".csv" else "\t"
        lines = [sep.join(["extra", "when", "what", "who"])] + [
            sep.join(['"a,b"' if suffix == ".csv" else "a,b", str(r["when"]), r["what"], r["who"]]) for r in rows]
        data.write_text("\n".join(lines) + "\n")
    columns = LogColumns("who", "what", "when")
    _, held = split("sequence", data, tmp_path / "auto", user_column="who", item_column="what", timestamp_column="when")
    assert held.training.suffix == held.held_out.suffix == suffix and held.total == 30 and held.count == HELD_OUT_MIN

    def histories(path):
        log = read_interactions(path, columns)
        names = {i: n for n, i in log.item_map.items()}
        return {u: [names[i] for i in h] for u, h in zip(log.users, log.histories)}

    every, training, held_out = histories(data), histories(held.training), histories(held.held_out)
    assert len(held_out) == held.count and not set(training) & set(held_out)
    assert {**training, **held_out} == every  # whole users, each with their whole history
    if suffix != ".parquet":
        assert held.held_out.read_text().splitlines()[0] == data.read_text().splitlines()[0]


def test_data_too_small_to_hold_any_out_gets_one_line(tmp_path, write_images):
    from selfsup.modalities.base import held_out_rows

    assert len(held_out_rows(3, 2048, 0, "DATA", "images")) == 1  # two are always left to train on
    data = tmp_path / "two.txt"
    data.write_text("a\nb\n")
    with pytest.raises(SelfSupError, match=r"two.txt: only 2 texts; --method auto holds some out.*--method"):
        split("text", data, tmp_path / "auto")


@pytest.fixture
def embedded(monkeypatch):
    """Every ``Modality.embed`` call while the test runs: (modality, DATA embedded, rows written)."""
    import numpy as np

    calls = []
    for name in ("image", "text", "audio", "sequence"):
        cls = type(get_modality(name))

        def spy(self, loaded, data, out, *args, _embed=cls.embed, **kwargs):
            written = _embed(self, loaded, data, out, *args, **kwargs)
            calls.append((self.name, str(data), int(np.load(written["embeddings"]).shape[0])))
            return written

        monkeypatch.setattr(cls, "embed", spy)
    return calls


@pytest.mark.parametrize("modality", ["text", "audio", "sequence"])
def test_pilots_train_on_the_training_part_and_are_scored_on_the_held_out_part(modality, tmp_path, embedded):
    if modality == "text":
        data, settings = write_corpus(tmp_path / "corpus.txt", 60, 0), {"max_length": 16}
    elif modality == "audio":
        data, settings = write_tones(tmp_path / "tones", 12, 0), {}
    else:  # users u24..u31 alone have items j0..j7: held out, such items are unknown to the run's item map
        data = write_log(tmp_path / "log.csv", users=24)
        with data.open("a") as fh:
            fh.writelines(f"u{u},j{u - 24},{1000 * u + t}\n" for u in range(24, 32) for t in range(3))
        settings = {"max_length": 8}
    run = api.pretrain(data, "auto", tmp_path / "run", modality=modality, max_steps=6, batch_size=8,
                       progress_bar=False, **settings)
    saved = yaml.safe_load((run / "config.yaml").read_text())
    heldout = saved["auto"]["heldout"]
    training = saved["data"]["path"]
    assert Path(training).parent == Path(heldout["path"]).parent == run / "auto"
    for name in saved["auto"]["candidates"]:
        assert yaml.safe_load((run / "pilots" / name / "config.yaml").read_text())["data"]["path"] == training
    assert "failed" not in saved["auto"]
    scored = [call for call in embedded if call[0] == modality]
    assert len(scored) == len(saved["auto"]["scores"]) and {call[1] for call in scored} == {heldout["path"]}
    if modality == "sequence":  # a held-out user with only unknown items has no embedding; the others do
        users = {row.split(",")[0] for row in Path(heldout["path"]).read_text().splitlines()[1:]}
        known = {u for u in users if int(u[1:]) < 24}
        assert len(users) == heldout["count"] and 0 < len(known) < len(users)  # the seed holds out both kinds
        assert {rows for *_, rows in scored} == {len(known)}
    else:
        assert {rows for *_, rows in scored} == {heldout["count"]}


# ------------------------------------------------------------------------------------------------- sharded DATA


@pytest.mark.parametrize("modality", ["image", "text"])
def test_shards_are_split_into_two_lists_of_whole_shards(modality, tmp_path, write_images):
    from selfsup.shards.sources import shard_set
    from selfsup.shards.table import JSONL, SUFFIXES as TABLE, count_rows
    from selfsup.shards.tar import SUFFIXES as TAR, count_tar

    if modality == "image":
        source, kind = write_images(tmp_path / "images", 30, 0), (TAR, count_tar, ())
    else:
        source, kind = write_corpus(tmp_path / "corpus.txt", 90, 0), (TABLE, count_rows, JSONL)
    done = api.shard(source, tmp_path / "sh", shard_size="1KB" if modality == "text" else "10KB", modality=modality,
                     progress=False)
    assert done["shards"] >= 3
    _, held = split(modality, tmp_path / "sh", tmp_path / "auto")
    assert held.training.name == "train.shards.json" and held.held_out.name == "heldout.shards.json"
    every = shard_set(str(tmp_path / "sh"), kind[0], kind[1], False, pattern_only=kind[2])
    training = shard_set(str(held.training), kind[0], kind[1], False, pattern_only=kind[2])
    held_out = shard_set(str(held.held_out), kind[0], kind[1], False, pattern_only=kind[2])
    assert held.total == every.total == 90 and held.count == held_out.total >= 9  # 10 %, in whole shards
    assert sorted(training.urls + held_out.urls) == sorted(str(Path(u).resolve()) for u in every.urls)
    assert training.total + held_out.total == 90 and training.total > 0 and not set(training.urls) & set(held_out.urls)
    assert (training.classes, held_out.classes) == (every.classes, every.classes)


def test_auto_on_image_shards_trains_on_some_shards_and_scores_the_others(write_images, tmp_path, embedded):
    api.shard(write_images(tmp_path / "images", 16, 0), tmp_path / "sh", shard_size="8KB", progress=False)
    run = api.pretrain(f"{tmp_path}/sh/train-*.tar", "auto", tmp_path / "run", max_steps=6, batch_size=8,
                       image_size=16, progress_bar=False)
    saved = yaml.safe_load((run / "config.yaml").read_text())
    heldout = saved["auto"]["heldout"]
    assert saved["data"]["path"] == str(run / "auto" / "train.shards.json") and "failed" not in saved["auto"]
    assert {call[1] for call in embedded} == {heldout["path"]} and {call[2] for call in embedded} == {heldout["count"]}
    assert load(run).encoder is not None


def test_a_single_shard_cannot_hold_one_out(write_images, tmp_path):
    api.shard(write_images(tmp_path / "images", 10, 0), tmp_path / "sh", progress=False)
    with pytest.raises(SelfSupError, match="a single shard; --method auto holds whole shards out"):
        split("image", tmp_path / "sh", tmp_path / "auto")
