"""RecBole 1.2.1 SASRec / BERT4Rec on MovieLens-100k: the peer baseline for selfsup's sequence benchmark.

Runs with the RecBole venv's python, never selfsup's (make it with ``bash benchmarks/recbole_env.sh``):

    benchmarks/.venv-recbole/bin/python benchmarks/recbole_ml100k.py \\
        --data /work/shared/data/sequences/ml-100k --work /tmp/recbole-work \\
        --model SASRec --epochs 3 --json /tmp/recbole-work/sasrec.json

What it does:
1. Writes ``WORK/ml-100k-loo/ml-100k-loo.inter`` (user_id:token item_id:token rating:float timestamp:float)
   from ``DATA/u.data``; every rating is an interaction. The dataset is deliberately NOT named ``ml-100k``:
   for that exact name RecBole 1.2.1 ignores data_path and silently loads its own bundled example copy
   (recbole/dataset_example/ml-100k, in u.data order) and applies its ml-100k.yaml (normalize_all: True,
   which min-max scales timestamps into float32 [0, 1] and merges nearby times into ties). Derived files go ONLY under --work (the GroupLens licence
   forbids redistributing the data). Rows are written sorted by (user, timestamp, line in u.data): RecBole
   stores float fields as float32, which rounds the ~8.8e8-second timestamps to multiples of 64 s and so
   creates false ties; its sorts are stable, so pre-sorting keeps the true order (ties: file order).
2. Trains with RecBole's own Trainer.fit (split {'LS': 'valid_and_test'}, order 'TO', mode full), without
   a validation set, i.e. no evaluation and no early stopping between epochs; seconds per epoch = mean wall
   time of Trainer._train_epoch (data loading + forward/backward/step; no evaluation).
3. Scores the validation and test users ITSELF with ``model.full_sort_predict`` on each user's input history
   (the most recent 50 items before the target) and computes HR@10 / NDCG@10 in plain torch with selfsup's
   protocol: full ranking over all items, every item the user interacted with before the target excluded
   (the target itself always ranked), pessimistic ties (rank = 1 + #other items with score >= target's),
   NDCG = 1/log2(rank+1). The users, targets and (truncated) inputs it builds from u.data are checked
   against RecBole's own valid/test dataloaders (943 users each; test target = last item by time).
4. Also records RecBole's own test (and valid) metrics, for reference only: RecBole masks no history items
   for sequential models and breaks score ties by topk order, so they differ from the protocol's.

Settings (selfsup presets): hidden_size 64, n_layers 2, n_heads 2, MAX_ITEM_LIST_LENGTH 50, loss_type CE
(full softmax, train_neg_sample_args None), train_batch_size 256, learning_rate 1e-3, epochs from the command
line, seed 2020 (--seed), stopping_step 10**9 (unused: no validation during fit); SASRec inner_size 64 and
hidden/attn dropout 0.2; BERT4Rec inner_size 256, hidden/attn dropout 0.1, mask_ratio 0.2. Everything else
is RecBole's default (e.g. hidden_act gelu, layer_norm_eps 1e-12, initializer_range 0.02, adam, no weight
decay, BERT4Rec ft_ratio 0.5). RecBole's BERT4Rec.full_sort_predict appends the [MASK] after the history and
drops the first position, so with 50 history items it sees the last 49 (RecBole's own behaviour, kept).

Version notes / workarounds (see recbole_env.sh for the pins):
- numpy pinned < 2 (1.26.4): RecBole 1.2.1 uses np.float / np.float_ / np.unicode_ etc.
- torch 2.13.0+cpu: torch >= 2.6 loads with weights_only=True, which breaks RecBole's checkpoint reload;
  this script never saves or reloads a checkpoint (fit(saved=False), evaluate(load_best_model=False)).
- ray is not installed (only recbole.quick_start imports it); this script does not import quick_start.
- RecBole writes ./log_tensorboard (and ./log with its logger) under the current directory: the script
  chdirs into --work first and does not call RecBole's init_logger (plain logging to stderr instead).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
from pathlib import Path

MODEL_PRESETS = {
    "SASRec": {"inner_size": 64, "hidden_dropout_prob": 0.2, "attn_dropout_prob": 0.2},
    "BERT4Rec": {"inner_size": 256, "hidden_dropout_prob": 0.1, "attn_dropout_prob": 0.1, "mask_ratio": 0.2},
}
MAX_LEN = 50
DATASET = "ml-100k-loo"  # not "ml-100k": see the module docstring
K = 10


def read_log(data_dir: Path):
    """{user: [items in time order]} from u.data (ties: file order), plus the sorted rows."""
    rows = []
    with open(data_dir / "u.data", encoding="latin-1") as f:
        for line_no, line in enumerate(f):
            if not line.strip():
                continue
            user, item, rating, ts = line.rstrip("\n").split("\t")
            rows.append((int(user), int(ts), line_no, int(item), rating, ts))
    rows.sort(key=lambda r: (r[0], r[1], r[2]))  # per user by time, ties by line in the file
    histories: dict[int, list[int]] = {}
    for user, _, _, item, _, _ in rows:
        histories.setdefault(user, []).append(item)
    return rows, histories


def write_atomic(rows, work: Path) -> Path:
    out_dir = work / DATASET
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{DATASET}.inter"
    tmp = path.with_suffix(".inter.tmp")
    with open(tmp, "w") as f:
        f.write("user_id:token\titem_id:token\trating:float\ttimestamp:float\n")
        for user, _, _, item, rating, ts in rows:
            f.write(f"{user}\t{item}\t{rating}\t{ts}\n")
    os.replace(tmp, path)
    return path


def protocol_split(histories: dict[int, list[int]]):
    """Leave-one-out: per user (>= 3 items) (input history before target, target) for valid and test."""
    valid, test = [], []
    for user in sorted(histories):
        items = histories[user]
        if len(items) < 3:
            continue
        valid.append((user, items[:-2], items[-2]))
        test.append((user, items[:-1], items[-1]))
    return valid, test


def ranks_of_targets(scores, targets, excludes):
    """1-based pessimistic ranks; column 0 (padding) never ranked; excluded items dropped, target kept."""
    import torch

    scores = torch.nan_to_num(scores.float(), nan=-math.inf)
    n, width = scores.shape
    rankable = torch.ones(n, width, dtype=torch.bool)
    rankable[:, 0] = False
    for row, items in enumerate(excludes):
        if len(items):
            rankable[row, torch.as_tensor(items, dtype=torch.long)] = False
    rows = torch.arange(n)
    t = torch.as_tensor(targets, dtype=torch.long)
    rankable[rows, t] = False  # "other than the target"
    target_score = scores[rows, t].unsqueeze(1)
    return ((scores >= target_score) & rankable).sum(dim=1) + 1


def metrics_from_ranks(ranks) -> dict[str, float]:
    import torch

    r = ranks.double()
    hit = r <= K
    ndcg = torch.where(hit, 1.0 / torch.log2(r + 1.0), torch.zeros_like(r))
    return {f"hr@{K}": float(hit.double().mean()), f"ndcg@{K}": float(ndcg.mean()), "n_users": int(r.numel())}


def score_split(model, dataset, split, device, batch=512):
    """Our protocol's metrics for [(user, history, target)] with RecBole's model.full_sort_predict."""
    import torch
    from recbole.data.interaction import Interaction

    iid = dataset.iid_field
    len_field = dataset.config["ITEM_LIST_LENGTH_FIELD"]
    seq_field = dataset.config["ITEM_ID_FIELD"] + dataset.config["LIST_SUFFIX"]
    to_id = lambda items: dataset.token2id(iid, [str(i) for i in items]).tolist()  # noqa: E731
    all_ranks = []
    model.eval()
    with torch.no_grad():
        for start in range(0, len(split), batch):
            chunk = split[start:start + batch]
            seqs = torch.zeros(len(chunk), MAX_LEN, dtype=torch.long)
            lens = torch.zeros(len(chunk), dtype=torch.long)
            targets, excludes = [], []
            for row, (_, history, target) in enumerate(chunk):
                ids = to_id(history)
                kept = ids[-MAX_LEN:]
                seqs[row, : len(kept)] = torch.as_tensor(kept)
                lens[row] = len(kept)
                excludes.append(ids)  # every item interacted with before the target
                targets.append(to_id([target])[0])
            inter = Interaction({seq_field: seqs, len_field: lens}).to(device)
            scores = model.full_sort_predict(inter).view(len(chunk), -1).cpu()
            assert scores.shape[1] == dataset.item_num, (scores.shape, dataset.item_num)
            all_ranks.append(ranks_of_targets(scores, targets, excludes))
    return metrics_from_ranks(torch.cat(all_ranks))


def check_against_recbole(loader, dataset, split, name):
    """RecBole's eval samples must be the protocol's: same users, targets and truncated inputs."""
    inter = loader._dataset.inter_feat
    uid, iid = dataset.uid_field, dataset.iid_field
    seq_field = dataset.config["ITEM_ID_FIELD"] + dataset.config["LIST_SUFFIX"]
    len_field = dataset.config["ITEM_LIST_LENGTH_FIELD"]
    users = dataset.id2token(uid, inter[uid].numpy())
    targets = dataset.id2token(iid, inter[iid].numpy())
    seqs, lens = inter[seq_field].numpy(), inter[len_field].numpy()
    theirs = {}
    for u, t, s, n in zip(users, targets, seqs, lens):
        assert u not in theirs, f"{name}: user {u} twice in RecBole's {name} set"
        theirs[u] = (t, [int(x) for x in dataset.id2token(iid, s[:n])])
    assert len(theirs) == len(split), f"{name}: RecBole has {len(theirs)} users, protocol {len(split)}"
    for user, history, target in split:
        t, s = theirs[str(user)]
        assert t == str(target), f"{name}: user {user}: RecBole target {t}, protocol {target}"
        assert s == history[-MAX_LEN:], (f"{name}: user {user}: RecBole input differs from the protocol's",
                                         s, history[-MAX_LEN:])
    return len(split)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, type=Path, help="folder with u.data (MovieLens-100k)")
    p.add_argument("--work", required=True, type=Path, help="work folder for derived files (atomic files, runs)")
    p.add_argument("--model", required=True, choices=sorted(MODEL_PRESETS))
    p.add_argument("--epochs", required=True, type=int)
    p.add_argument("--json", required=True, type=Path, help="where to write the result JSON")
    p.add_argument("--seed", type=int, default=2020)
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    args = p.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    data, work, json_out = args.data.resolve(), args.work.resolve(), args.json.resolve()
    work.mkdir(parents=True, exist_ok=True)
    rows, histories = read_log(data)
    write_atomic(rows, work)
    valid_split, test_split = protocol_split(histories)
    os.chdir(work)  # RecBole writes log_tensorboard/ etc. under the current directory

    import numpy as np
    import recbole
    import torch
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.trainer import Trainer
    from recbole.utils import get_model, init_seed

    if args.threads:
        torch.set_num_threads(args.threads)
    config_dict = {
        "data_path": str(work),
        "checkpoint_dir": str(work / "saved"),
        "use_gpu": False,
        "seed": args.seed,
        "reproducibility": True,
        "show_progress": False,
        "state": "INFO",
        "load_col": {"inter": ["user_id", "item_id", "rating", "timestamp"]},
        "USER_ID_FIELD": "user_id",
        "ITEM_ID_FIELD": "item_id",
        "RATING_FIELD": "rating",
        "TIME_FIELD": "timestamp",
        "MAX_ITEM_LIST_LENGTH": MAX_LEN,
        "user_inter_num_interval": "[0,inf)",
        "item_inter_num_interval": "[0,inf)",
        "val_interval": None,
        "rm_dup_inter": None,
        "normalize_all": False,
        "normalize_field": None,
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "full"},
        "metrics": ["Hit", "NDCG"],
        "topk": [K],
        "valid_metric": f"NDCG@{K}",
        "hidden_size": 64,
        "n_layers": 2,
        "n_heads": 2,
        "loss_type": "CE",
        "train_neg_sample_args": None,
        "train_batch_size": 256,
        "learning_rate": 1e-3,
        "epochs": args.epochs,
        "stopping_step": 10**9,
        **MODEL_PRESETS[args.model],
    }
    sys.argv = sys.argv[:1]  # RecBole's Config also parses sys.argv as --key=value overrides
    config = Config(model=args.model, dataset=DATASET, config_dict=config_dict)
    assert Path(config["data_path"]).resolve() == (work / DATASET).resolve(), config["data_path"]
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    n_valid = check_against_recbole(valid_data, dataset, valid_split, "valid")
    n_test = check_against_recbole(test_data, dataset, test_split, "test")
    logging.info("protocol check: %d valid / %d test users match RecBole's samples", n_valid, n_test)

    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    trainer = Trainer(config, model)
    epoch_seconds: list[float] = []
    train_epoch = trainer._train_epoch

    def timed_train_epoch(*a, **kw):
        start = time.perf_counter()
        out = train_epoch(*a, **kw)
        epoch_seconds.append(time.perf_counter() - start)
        return out

    trainer._train_epoch = timed_train_epoch
    trainer.fit(train_data, valid_data=None, saved=False, show_progress=False)  # no eval, no early stopping

    ours_valid = score_split(model, dataset, valid_split, config["device"])
    ours_test = score_split(model, dataset, test_split, config["device"])
    rb_valid = trainer.evaluate(valid_data, load_best_model=False)
    rb_test = trainer.evaluate(test_data, load_best_model=False)

    keys = ["model", "seed", "hidden_size", "n_layers", "n_heads", "inner_size", "hidden_dropout_prob",
            "attn_dropout_prob", "hidden_act", "layer_norm_eps", "initializer_range", "loss_type",
            "MAX_ITEM_LIST_LENGTH", "train_batch_size", "learning_rate", "learner", "weight_decay", "epochs",
            "stopping_step", "eval_args", "train_neg_sample_args", "mask_ratio", "ft_ratio", "transform"]
    cfg = {k: config[k] for k in keys if config[k] is not None or k == "train_neg_sample_args"}
    result = {
        "model": args.model,
        "epochs": args.epochs,
        "seconds_per_epoch": float(np.mean(epoch_seconds)) if epoch_seconds else None,
        "epoch_seconds": epoch_seconds,
        "train_losses": {int(k): float(v) for k, v in trainer.train_loss_dict.items()},
        "valid": {f"hr@{K}": ours_valid[f"hr@{K}"], f"ndcg@{K}": ours_valid[f"ndcg@{K}"], "n_users": ours_valid["n_users"]},
        "test": {f"hr@{K}": ours_test[f"hr@{K}"], f"ndcg@{K}": ours_test[f"ndcg@{K}"], "n_users": ours_test["n_users"]},
        "recbole_valid": {k: float(v) for k, v in rb_valid.items()},
        "recbole_test": {k: float(v) for k, v in rb_test.items()},
        "config": json.loads(json.dumps(cfg, default=str)),
        "n_items": int(dataset.item_num - 1),
        "n_users": int(dataset.user_num - 1),
        "n_train_samples": len(train_data._dataset),
        "torch_threads": torch.get_num_threads(),
        "recbole_version": recbole.__version__,
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
    }
    json_out.parent.mkdir(parents=True, exist_ok=True)
    json_out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("model", "epochs", "seconds_per_epoch", "valid", "test", "recbole_test")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
