"""``--method auto``: pilot a shortlist of methods, score them without labels, continue the best.

Each candidate of the modality's shortlist (``ModalityInfo.auto_methods``, one method per family, all on the same
default encoder and batch; sequences: bert4rec on bert4rec_tiny, the bidirectional twin of sasrec_tiny) trains a pilot run, ``RUN/pilots/NAME``, through the normal engine, on an equal share of
:data:`PILOT_SHARE` of the budget (``--max-minutes``, ``--max-steps`` and ``--epochs`` each count the pilots).
Before any pilot, DATA is split (:meth:`Modality.hold_out <selfsup.modalities.base.Modality.hold_out>`, seeded by
``--seed``): min(:data:`SAMPLE_SIZE`, max(10 %, 8)) of its items (images, recordings, texts; whole users of a log),
always leaving at least 2 for training, are written to ``RUN/auto/heldout.*`` and the rest to ``RUN/auto/train.*``
(list files of the images or recordings, a JSON Lines corpus of the texts, a log of the same format and columns).
Every pilot, and the winner's continuation, trains on the training part: RUN's config.yaml ``data.path`` names it.
Each pilot's encoder then embeds the held-out part (the same inputs for every pilot, never trained on; clean, in
eval mode; a log's items that only held-out users have are unknown to the item map and left out of their
histories) and is scored by RankMe (Garrido et al. 2023) and α-ReQ (Agrawal et al. 2022;
``evaluation/label_free.py``). The candidates are ranked on each score (RankMe: higher is better; α-ReQ: α
closer to 1 on a log scale is better) and the ranks averaged. With ``trainer.probe`` (``--probe LABELED``, a few
labelled samples) the probe's kNN accuracy joins with the weight of both label-free scores together.

The winner's pilot folder is copied into RUN and resumed there, by the normal engine, for the rest of the budget:
RUN is a run of the winning method (config.yaml ``method.name``), plus the record section ``auto`` (candidates,
scores, choice, reason, pilot minutes and what the other pilots spent, so that resuming RUN with ``--method
auto`` resumes the winner within the same whole budget; ``heldout``: the held-out part's path and item count).
Resuming trains the winner on the same training part (config.yaml ``data.path``), whatever DATA is given again.
"""

from __future__ import annotations

import copy
import logging
import math
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from ..config import RunConfig, validate
from ..errors import SelfSupError
from ..modalities import get_modality, get_modality_info
from .checkpoint import load_checkpoint
from .lock import LOCK_FILE, RunLock

log = logging.getLogger("selfsup")

AUTO = "auto"
PILOTS = "pilots"
PILOT_SHARE = 0.4
"""Share of the budget (minutes, steps, epochs) the pilots spend together, split equally between them."""
SAMPLE_SIZE = 2048
"""The most items of DATA held out of training for the pilots' scores (the same held-out sample for every pilot)."""
HELD_OUT = "heldout"
"""The ``auto`` record's key of the held-out part: ``{path, count}``."""
SCORES = ("rankme", "alpha_req")


def is_auto(config: RunConfig) -> bool:
    return config.method.get("name") == AUTO


def candidates(modality: str) -> list[str]:
    """The modality's shortlist, or one line saying it has none."""
    names = list(get_modality_info(modality).auto_methods)
    if not names:
        raise SelfSupError(f"--method auto: {modality} data has no candidate methods to choose from; name one with "
                           f"--method (`selfsup methods --modality {modality}` lists them)")
    return names


def read_record(run_dir: Path) -> dict[str, Any] | None:
    """The ``auto`` section of ``run_dir/config.yaml``, if any."""
    path = run_dir / "config.yaml"
    if not path.exists():
        return None
    saved = yaml.safe_load(path.read_text()) or {}
    return saved.get(AUTO) if isinstance(saved, dict) else None


def _write_record(run_dir: Path, record: dict[str, Any]) -> None:
    path = run_dir / "config.yaml"
    saved = yaml.safe_load(path.read_text()) or {}
    saved[AUTO] = record
    tmp = path.with_suffix(".yaml.tmp")
    tmp.write_text(yaml.safe_dump(saved, sort_keys=False))
    tmp.replace(path)


def _with_method(config: RunConfig, name: str) -> RunConfig:
    chosen = copy.deepcopy(config)
    chosen.method = {"name": name}
    return chosen


def _pilot_config(config: RunConfig, name: str, count: int) -> RunConfig:
    """``config`` for the pilot of ``name``: an equal share of :data:`PILOT_SHARE` of each budget."""
    pilot = _with_method(config, name)
    tc, share = pilot.trainer, PILOT_SHARE / count
    tc.epochs = max(1, int(tc.epochs * share))
    if tc.max_minutes:
        tc.max_minutes = tc.max_minutes * share
    if tc.max_steps:
        tc.max_steps = max(1, int(tc.max_steps * share))
    return pilot


def _spent(run_dir: Path) -> dict[str, float]:
    """Training minutes, optimiser steps and epochs of a run folder's last checkpoint."""
    state = load_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    timer = next((v for k, v in (state.get("callbacks") or {}).items() if "Timer" in str(k)), {})
    seconds = float((timer.get("time_elapsed") or {}).get("train", 0.0))
    return {"minutes": seconds / 60, "steps": int(state.get("global_step", 0)), "epochs": int(state.get("epoch", 0))}


def _continuation(config: RunConfig, winner: str, others: dict[str, float], own: dict[str, float]) -> RunConfig:
    """The winner's settings in RUN: the user's budgets less what the other pilots (and the scoring) spent, never
    below what its pilot reached."""
    final = _with_method(config, winner)
    tc = final.trainer
    tc.epochs = max(int(own["epochs"]), 1, tc.epochs - int(others["epochs"]))
    if tc.max_minutes:
        tc.max_minutes = max(own["minutes"], tc.max_minutes - others["minutes"], 1e-3)
    if tc.max_steps:
        tc.max_steps = max(int(own["steps"]), 1, tc.max_steps - int(others["steps"]))
    return final


def hold_out(config: RunConfig, run_dir: Path) -> tuple[RunConfig, dict[str, Any]]:
    """DATA split into ``run_dir/auto`` (:meth:`Modality.hold_out`): ``config`` training on the training part, and
    the record of the held-out part (``{path, count}``)."""
    data = config.data
    split = get_modality(data.modality).hold_out(data, SAMPLE_SIZE, config.trainer.seed, (run_dir / AUTO).resolve())
    log.info("--method auto: %d of %d %s of %s held out to score the pilots (%s)", split.count, split.total,
             get_modality_info(data.modality).unit, data.path, split.held_out)
    training = copy.deepcopy(config)
    training.data.path = str(split.training)
    return training, {"path": str(split.held_out), "count": split.count}


def _resumed_data(config: RunConfig, run_dir: Path, record: dict[str, Any]) -> RunConfig:
    """``config`` on the training part an auto run recorded (its config.yaml ``data.path``); a run made before
    auto held a sample out trains on DATA as given."""
    if HELD_OUT not in record:
        return config
    saved = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
    training = copy.deepcopy(config)
    training.data.path = str(saved["data"]["path"])
    return training


def sample_embeddings(run_dir: Path, config: RunConfig, device: str, count: int = SAMPLE_SIZE,
                      sample: str | Path | None = None) -> torch.Tensor:
    """Embeddings, by the encoder of ``run_dir`` in eval mode, of ``sample`` (DATA as the modality reads it; by
    default ``config``'s own data: the pilots score the held-out part), at most ``count`` of its inputs drawn with
    the run's seed (the modality's own ``embed``: clean inputs, no augmentation)."""
    from ..artifacts import load

    loaded = load(run_dir)
    data = config.data
    with tempfile.TemporaryDirectory(prefix="selfsup-auto-") as tmp:
        written = get_modality(loaded.modality).embed(
            loaded, data.path if sample is None else sample, Path(tmp) / "sample.npy", 256, device, strict=False,
            encoding=getattr(data, "encoding", "utf-8"), text_field=getattr(data, "text_field", "text"))
        embeddings = torch.from_numpy(np.load(written["embeddings"])).float()
    generator = torch.Generator().manual_seed(config.trainer.seed)
    rows = torch.randperm(embeddings.shape[0], generator=generator)[:count].sort().values
    return embeddings[rows]


def score_pilot(run_dir: Path, config: RunConfig, device: str, sample: str | Path | None = None
                ) -> dict[str, float | None]:
    """RankMe and α-ReQ's α of the pilot's embeddings of ``sample`` (the held-out part; by default a sample of
    ``config``'s data); with ``trainer.probe``, the probe's kNN accuracy."""
    from ..evaluation.label_free import alpha_req, rankme

    embeddings = sample_embeddings(run_dir, config, device, sample=sample)
    scores: dict[str, float | None] = {"rankme": rankme(embeddings), "alpha_req": alpha_req(embeddings),
                                       "probe_knn": None}
    if config.trainer.probe:
        scores["probe_knn"] = probe_knn(run_dir, config, device)
    return scores


def probe_knn(run_dir: Path, config: RunConfig, device: str) -> float:
    """kNN accuracy of the run's encoder on the held-out half of the labelled probe set ``trainer.probe``
    (``selfsup.probe``: the same fixed split for every pilot)."""
    from ..artifacts import load
    from ..probe import load_probe, probe_scores

    loaded = load(run_dir)
    probe = load_probe(loaded, config.trainer.probe, getattr(config.data, "encoding", "utf-8"), config.trainer.seed)
    return float(probe_scores(loaded.encoder, probe, device)["knn"])


def choose(scores: dict[str, dict[str, float | None]]) -> tuple[str, dict[str, dict[str, float | None]], str]:
    """The winner, every candidate's scores with its combined ``score``, and the reason in words."""
    from ..evaluation.label_free import alpha_quality, combined_scores

    names = list(scores)
    columns = {"rankme": [_number(scores[n]["rankme"]) for n in names],
               "alpha_req": [alpha_quality(_number(scores[n]["alpha_req"], math.inf)) for n in names]}
    weights = [1.0, 1.0]
    with_probe = all(scores[n].get("probe_knn") is not None for n in names)
    if with_probe:
        columns["probe_knn"] = [_number(scores[n]["probe_knn"]) for n in names]
        weights.append(2.0)
    combined = combined_scores(columns, weights)
    table = {n: {**{k: None if v is None else round(float(v), 4) for k, v in scores[n].items()}, "score": round(c, 4)}
             for n, c in zip(names, combined)}
    winner = max(names, key=lambda n: (table[n]["score"], _number(scores[n]["rankme"])))
    s = scores[winner]
    what = "RankMe, alpha-ReQ and the probe's kNN accuracy (weighted 2)" if with_probe else "RankMe and alpha-ReQ"
    reason = (f"{winner} has the best rank-average of {what} over {len(names)} pilots: RankMe {_fmt(s['rankme'])}, "
              f"alpha {_fmt(s['alpha_req'])} (best near 1)" +
              (f", probe kNN {_fmt(s['probe_knn'])}" if with_probe else ""))
    return winner, table, reason


def _number(value: float | None, missing: float = -math.inf) -> float:
    return missing if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def describe(run_dir: str | Path) -> str | None:
    """The choice of an auto run as a few lines (a scores table), or None for any other run."""
    record = read_record(Path(run_dir).expanduser())
    if not record:
        return None
    lines = [f"--method auto chose {record['chosen']}: {record['reason']}",
             f"  {'method':<12} {'RankMe':>8} {'alpha':>7} {'probe kNN':>9} {'score':>6}"]
    for name in record["candidates"]:
        s = record["scores"].get(name)
        if s is None:
            lines.append(f"  {name:<12} failed: {record.get('failed', {}).get(name, '')}")
            continue
        lines.append(f"  {name:<12} {_fmt(s['rankme']):>8} {_fmt(s['alpha_req']):>7} {_fmt(s['probe_knn']):>9} "
                     f"{s['score']:>6.3f}")
    return "\n".join(lines)


def _device(config: RunConfig) -> str:
    return "cuda" if config.trainer.accelerator != "cpu" and torch.cuda.is_available() else "cpu"


def auto_run(config: RunConfig, run_dir: str | Path) -> Path:
    """``pretrain_run`` for ``--method auto``: pilots, scores, then the winner continues into ``run_dir`` (or,
    when ``run_dir`` already holds an auto run, the winner resumes). Returns the last checkpoint's path."""
    from .run import _pretrain_locked, resolve

    validate(config)
    names = candidates(config.data.modality)
    extra = sorted(k for k in config.method if k != "name")
    if extra:
        raise SelfSupError(f"--method auto: method.{extra[0]} is a setting of one method; leave method settings out "
                           "with auto, or name the method")
    for name in names:  # every candidate's settings checked before anything is written
        resolve(_pilot_config(config, name, len(names)))
    started = time.monotonic()
    with RunLock(Path(run_dir).expanduser()) as lock:
        run_dir = lock.run_dir
        record = read_record(run_dir)
        if record is None and (run_dir / "config.yaml").exists():
            saved = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
            made = (saved.get("method") or {}).get("name")
            raise SelfSupError(f"{run_dir} was made by method {made!r}, not auto; use --method {made} to resume it, or "
                               "a new --out folder")
        if record is None:
            config, heldout = hold_out(config, run_dir)
            record = _pilots(config, names, run_dir, started, heldout)
        else:
            config = _resumed_data(config, run_dir, record)
        own = _spent(run_dir)  # the winner's pilot, or where its continuation got to
        final = resolve(_continuation(config, record["chosen"], record["spent_by_others"], own))
        if _nothing_left(final, own):  # the pilots (their setup and scoring included) took the whole budget
            log.warning("--method auto: the pilots used the whole budget; %s stays at its pilot's %d steps",
                        record["chosen"], own["steps"])
            return run_dir / "checkpoints" / "last.ckpt"
        log.info("--method auto: %s continues in %s", record["chosen"], run_dir)
        return _pretrain_locked(final, run_dir)


def _nothing_left(final: RunConfig, own: dict[str, float]) -> bool:
    """Whether the winner's budget in RUN is already spent (less than a second, a step or an epoch left)."""
    tc = final.trainer
    return (bool(tc.max_minutes) and tc.max_minutes - own["minutes"] < 1 / 60) or \
        (bool(tc.max_steps) and tc.max_steps <= own["steps"]) or tc.epochs <= own["epochs"]


def _pilots(config: RunConfig, names: list[str], run_dir: Path, started: float, heldout: dict[str, Any]
            ) -> dict[str, Any]:
    """Train every pilot on ``config``'s data (the training part), score it on the held-out part ``heldout``, copy
    the winner into ``run_dir`` and record the choice there."""
    from .run import _pretrain_locked, resolve

    scores: dict[str, dict[str, float | None]] = {}
    failed: dict[str, str] = {}
    spent: dict[str, dict[str, float]] = {}
    for name in names:
        folder = run_dir / PILOTS / name
        log.info("--method auto: pilot %s in %s", name, folder)
        try:
            _pretrain_locked(resolve(_pilot_config(config, name, len(names))), folder)
            spent[name] = _spent(folder)
            scores[name] = score_pilot(folder, config, _device(config), sample=heldout["path"])
        except SelfSupError as exc:  # a pilot that diverges or does not fit the data loses; the others go on
            failed[name] = str(exc)
            log.warning("--method auto: pilot %s failed: %s", name, exc)
    if not scores:
        raise SelfSupError(f"--method auto: every pilot failed ({'; '.join(f'{k}: {v}' for k, v in failed.items())})")
    winner, table, reason = choose(scores)
    elapsed = (time.monotonic() - started) / 60
    others = {"minutes": round(elapsed - spent[winner]["minutes"], 4),
              "steps": sum(s["steps"] for n, s in spent.items() if n != winner),
              "epochs": sum(s["epochs"] for n, s in spent.items() if n != winner)}
    for path in (run_dir / PILOTS / winner).iterdir():
        if path.name == LOCK_FILE:
            continue
        target = run_dir / path.name
        if path.is_dir():
            shutil.copytree(path, target, dirs_exist_ok=True)
        else:
            shutil.copy2(path, target)
    record = {"candidates": names, "scores": table, "chosen": winner, "reason": reason,
              "pilot_minutes": round(elapsed, 4), "spent_by_others": others, HELD_OUT: heldout}
    if failed:
        record["failed"] = failed
    _write_record(run_dir, record)
    return record
