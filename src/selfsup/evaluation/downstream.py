"""A loaded encoder's downstream evaluation: read the labeled files, turn them into the inputs the encoder
takes, run the protocols and baselines. What differs between modalities (readers, transforms, feature
baselines such as tfidf, mfcc and pixels, the label-free protocols ``similarity`` and ``ranking``) the run's
modality provides (``selfsup.modalities``); see each modality's ``modality.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ..encoders import Encoder, build_encoder, scratch_config
from ..errors import SelfSupError
from ..modalities import get_modality, get_modality_info
from .label_efficiency import PROTOCOLS, EvalResult, run_label_efficiency
from .subsets import class_balanced_subset
from .tasks import TaskRequest



class TokenBatch:
    """Padded token ids [B, T] → the text encoder's input dict, trimmed to the batch's longest text."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, ids: Tensor, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        mask = (ids != self.pad_token_id).long()
        length = max(1, int(mask.sum(1).max()))
        return {"input_ids": ids[:, :length], "attention_mask": mask[:, :length]}


@dataclass
class Labeled:
    """Inputs the encoder takes (after ``transform``), integer labels, the raw texts (text only), and what each
    input is for the run report (a file path or a text: :meth:`~selfsup.modalities.base.Modality.report_items`)."""

    inputs: Tensor
    labels: Tensor
    classes: list[str]
    texts: list[str] | None = None
    references: list[str] | None = None


def check_request(modality: str, protocols: list[str], baselines: list[str], train: str | Path | None,
                  test: str | Path | None = None, from_checkpoint: bool = False, distilled: bool = False) -> None:
    """Fail early, in one line, on a protocol or baseline the modality does not have, or a missing file.
    ``from_checkpoint``: the run's encoder started from a checkpoint (``--init``), so ``init`` is a baseline;
    ``distilled``: the run learnt from a teacher (``distill``), so ``teacher`` is one."""
    info = get_modality_info(modality)
    own = info.pairwise_protocol
    valid = (*PROTOCOLS, *((own,) if own else ()), *info.task_protocols)
    unknown = [p for p in protocols if p not in valid]
    if unknown:
        raise SelfSupError(f"--protocol {','.join(unknown)}: not available for {info.name} data; use {', '.join(valid)}")
    tasks = [p for p in protocols if p in info.task_protocols]
    if tasks:
        _check_task_request(info, protocols, tasks[0], baselines, train, test, from_checkpoint)
        return
    if own in protocols and len(protocols) > 1:
        raise SelfSupError(f"--protocol {own} cannot be mixed with {','.join(p for p in protocols if p != own)}; "
                           "run them separately")
    fitting = ("scratch", *(("init",) if from_checkpoint else ()), *(("teacher",) if distilled else ()),
               *info.baselines)
    for name in baselines:
        if name == "init" and not from_checkpoint:
            raise SelfSupError("--baseline init needs a run that started from a checkpoint (pretrain --init SOURCE); "
                               f"this run started from random weights: use {', '.join(fitting)} or none")
        if name == "teacher" and not distilled:
            raise SelfSupError("--baseline teacher needs a distilled run folder (pretrain --method distill --set "
                               f"method.teacher=SOURCE); this run has no teacher: use {', '.join(fitting)} or none")
        if name not in fitting:
            raise SelfSupError(f"--baseline {name!r} is not available for {info.name} data; use {', '.join(fitting)} or none")
    if own in protocols and not info.pairwise_needs_test:
        return  # the run's own data holds the targets (next-item ranking on its log)
    if test is None:
        hint = f"; or use --protocol {own} (no labels)" if own and not info.pairwise_needs_test else ""
        raise SelfSupError(f"--test is needed for --protocol {','.join(protocols)}{hint}")
    if train is None and own not in protocols:
        hint = f" (only --protocol {own} works without it)" if own else ""
        raise SelfSupError(f"--train LABELED is needed for knn, linear and finetune{hint}")


def _check_task_request(info, protocols: list[str], task: str, baselines: list[str], train: str | Path | None,
                        test: str | Path | None, from_checkpoint: bool) -> None:
    """A task protocol (asr, translation) runs alone, on labelled --train and --test, against scratch, init (a run
    started from a checkpoint) and the task's own baselines."""
    if len(protocols) > 1:
        raise SelfSupError(f"--protocol {task} cannot be mixed with {','.join(p for p in protocols if p != task)}; "
                           "run them separately")
    fitting = ("scratch", *(("init",) if from_checkpoint else ()), *info.task_baselines)
    for name in baselines:
        if name not in fitting:
            hint = (" (init needs a run that started from a checkpoint: pretrain --init SOURCE)"
                    if name == "init" else "")
            raise SelfSupError(f"--baseline {name!r} is not available for --protocol {task}{hint}; "
                               f"use {', '.join(fitting)} or none")
    for flag, path in (("--train", train), ("--test", test)):
        if path is None:
            raise SelfSupError(f"{flag} is needed for --protocol {task}")


def evaluate_task(loaded, request: TaskRequest) -> list[EvalResult]:
    """The run's modality's downstream task ``request.protocol`` (audio: asr; text: translation)."""
    return get_modality(loaded.modality).evaluate_task(loaded, request)


def _encoders(loaded, baselines: list[str], seed: int, teacher: Encoder | None = None) -> dict[str, Encoder]:
    """The run's encoder; ``init``: the checkpoint it started from, unadapted (its config rebuilt, no run weights
    loaded); ``teacher``: the teacher a distilled run learnt from (given, rebuilt by the caller); ``scratch``: the
    same architecture from a random init."""
    encoders = {"pretrained": loaded.encoder}
    if "init" in baselines:
        encoders["init"] = build_encoder(loaded.encoder.config).eval()
    if "teacher" in baselines:
        if teacher is None:
            raise SelfSupError("--baseline teacher: the run's teacher was not rebuilt; pass it as teacher=")
        encoders["teacher"] = teacher
    if "scratch" in baselines:
        torch.manual_seed(seed)
        encoders["scratch"] = build_encoder(scratch_config(loaded.encoder.config))
    return encoders


def evaluate_pairwise(loaded, test: str | Path | None, baselines: list[str], seed: int, device: str,
                      encoding: str = "utf-8", teacher: Encoder | None = None) -> list[EvalResult]:
    """The modality's label-free protocol (text: sentence similarity; sequences: next-item ranking)."""
    return get_modality(loaded.modality).evaluate_pairwise(loaded, _encoders(loaded, baselines, seed, teacher), test,
                                                          baselines, seed, device, encoding=encoding)


def evaluate_labeled(loaded, train: str | Path, test: str | Path, protocols: list[str], fractions: list[float],
                     baselines: list[str], seed: int, device: str, encoding: str = "utf-8",
                     finetune_steps: int | None = None, progress: Callable[[str], None] | None = None,
                     teacher: Encoder | None = None, sample_to: Path | None = None) -> list[EvalResult]:
    """Label efficiency of ``loaded`` (and the baselines; ``teacher``: a distilled run's teacher) on labeled
    train/test files. ``sample_to``: where the run report's sample of the pretrained encoder's test embeddings is
    kept (:func:`selfsup.report.embeddings.save_test_sample`)."""
    modality = get_modality(loaded.modality)
    encoders = _encoders(loaded, baselines, seed, teacher)
    own = modality.evaluate_labeled(loaded, encoders, train, test, protocols, fractions, baselines, seed, device,
                                    encoding=encoding, finetune_steps=finetune_steps, progress=progress)
    if own is not None:
        return own
    train_set = modality.read_labeled(loaded, train, None, encoding)
    test_set = modality.read_labeled(loaded, test, train_set.classes, encoding)
    train_transform, eval_transform = modality.eval_transforms(loaded)
    results = run_label_efficiency(
        encoders, train_set.inputs, train_set.labels, test_set.inputs, test_set.labels,
        protocols=protocols, fractions=fractions, train_transform=train_transform, eval_transform=eval_transform,
        seed=seed, device=device, finetune_kwargs={"steps": finetune_steps} if finetune_steps else None,
        progress=progress,
    )
    if sample_to is not None:
        from ..report.embeddings import save_test_sample

        save_test_sample(sample_to, loaded.encoder, test_set, eval_transform, device, seed)
    for name in baselines:
        if name in modality.info.baselines:
            accuracy = modality.baseline_scores(name, loaded, train_set, test_set, seed)
            results += _baseline_rows(name, train_set.labels, fractions, seed, accuracy)
    return results


def _baseline_rows(name: str, labels: Tensor, fractions: list[float], seed: int,
                   accuracy: Callable[[Tensor], float]) -> list[EvalResult]:
    """One ``linear`` row per fraction for a feature baseline, fitted on the label subsets the encoders saw."""
    rows = []
    for fraction in fractions:
        idx = class_balanced_subset(labels, fraction, seed)
        rows.append(EvalResult("linear", float(fraction), int(idx.numel()), name, "accuracy", accuracy(idx)))
    return rows
