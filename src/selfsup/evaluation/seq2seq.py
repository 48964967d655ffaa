"""Fine-tuning and beam-search decoding of a transformers sequence-to-sequence model on token-id pairs, for a fixed
optimisation budget (the same steps for a pretrained model and its from-scratch baseline, whatever the pair count).

AdamW (Loshchilov & Hutter 2019) with linear warmup and cosine decay, teacher forcing with cross-entropy on the
target tokens (the model shifts the labels right behind its decoder start token), gradient clipping at 1; decoding
with beam search (``model.generate(num_beams=...)``), as in BART's translation fine-tuning (Lewis et al. 2020 §3.4)
and the warm-started encoder-decoders of Rothe, Narayan & Severyn 2020 ("Leveraging Pre-trained Checkpoints for
Sequence Generation Tasks", TACL). Nothing here knows what the tokens stand for.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..pretext.bart_noise import decoder_labels
from ..schedules import warmup_cosine
from .finetune import _batch_indices


@dataclass
class Seq2SeqBudget:
    """How a sequence-to-sequence model is fine-tuned: ``steps`` AdamW steps of ``batch_size`` pairs at ``lr`` (the
    first ``warmup`` share of the steps warms up linearly), weight decay ``weight_decay``."""

    steps: int = 300
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup: float = 0.1


def _trim(ids: Tensor, pad_token_id: int) -> Tensor:
    """``ids`` [B, T] without the columns that are padding in every row."""
    used = (ids != pad_token_id).any(dim=0).nonzero()
    return ids[:, : int(used.max()) + 1] if used.numel() else ids[:, :1]


def finetune_seq2seq(model: nn.Module, sources: Tensor, targets: Tensor, pad_token_id: int, budget: Seq2SeqBudget,
                     seed: int, device: str, progress: Callable[[int, float], None] | None = None) -> list[float]:
    """Train ``model`` (in place) to map ``sources`` [N, S] to ``targets`` [N, T] (right-padded token ids, each
    wrapped in [CLS] … [SEP]); returns the loss of each step. ``progress(step, loss)`` is called now and then."""
    torch.manual_seed(seed)
    model.to(device).train()
    decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim > 1]
    rest = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim <= 1]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": budget.weight_decay},
                                   {"params": rest, "weight_decay": 0.0}], lr=budget.lr)
    warmup = int(budget.warmup * budget.steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: warmup_cosine(s, budget.steps, warmup))
    generator = torch.Generator().manual_seed(seed)
    losses: list[float] = []
    with warnings.catch_warnings():  # EncoderDecoderModel's notice that it builds decoder inputs from the labels
        warnings.filterwarnings("ignore", message="Version v4.12.0 introduces", category=FutureWarning)
        _train(model, sources, targets, pad_token_id, budget, optimizer, scheduler, generator, device, losses,
               progress)
    return losses


def _train(model: nn.Module, sources: Tensor, targets: Tensor, pad_token_id: int, budget: Seq2SeqBudget,
           optimizer: torch.optim.Optimizer, scheduler, generator: torch.Generator, device: str, losses: list[float],
           progress: Callable[[int, float], None] | None) -> None:
    for step, idx in enumerate(_batch_indices(len(sources), budget.batch_size, budget.steps, generator)):
        src = _trim(sources[idx], pad_token_id).to(device)
        tgt = _trim(targets[idx], pad_token_id).to(device)
        out = model(input_ids=src, attention_mask=(src != pad_token_id).long(),
                    labels=decoder_labels(tgt, (tgt != pad_token_id).long()), use_cache=False)
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        losses.append(float(out.loss.detach()))
        if progress is not None and (step + 1) % max(1, budget.steps // 5) == 0:
            progress(step + 1, sum(losses[-20:]) / len(losses[-20:]))


@torch.no_grad()
def generate_ids(model: nn.Module, sources: Tensor, pad_token_id: int, num_beams: int, max_new_tokens: int,
                 device: str, batch_size: int = 64) -> list[list[int]]:
    """Beam-search output ids of each source row (``model.generate``; its generation config names the decoder's
    start and end tokens)."""
    model.to(device).eval()
    outputs: list[list[int]] = []
    for start in range(0, len(sources), batch_size):
        src = _trim(sources[start:start + batch_size], pad_token_id).to(device)
        ids = model.generate(input_ids=src, attention_mask=(src != pad_token_id).long(), num_beams=num_beams,
                             max_new_tokens=max_new_tokens, early_stopping=True)
        outputs.extend(row.tolist() for row in ids.cpu())
    return outputs
