"""A loaded encoder's downstream evaluation, per modality: read the labeled files, turn them into the
inputs the encoder takes, run the protocols and baselines.

- images: a folder with one subfolder per class; inputs are uint8 images, resized and normalised on the
  fly (light crop + flip augmentation while fine-tuning).
- text: ``.tsv``/``.csv`` of ``label<TAB>text`` (or columns ``label``, ``text``), tokenized with the run's
  tokenizer; baseline ``tfidf`` adds TF-IDF + logistic regression on the same label subsets (encoder
  ``"tfidf"``, protocol ``"linear"``); protocol ``similarity`` scores sentence pairs
  (``score<TAB>sentence1<TAB>sentence2``) by the Spearman correlation of embedding cosines with the gold
  scores (metric ``spearman``; no labels, so ``label_fraction`` and ``n_labels`` are 0).
- audio: a folder with one subfolder per class, or a ``.csv``/``.tsv`` with columns ``path`` and ``label``;
  recordings are read at the encoder's sample rate, centre-cropped to the run's clip length and held
  NaN-padded (:class:`WaveBatch` turns a batch into the encoder's input); fine-tuning adds light noise;
  baseline ``mfcc`` adds MFCC statistics + logistic regression on the same label subsets (encoder
  ``"mfcc"``, protocol ``"linear"``).
- sequences (``sequence_eval.py``): protocol ``ranking`` (leave-one-out next-item ranking on the run's own
  log, with a popularity baseline), or user attributes from a ``.csv``/``.tsv`` of ``user,label`` rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ..encoders import Encoder, build_encoder
from ..errors import SelfSupError
from .label_efficiency import PROTOCOLS, EvalResult, run_label_efficiency
from .subsets import class_balanced_subset

BASELINES = {"image": ("scratch",), "text": ("scratch", "tfidf"), "audio": ("scratch", "mfcc")}
PAIRWISE = {"text": "similarity", "sequence": "ranking"}  # the protocol without labels, run on its own


class TokenBatch:
    """Padded token ids [B, T] → the text encoder's input dict, trimmed to the batch's longest text."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, ids: Tensor, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        mask = (ids != self.pad_token_id).long()
        length = max(1, int(mask.sum(1).max()))
        return {"input_ids": ids[:, :length], "attention_mask": mask[:, :length]}


class WaveBatch:
    """NaN-padded waveforms [B, L] → the audio encoder's input dict, trimmed to the batch's longest clip;
    with ``noise`` (fine-tuning), white noise at 20-40 dB SNR."""

    def __init__(self, noise: bool = False) -> None:
        self.noise = noise

    def __call__(self, waves: Tensor, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        mask = (~torch.isnan(waves)).long()
        length = max(1, int(mask.sum(1).max()))
        waves, mask = torch.nan_to_num(waves[:, :length], nan=0.0), mask[:, :length]
        if self.noise:
            from ..pretext.audio import add_noise

            waves = add_noise(waves, mask, min_snr_db=20.0, max_snr_db=40.0, generator=generator)
        return {"input_values": waves, "attention_mask": mask}


@dataclass
class Labeled:
    """Inputs the encoder takes (after ``transform``), integer labels, and the raw texts (text only)."""

    inputs: Tensor
    labels: Tensor
    classes: list[str]
    texts: list[str] | None = None


def check_request(modality: str, protocols: list[str], baselines: list[str], train: str | Path | None,
                  test: str | Path | None = None) -> None:
    """Fail early, in one line, on a protocol or baseline the modality does not have, or a missing file."""
    own = PAIRWISE.get(modality)
    valid = (*PROTOCOLS, own) if own else PROTOCOLS
    unknown = [p for p in protocols if p not in valid]
    if unknown:
        raise SelfSupError(f"--protocol {','.join(unknown)}: not available for {modality} data; use {', '.join(valid)}")
    if own in protocols and len(protocols) > 1:
        raise SelfSupError(f"--protocol {own} cannot be mixed with {','.join(p for p in protocols if p != own)}; "
                           "run them separately")
    fitting = BASELINES.get(modality, ("scratch",))
    for name in baselines:
        if name not in fitting:
            raise SelfSupError(f"--baseline {name!r} is not available for {modality} data; use {', '.join(fitting)} or none")
    if own == "ranking" and own in protocols:
        return  # the run's own interaction log holds the targets
    if test is None:
        raise SelfSupError(f"--test is needed for --protocol {','.join(protocols)}"
                           + ("; or use --protocol ranking (no labels)" if modality == "sequence" else ""))
    if train is None and own not in protocols:
        hint = f" (only --protocol {own} works without it)" if own else ""
        raise SelfSupError(f"--train LABELED is needed for knn, linear and finetune{hint}")


def _encoders(loaded, baselines: list[str], seed: int) -> dict[str, Encoder]:
    """The run's encoder, and the same architecture from a random init when ``scratch`` is asked for."""
    encoders = {"pretrained": loaded.encoder}
    if "scratch" in baselines:
        torch.manual_seed(seed)
        encoders["scratch"] = build_encoder(loaded.encoder.config)
    return encoders


def evaluate_ranking(loaded, baselines: list[str], seed: int, device: str) -> list[EvalResult]:
    """Leave-one-out next-item ranking of a sequence run (see ``sequence_eval.py``)."""
    from .sequence_eval import evaluate_ranking as rank

    return rank(loaded, _encoders(loaded, baselines, seed), device)


def _text_labeled(loaded, path: str | Path, classes: list[str] | None, encoding: str) -> Labeled:
    from ..data.text import encode_texts, load_labeled_text

    data = load_labeled_text(path, encoding=encoding, classes=classes)
    return Labeled(encode_texts(data.texts, loaded.tokenizer, loaded.input_size), data.labels, data.classes, data.texts)


def _image_labeled(loaded, path: str | Path, classes: list[str] | None) -> Labeled:
    from ..data.images import load_labeled

    data = load_labeled(path, loaded.input_size, classes=classes)
    return Labeled(data.images, data.labels, data.classes)


def _audio_labeled(loaded, path: str | Path, classes: list[str] | None) -> Labeled:
    from ..data.audio import load_labeled_audio

    data = load_labeled_audio(path, loaded.encoder.sample_rate, loaded.input_size, classes=classes)
    order = torch.argsort((~torch.isnan(data.waves)).sum(1))  # batches of similar lengths waste less on padding
    return Labeled(data.waves[order], data.labels[order], data.classes)


def _transforms(loaded) -> tuple[Callable, Callable]:
    """(train_transform, eval_transform) for fine-tuning and feature extraction."""
    if loaded.modality == "audio":
        return WaveBatch(noise=True), WaveBatch()
    if loaded.modality == "text":
        batch = TokenBatch(loaded.encoder.spec.pad_token_id)
        return batch, batch  # dropout is the fine-tuning noise
    from ..pretext.image_eval import eval_transform
    from ..pretext.image_recipes import light_augment

    return light_augment(loaded.input_size, scale=(0.5, 1.0)), eval_transform(loaded.input_size)


def evaluate_labeled(loaded, train: str | Path, test: str | Path, protocols: list[str], fractions: list[float],
                     baselines: list[str], seed: int, device: str, encoding: str = "utf-8",
                     finetune_steps: int | None = None, progress: Callable[[str], None] | None = None) -> list[EvalResult]:
    """Label efficiency of ``loaded`` (and the baselines) on labeled train/test files."""
    if loaded.modality == "sequence":
        from .sequence_eval import evaluate_user_attributes

        return evaluate_user_attributes(loaded, _encoders(loaded, baselines, seed), train, test, protocols, fractions,
                                        seed, device, finetune_steps=finetune_steps, progress=progress)
    readers = {"text": lambda path, classes: _text_labeled(loaded, path, classes, encoding),
               "audio": lambda path, classes: _audio_labeled(loaded, path, classes)}
    read = readers.get(loaded.modality, lambda path, classes: _image_labeled(loaded, path, classes))
    train_set = read(train, None)
    test_set = read(test, train_set.classes)
    encoders = _encoders(loaded, baselines, seed)
    train_transform, eval_transform = _transforms(loaded)
    results = run_label_efficiency(
        encoders, train_set.inputs, train_set.labels, test_set.inputs, test_set.labels,
        protocols=protocols, fractions=fractions, train_transform=train_transform, eval_transform=eval_transform,
        seed=seed, device=device, finetune_kwargs={"steps": finetune_steps} if finetune_steps else None,
        progress=progress,
    )
    if "tfidf" in baselines:
        from .tfidf import tfidf_accuracy

        results += _baseline_rows("tfidf", train_set.labels, fractions, seed, lambda idx: tfidf_accuracy(
            [train_set.texts[i] for i in idx.tolist()], train_set.labels[idx], test_set.texts, test_set.labels, seed=seed))
    if "mfcc" in baselines:
        from .linear import linear_probe_accuracy
        from .mfcc_baseline import mfcc_statistics

        rate = loaded.encoder.sample_rate
        train_feats, test_feats = mfcc_statistics(train_set.inputs, rate), mfcc_statistics(test_set.inputs, rate)
        results += _baseline_rows("mfcc", train_set.labels, fractions, seed, lambda idx: linear_probe_accuracy(
            train_feats[idx], train_set.labels[idx], test_feats, test_set.labels, seed=seed))
    return results


def _baseline_rows(name: str, labels: Tensor, fractions: list[float], seed: int,
                   accuracy: Callable[[Tensor], float]) -> list[EvalResult]:
    """One ``linear`` row per fraction for a feature baseline, fitted on the label subsets the encoders saw."""
    rows = []
    for fraction in fractions:
        idx = class_balanced_subset(labels, fraction, seed)
        rows.append(EvalResult("linear", float(fraction), int(idx.numel()), name, "accuracy", accuracy(idx)))
    return rows


def evaluate_similarity(loaded, pairs: str | Path, baselines: list[str], seed: int, device: str,
                        encoding: str = "utf-8") -> list[EvalResult]:
    """Spearman correlation between the cosine similarity of the two sentences' embeddings and the gold
    scores (the STS protocol of Reimers & Gurevych 2019 and Gao et al. 2021), for each encoder."""
    from ..data.text import encode_texts, load_text_pairs
    from .similarity import spearman, spearman_similarity

    data = load_text_pairs(pairs, encoding=encoding)
    first = encode_texts(data.first, loaded.tokenizer, loaded.input_size)
    second = encode_texts(data.second, loaded.tokenizer, loaded.input_size)
    transform = TokenBatch(loaded.encoder.spec.pad_token_id)
    encoders = _encoders(loaded, baselines, seed)
    results = [EvalResult("similarity", 0.0, 0, name, "spearman",
                          spearman_similarity(encoder, first, second, data.scores, transform, device=device))
               for name, encoder in encoders.items()]
    if "tfidf" in baselines:
        from .tfidf import tfidf_similarity

        cosine = tfidf_similarity(data.first, data.second, fit_texts=data.first + data.second)
        results.append(EvalResult("similarity", 0.0, 0, "tfidf", "spearman", spearman(cosine, data.scores)))
    return results
