"""Class-balanced label subsets for label-efficiency curves.

The usual semi-supervised protocol (SimCLR, Chen et al. 2020, §B.5; BYOL, Grill et al. 2020)
trains on a fixed, class-balanced fraction of the labels (e.g. 1 % and 10 % of ImageNet).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def class_balanced_subset(labels: Tensor, fraction: float, seed: int) -> Tensor:
    """Sorted indices of a class-balanced random subset of ``labels``.

    Per class ``c`` with ``n_c`` samples, ``max(1, round(fraction * n_c))`` samples are drawn
    without replacement (round half up), using a generator seeded with ``seed``, so the same seed
    gives the same subset. ``fraction == 1.0`` returns every index. Subsets of different
    fractions are not nested.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    labels = torch.as_tensor(labels).reshape(-1).cpu()
    n = labels.numel()
    if fraction == 1.0 or n == 0:
        return torch.arange(n, dtype=torch.long)
    generator = torch.Generator().manual_seed(int(seed))
    chosen: list[Tensor] = []
    for c in torch.unique(labels).tolist():  # sorted, so the draw order is fixed
        members = torch.nonzero(labels == c, as_tuple=False).reshape(-1)
        n_c = members.numel()
        take = min(n_c, max(1, math.floor(fraction * n_c + 0.5)))
        perm = torch.randperm(n_c, generator=generator)[:take]
        chosen.append(members[perm])
    return torch.sort(torch.cat(chosen)).values.to(torch.long)


def nested_subset(n: int, fraction: float, seed: int) -> Tensor:
    """Sorted indices of the first ``max(1, round(fraction * n))`` items of one permutation of ``range(n)`` seeded
    with ``seed``: the subsets of growing fractions are nested (1 % of the pairs is inside 10 %), for tasks without
    classes (translation pairs)."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    take = min(n, max(1, math.floor(fraction * n + 0.5)))
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))
    return torch.sort(perm[:take]).values.to(torch.long)


def group_balanced_order(groups: list[str], seconds: list[float], seed: int) -> list[int]:
    """Every index, in the order a growing budget takes them: each group's items shuffled (``seed``), then the
    group with the fewest seconds taken so far gives its next item (ties: a seeded group order). A budget takes a
    prefix of this order, so smaller budgets are nested in larger ones and each holds about the same time per
    group (speakers, for speech: as the 10 min / 1 h / 10 h splits of Libri-light, Kahn et al. 2020)."""
    generator = torch.Generator().manual_seed(int(seed))
    names = sorted(set(groups))
    rank = {name: int(r) for name, r in zip(names, torch.randperm(len(names), generator=generator).tolist())}
    queues = {}
    for name in names:
        members = [i for i, g in enumerate(groups) if g == name]
        queues[name] = [members[j] for j in torch.randperm(len(members), generator=generator).tolist()]
    taken = {name: 0.0 for name in names}
    order: list[int] = []
    while len(order) < len(groups):
        name = min((n for n in names if queues[n]), key=lambda n: (taken[n], rank[n]))
        index = queues[name].pop(0)
        taken[name] += float(seconds[index])
        order.append(index)
    return order


def budget_prefix(order: list[int], seconds: list[float], budget: float) -> list[int]:
    """The shortest prefix of ``order`` holding at least ``budget`` seconds (all of it when there is less)."""
    total, chosen = 0.0, []
    for index in order:
        if total >= budget:
            break
        chosen.append(index)
        total += float(seconds[index])
    return chosen
