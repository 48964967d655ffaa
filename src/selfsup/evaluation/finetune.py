"""End-to-end fine-tuning with a linear head, for a fixed optimisation budget.

Semi-supervised fine-tuning as in SimCLR (Chen et al. 2020, §B.5) and the label-efficiency
comparison of Hénaff et al. 2020 ("Data-Efficient Image Recognition with Contrastive Predictive
Coding"): the whole network plus a linear classifier is trained on the labelled subset. The
budget is a number of optimisation *steps*, so a pretrained and a from-scratch encoder get the
same compute whatever the label count. AdamW (Loshchilov & Hutter 2019) with a cosine schedule
(Loshchilov & Hutter 2017, SGDR). The first ``head_warmup`` fraction of the steps trains the head
alone on frozen features, then everything trains (LP-FT, Kumar et al. 2022, "Fine-Tuning can
Distort Pretrained Features and Underperform Out-of-Distribution"): a random head's large early
gradients would otherwise wreck pretrained features when labels are few.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from selfsup.encoders.base import Encoder
from selfsup.schedules import warmup_cosine


class _Classifier(nn.Module):
    """A linear head on the pooled embedding ``encoder.embed(x)``."""

    def __init__(self, encoder: Encoder, num_classes: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(int(encoder.dim), num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.encoder.embed(x))


def _batch_indices(n: int, batch_size: int, steps: int, generator: torch.Generator):
    """Yield ``steps`` index batches: epoch-wise permutations when ``n >= batch_size``,
    otherwise ``batch_size`` indices drawn with replacement."""
    if n < batch_size:
        for _ in range(steps):
            yield torch.randint(n, (batch_size,), generator=generator)
        return
    perm, pos = torch.randperm(n, generator=generator), 0
    for _ in range(steps):
        if pos + batch_size > n:
            perm, pos = torch.randperm(n, generator=generator), 0
        yield perm[pos : pos + batch_size]
        pos += batch_size


def finetune_accuracy(
    encoder: Encoder,
    train_inputs: Tensor,
    train_labels: Tensor,
    test_inputs: Tensor,
    test_labels: Tensor,
    num_classes: int,
    train_transform: Callable[[Tensor, torch.Generator], Tensor],
    eval_transform: Callable[[Tensor], Tensor],
    steps: int = 200,
    batch_size: int = 64,
    lr: float = 1e-3,
    weight_decay: float = 0.05,
    head_warmup: float = 0.25,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> float:
    """Fine-tune a deep copy of ``encoder`` plus a linear head; return test top-1 accuracy.

    Trains for exactly ``steps`` AdamW steps with a cosine-decayed learning rate. Each step draws
    ``batch_size`` training samples (with replacement when the training set is smaller than
    the batch), moves them to ``device`` and applies ``train_transform(batch, generator)``, where
    ``generator`` is a ``torch.Generator`` on ``device`` seeded with ``seed``. Test inputs go
    through ``eval_transform`` with the model in eval mode. The caller's encoder is not touched.
    During the first ``round(head_warmup * steps)`` steps the encoder is frozen (eval mode, no
    gradients) and only the head learns.
    """
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be >= 1, got {steps} and {batch_size}")
    n_train = train_inputs.shape[0]
    if n_train == 0:
        raise ValueError("finetune_accuracy needs at least one training sample")
    device = torch.device(device)
    train_labels = train_labels.reshape(-1).long()
    test_labels = test_labels.reshape(-1).long()

    with torch.random.fork_rng(devices=[]):  # seeded head init without touching global RNG
        torch.manual_seed(seed)
        model = _Classifier(copy.deepcopy(encoder), num_classes)
    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: warmup_cosine(step, steps))
    index_gen = torch.Generator().manual_seed(seed)
    aug_gen = torch.Generator(device=device).manual_seed(seed)

    head_steps = int(round(head_warmup * steps))
    model.train()
    model.encoder.requires_grad_(head_steps == 0).train(head_steps == 0)
    for step, idx in enumerate(_batch_indices(n_train, batch_size, steps, index_gen)):
        if step == head_steps and step > 0:  # linear-probe phase over: train end to end
            model.encoder.requires_grad_(True).train()
        x = train_transform(train_inputs[idx].to(device, non_blocking=True), aug_gen)
        y = train_labels[idx].to(device, non_blocking=True)
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()

    n_test = test_inputs.shape[0]
    if n_test == 0:
        return float("nan")
    model.eval()
    correct = 0
    with torch.inference_mode():
        for start in range(0, n_test, batch_size):
            x = eval_transform(test_inputs[start : start + batch_size].to(device, non_blocking=True))
            pred = model(x).argmax(dim=1).cpu()
            correct += int((pred == test_labels[start : start + batch_size]).sum().item())
    return correct / n_test
