"""Two real processes (gloo, CPU) against one process holding the whole batch.

Each rank holds half of a fixed global batch. For SimCLR's ``info_nce`` and MoCo (v2's queue loss
with ``FeatureQueue.enqueue``, v3's ctr loss) and for the ``simclr`` / ``moco`` methods themselves
(eval mode, so BatchNorm does not depend on the batch split), we check that
(a) the gathered candidates / the queue equal the single-process tensors,
(b) the mean of the per-rank losses equals the single-process loss, and
(c) gradients averaged as DDP does (per-rank gradient / world size; for inputs, each rank's rows)
    equal the single-process gradients.
The children run :func:`_compute` on their half and save what they saw; the parent runs the same
function on the whole batch with no process group (every collective is then a no-op) and compares.
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from selfsup.encoders import build_encoder
from selfsup.losses import info_nce, moco_v2_loss, moco_v3_loss
from selfsup.losses.contrastive import _gather_candidates
from selfsup.methods.memory import FeatureQueue
from selfsup.registry import get_method
from selfsup.types import Modality

from method_checks import SIZE, fixed_batch

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not built in")

WORLD = 2
N, D, QUEUE = 6, 5, 10  # global batch N (N / WORLD per rank); a queue of 10 wraps around after 2 x 6 keys
METHODS = {"simclr": {}, "moco_v2": {"version": 2, "queue_size": 32}, "moco_v3": {"version": 3}}
TOL = {"rtol": 1e-4, "atol": 1e-6}


def _embeddings() -> dict[str, torch.Tensor]:
    """The fixed global batch of embeddings; the same in every process."""
    g = torch.Generator().manual_seed(0)
    return {name: torch.randn(N, D, generator=g) for name in ("z1", "z2", "q", "k", "k_next")}


def _build(key: str):
    hparams = METHODS[key]
    name = key.split("_")[0]
    torch.manual_seed(0)
    encoder = build_encoder({"name": "tiny_cnn", "image_size": SIZE})
    return get_method(name, Modality.IMAGE).cls(encoder, SIZE, **hparams)


def _leaf(x: torch.Tensor) -> torch.Tensor:
    return x.clone().requires_grad_(True)


def _compute(rows: slice, inputs: dict) -> dict[str, torch.Tensor]:
    """Everything one process sees when it holds ``rows`` of the global batch."""
    e = {name: x[rows] for name, x in _embeddings().items()}
    out: dict[str, torch.Tensor] = {}

    # SimCLR: negatives gathered with gradient
    z1, z2 = _leaf(e["z1"]), _leaf(e["z2"])
    loss = info_nce(z1, z2, temperature=0.5)
    loss.backward()
    candidates, offset = _gather_candidates(F.normalize(torch.cat([e["z1"], e["z2"]]), dim=1), True, with_grad=True)
    out |= {"info_nce/loss": loss.detach(), "info_nce/grad_z1": z1.grad, "info_nce/grad_z2": z2.grad,
            "info_nce/candidates": candidates.detach(), "info_nce/offset": torch.tensor(offset)}

    # MoCo v2: the queue holds the keys of every process; the loss needs no collective
    torch.manual_seed(1)  # the same random initial queue everywhere
    queue = FeatureQueue(QUEUE, D)
    queue.enqueue(e["k_next"])
    q = _leaf(e["q"])
    loss = moco_v2_loss(q, e["k"], queue.features, temperature=0.2)
    loss.backward()
    out |= {"v2/loss": loss.detach(), "v2/grad_q": q.grad, "v2/queue_1": queue.features.clone()}
    queue.enqueue(e["k"])  # 12 keys into 10 slots: wraps around
    out |= {"v2/queue_2": queue.features.clone(), "v2/ptr": queue.ptr.clone()}

    # MoCo v3: keys gathered without gradient, labels offset by rank
    q = _leaf(e["q"])
    loss = moco_v3_loss(q, e["k"], temperature=1.0)
    loss.backward()
    keys, offset = _gather_candidates(e["k"], True, with_grad=False)
    out |= {"v3/loss": loss.detach(), "v3/grad_q": q.grad, "v3/keys": keys, "v3/offset": torch.tensor(offset)}

    # whole methods: identical weights, eval mode, fixed pretext outputs
    for key in METHODS:
        method = _build(key)
        method.load_state_dict(inputs[f"{key}/state"])
        method.eval()
        batch = {view: x[rows] for view, x in inputs["views"].items()}
        loss = method.loss(batch).loss
        loss.backward()
        out[f"{key}/loss"] = loss.detach()
        out |= {f"{key}/grad/{n}": p.grad for n, p in method.named_parameters() if p.grad is not None}
    return out


def _worker(rank: int, init_file: str, folder: str) -> None:
    torch.set_num_threads(1)
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD,
        timeout=datetime.timedelta(seconds=60),
    )
    try:
        inputs = torch.load(os.path.join(folder, "inputs.pt"), weights_only=True)
        per_rank = N // WORLD
        result = _compute(slice(rank * per_rank, (rank + 1) * per_rank), inputs)
        torch.save(result, os.path.join(folder, f"rank{rank}.pt"))
    finally:
        torch.distributed.destroy_process_group()


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[list[dict], dict]:
    """(per-rank results of the 2-process run, the single-process results on the whole batch)."""
    folder = tmp_path_factory.mktemp("ddp")
    inputs = {f"{key}/state": _build(key).state_dict() for key in METHODS}
    pretext = _build("simclr").pretext(Modality.IMAGE)
    inputs["views"] = pretext(fixed_batch(n=N), torch.Generator().manual_seed(0))
    torch.save(inputs, folder / "inputs.pt")

    # a child's exception is raised here (ProcessRaisedException) with the child's traceback
    torch.multiprocessing.spawn(_worker, args=(str(folder / "init"), str(folder)), nprocs=WORLD, join=True)
    ranks = [torch.load(folder / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]
    assert not torch.distributed.is_initialized()  # the reference below really is one process
    return ranks, _compute(slice(None), inputs)


def _rank_rows(r: int) -> slice:
    return slice(r * (N // WORLD), (r + 1) * (N // WORLD))


def _check_loss_and_input_grads(ranks, single, prefix: str, inputs: list[str]) -> None:
    mean_loss = sum(r[f"{prefix}/loss"] for r in ranks) / WORLD  # (b)
    torch.testing.assert_close(mean_loss, single[f"{prefix}/loss"], rtol=0, atol=1e-5)
    for name in inputs:  # (c) DDP averages over processes: each rank's gradient / WORLD, on its rows
        for r, result in enumerate(ranks):
            expected = single[f"{prefix}/{name}"][_rank_rows(r)]
            torch.testing.assert_close(result[f"{prefix}/{name}"] / WORLD, expected, **TOL)


def test_info_nce_two_processes_match_one(runs):
    ranks, single = runs
    e = _embeddings()
    for r, result in enumerate(ranks):  # (a) the candidates: every rank's [z1; z2] in rank order, on every rank
        expected = torch.cat([F.normalize(torch.cat([e["z1"][_rank_rows(s)], e["z2"][_rank_rows(s)]]), dim=1)
                              for s in range(WORLD)])
        torch.testing.assert_close(result["info_nce/candidates"], expected)
        assert int(result["info_nce/offset"]) == r * 2 * (N // WORLD)
    # ... which are the single process's candidates, reordered
    assert sorted(map(tuple, ranks[0]["info_nce/candidates"].tolist())) == sorted(
        map(tuple, single["info_nce/candidates"].tolist()))
    _check_loss_and_input_grads(ranks, single, "info_nce", ["grad_z1", "grad_z2"])


def test_moco_v2_queue_and_loss_two_processes_match_one(runs):
    ranks, single = runs
    for result in ranks:  # (a) every rank holds the queue one process gets by enqueueing the whole batch
        for name in ("v2/queue_1", "v2/queue_2", "v2/ptr"):
            torch.testing.assert_close(result[name], single[name], rtol=0, atol=0)
    e = _embeddings()
    assert int(single["v2/ptr"]) == (2 * N) % QUEUE  # wrapped around
    torch.testing.assert_close(single["v2/queue_2"][: 2 * N - QUEUE], F.normalize(e["k"][QUEUE - N :], dim=1))
    _check_loss_and_input_grads(ranks, single, "v2", ["grad_q"])


def test_moco_v3_loss_two_processes_match_one(runs):
    ranks, single = runs
    for r, result in enumerate(ranks):  # (a) every rank contrasts with the keys of the whole batch
        torch.testing.assert_close(result["v3/keys"], single["v3/keys"], rtol=0, atol=0)
        assert int(result["v3/offset"]) == r * (N // WORLD)
    _check_loss_and_input_grads(ranks, single, "v3", ["grad_q"])


@pytest.mark.parametrize("key", list(METHODS))
def test_method_loss_two_processes_match_one(runs, key):
    ranks, single = runs
    mean_loss = sum(r[f"{key}/loss"] for r in ranks) / WORLD
    torch.testing.assert_close(mean_loss, single[f"{key}/loss"], rtol=0, atol=1e-5)
    grads = sorted(name for name in single if name.startswith(f"{key}/grad/"))
    assert grads and all(sorted(n for n in r if n.startswith(f"{key}/grad/")) == grads for r in ranks)
    assert not any("/grad/key_" in name for name in grads)  # the momentum encoder gets no gradient
    for name in grads:  # DDP's all-reduce average of the parameter gradients
        torch.testing.assert_close(sum(r[name] for r in ranks) / WORLD, single[name], **TOL, msg=name)
