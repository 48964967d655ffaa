"""A probe set: a few labelled samples that measure an encoder while it trains (``--probe LABELED``).

Self-supervised training data has no labels, so its loss says little about the representation; solo-learn
trains an online linear classifier on detached features as its honest progress signal (da Costa et al. 2022,
"solo-learn: A Library of Self-supervised Methods for Visual Representation Learning", JMLR 23). Here the
labels come from a separate labelled set, read by the modality's own reader (:meth:`Modality.read_labeled`,
the same files ``selfsup evaluate --train`` takes), split once into a fixed, class-balanced half to fit on
and a half to score on. :func:`probe_scores` embeds both halves with the encoder in eval mode (every
submodule's mode restored afterwards, BatchNorm layers a run keeps frozen included) and returns the accuracy
of a weighted kNN (Wu et al. 2018) and of a logistic-regression linear probe on the held-out half.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from .errors import SelfSupError
from .modalities import get_modality
from .modalities.base import Modality

if TYPE_CHECKING:  # pragma: no cover
    from .artifacts import LoadedEncoder
    from .config import RunConfig

PROBE_KNN_K = 20  # neighbours of the kNN probe (clipped to the samples it fits on): a probe set is small
FIT_FRACTION = 0.5  # the class-balanced share of the probe set the classifiers fit on; the rest scores them


@dataclass
class ProbeSet:
    """A labelled set split once: inputs the encoder takes after ``transform``, integer labels."""

    path: str
    classes: list[str]
    fit_inputs: Any
    fit_labels: Tensor
    test_inputs: Any
    test_labels: Tensor
    transform: Callable

    @property
    def chance(self) -> float:
        """Accuracy of always answering the held-out half's most frequent class."""
        return float(torch.bincount(self.test_labels).max()) / max(1, self.test_labels.numel())


def has_labeled_reader(modality: str) -> bool:
    """Whether ``modality`` reads labelled files (``read_labeled``) that a probe set can come from."""
    return type(get_modality(modality)).read_labeled is not Modality.read_labeled


def check_probe(modality: str, path: str | Path) -> None:
    """One line, before any data is read, for a probe set that cannot work: a missing path, or a modality with
    no labelled reader."""
    if not has_labeled_reader(modality):
        raise SelfSupError(f"--probe {path}: {modality} data has no labelled reader for a probe set yet; "
                           "leave --probe out (the health metrics embedding_std and rankme are logged without labels)")
    if not Path(path).expanduser().exists():
        raise SelfSupError(f"--probe {path}: no such file or folder; give a labelled set as `selfsup evaluate --train` "
                           "takes it")


def load_probe(loaded: LoadedEncoder, path: str | Path, encoding: str = "utf-8", seed: int = 0) -> ProbeSet:
    """The labelled set at ``path`` read as ``loaded``'s modality reads ``selfsup evaluate --train`` files, split
    into a fixed class-balanced half to fit on (``seed``) and the rest to score on. One line naming ``path`` when
    it is unreadable or too small (at least two classes, and a held-out sample)."""
    from .evaluation.subsets import class_balanced_subset

    check_probe(loaded.modality, path)
    modality = get_modality(loaded.modality)
    try:
        labeled = modality.read_labeled(loaded, path, None, encoding)
    except SelfSupError as exc:  # the reader's message names the file, or is given the path here
        named = str(Path(path).expanduser()) in str(exc)
        raise SelfSupError(f"--probe {exc}" if named else f"--probe {path}: {exc}") from None
    _, eval_transform = modality.eval_transforms(loaded)
    labels = labeled.labels.reshape(-1).long()
    if len(set(labels.tolist())) < 2:
        raise SelfSupError(f"--probe {path}: needs at least 2 classes, found {len(set(labels.tolist()))}")
    fit = class_balanced_subset(labels, FIT_FRACTION, seed)
    held_out = torch.ones(labels.numel(), dtype=torch.bool)
    held_out[fit] = False
    test = torch.nonzero(held_out).reshape(-1)
    if test.numel() == 0:
        raise SelfSupError(f"--probe {path}: {labels.numel()} samples leave none to score on; give at least 2 per class")
    return ProbeSet(str(path), list(labeled.classes), labeled.inputs[fit], labels[fit], labeled.inputs[test],
                    labels[test], eval_transform)


def loaded_in_training(config: RunConfig, encoder: nn.Module, run_dir: str | Path) -> LoadedEncoder:
    """The encoder of a run being trained, as :func:`selfsup.artifacts.load` would give it once stored (its
    modality's extras, such as a text run's tokenizer, read from ``run_dir``): what :func:`load_probe` reads a
    probe set for."""
    from dataclasses import asdict

    from .artifacts import LoadedEncoder

    modality = get_modality(config.data.modality)
    data = asdict(config.data)
    return LoadedEncoder(encoder, modality.name, modality.input_size(data), config.method.get("name", ""),
                         **modality.load_extras(Path(run_dir), data, export=False))


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """``module`` in eval mode; afterwards every submodule back in its own mode (a training run may keep some
    BatchNorm layers in eval mode, which a plain ``train()`` would undo)."""
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield module
    finally:
        for m, training in modes:
            m.training = training


def probe_scores(encoder: nn.Module, probe: ProbeSet, device: str | torch.device,
                 batch_size: int = 256) -> dict[str, float]:
    """``{"knn": accuracy, "linear": accuracy}`` of ``encoder``'s detached features on the held-out half of
    ``probe``: weighted kNN (Wu et al. 2018, k = 20) and logistic regression fitted on the other half."""
    from .evaluation.features import extract_features
    from .evaluation.knn import knn_accuracy
    from .evaluation.linear import linear_probe_accuracy

    with eval_mode(encoder):
        fit = extract_features(encoder, probe.fit_inputs, probe.transform, batch_size=batch_size, device=device)
        test = extract_features(encoder, probe.test_inputs, probe.transform, batch_size=batch_size, device=device)
    classes = len(probe.classes)
    return {"knn": knn_accuracy(fit, probe.fit_labels, test, probe.test_labels, k=PROBE_KNN_K, num_classes=classes),
            "linear": linear_probe_accuracy(fit, probe.fit_labels, test, probe.test_labels)}
