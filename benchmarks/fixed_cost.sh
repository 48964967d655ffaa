#!/usr/bin/env bash
# The fixed cost of a run, as a user meets it: whole-process wall time of `selfsup pretrain` with 1 and with
# 11 steps (ResNet-18, 32 px, batch 256) on a folder of images, for this checkout and for an older revision,
# interleaved, REPEATS times each; prints every time and the minimum per (revision, steps).
# fixed cost = T(1 step) - (T(11) - T(1)) / 10.
#   benchmarks/fixed_cost.sh DATA [BASE_REV] [REPEATS]      e.g. benchmarks/fixed_cost.sh /tmp/c2560 fec26a0 4
# DATA: 2,560 CIFAR-10 JPEGs in the README's measurement (the first 2,560 files of ../shared/data/images/cifar10/train.tar).
set -euo pipefail
DATA=${1:?DATA folder of images}; BASE=${2:-fec26a0}; REPEATS=${3:-4}
ROOT=$(cd "$(dirname "$0")/.." && pwd); PY=$ROOT/.venv/bin/python
BASE_TREE=$(mktemp -d); OUT=$(mktemp -d)
git -C "$ROOT" worktree add -q --detach "$BASE_TREE" "$BASE"
trap 'git -C "$ROOT" worktree remove --force "$BASE_TREE"; rm -rf "$OUT"' EXIT
for rep in $(seq "$REPEATS"); do
  for tree in "$BASE_TREE" "$ROOT"; do
    for steps in 1 11; do
      rm -rf "$OUT/run"
      start=$(date +%s.%N)
      PYTHONPATH=$tree/src "$PY" -m selfsup.cli pretrain "$DATA" --encoder resnet18 --image-size 32 --batch-size 256 \
        --max-steps "$steps" --out "$OUT/run" --no-progress > /dev/null 2>&1
      echo "$([ "$tree" = "$ROOT" ] && echo this || echo "$BASE") $steps $(echo "$(date +%s.%N) - $start" | bc)"
    done
  done
done | tee "$OUT/times" >&2
awk '{k=$1" "$2; if(!(k in m)||$3<m[k])m[k]=$3} END{for(k in m)print "min", k, m[k]}' "$OUT/times" | sort
