"""Downstream *tasks* with their own paired data, evaluated on their own: speech recognition (``asr``: audio +
transcripts) and translation (``translation``: sentence pairs). A modality lists the tasks it has in
:attr:`~selfsup.modalities.base.ModalityInfo.task_protocols` and runs them in
:meth:`~selfsup.modalities.base.Modality.evaluate_task`; this module holds what is shared: the request, the
label budgets and the direction of each metric.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

LOWER_IS_BETTER: frozenset[str] = frozenset({"cer", "wer"})
"""Metrics where a smaller value is better (error rates, fractions 0–1); every other metric: higher is better."""


def lower_is_better(metric: str) -> bool:
    """True for error rates such as ``cer`` and ``wer``."""
    return metric in LOWER_IS_BETTER


@dataclass
class TaskRequest:
    """What ``selfsup evaluate --protocol TASK`` asks of a task protocol.

    ``label_fractions``: shares of the labelled pairs (translation) or of the labelled audio (asr);
    ``label_minutes``: asr budgets in minutes of transcribed audio (None: use ``label_fractions``);
    ``baselines``: ``scratch``, ``init`` and the task's own (``mfcc`` for asr); ``finetune_steps``: optimisation
    steps per label budget (None: the task's default); ``save_finetuned``: where the best fine-tuned model of the
    largest budget is written as a Hugging Face folder (None: not kept)."""

    protocol: str
    train: Path
    test: Path
    label_fractions: list[float]
    baselines: list[str]
    seed: int = 0
    device: str = "cpu"
    encoding: str = "utf-8"
    label_minutes: list[float] | None = None
    finetune_steps: int | None = None
    save_finetuned: Path | None = None
    progress: Callable[[str], None] = field(default=lambda _line: None)
