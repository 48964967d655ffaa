#!/usr/bin/env bash
# Creates the RecBole peer-baseline virtualenv (default: benchmarks/.venv-recbole), idempotent.
# RecBole is a benchmark-only peer: it is never installed into selfsup's own .venv.
#
#   bash benchmarks/recbole_env.sh [VENV_DIR]
#   benchmarks/.venv-recbole/bin/python benchmarks/recbole_ml100k.py --help
#
# Pins (what was tested to work on the 2-core CPU machine, Python 3.11):
#   recbole==1.2.1 installed with --no-deps, its runtime deps listed below EXCEPT ray (<=2.6.3, ~60 MB plus
#     grpcio & co.): ray is imported only by recbole.quick_start / hyper-parameter tuning, which
#     recbole_ml100k.py does not use. thop is installed (used by recbole.utils.get_flops, lazily).
#   torch==2.13.0+cpu — the CPU wheel on local disk (/opt/wheels); torch must be <= 2.14.1 here.
#     torch >= 2.6 defaults torch.load(weights_only=True), which breaks RecBole's checkpoint reload;
#     recbole_ml100k.py works around that (it saves no checkpoint and never reloads one).
#   numpy<2 (1.26.4): RecBole 1.2.1 uses np.float / np.float_ / np.unicode_ aliases that numpy 2 removed.
#   colorlog==4.7.2, colorama==0.4.4: exact pins from RecBole's own metadata.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${1:-$HERE/.venv-recbole}"
PY="${PYTHON:-python3.11}"

if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
fi

if "$VENV/bin/python" - <<'EOF' 2>/dev/null
import importlib.metadata as md
want = {"recbole": "1.2.1", "torch": "2.13.0+cpu", "numpy": "1.26.4"}
for name, ver in want.items():
    assert md.version(name) == ver, (name, md.version(name))
import recbole.config, recbole.data, recbole.trainer, recbole.model.sequential_recommender  # noqa: F401
EOF
then
    echo "recbole venv ready: $VENV"
    exit 0
fi

PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check -q)
"${PIP[@]}" "torch==2.13.0+cpu"
"${PIP[@]}" \
    "numpy==1.26.4" \
    "scipy>=1.6,<1.15" \
    "pandas>=1.3,<2.3" \
    "tqdm>=4.48.2" \
    "colorlog==4.7.2" \
    "colorama==0.4.4" \
    "scikit-learn>=0.23.2,<1.6" \
    "pyyaml>=5.1" \
    "tensorboard>=2.5" \
    "thop>=0.1.1.post2207130030" \
    "tabulate>=0.8.10" \
    "plotly>=4.0" \
    "texttable>=0.9" \
    "psutil>=5.9"
"${PIP[@]}" --no-deps "recbole==1.2.1"

"$VENV/bin/python" -c "import recbole, torch, numpy; print('recbole', recbole.__version__, 'torch', torch.__version__, 'numpy', numpy.__version__)"
echo "recbole venv ready: $VENV"
