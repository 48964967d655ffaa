#!/usr/bin/env bash
# The GPU check of a session that is lent a device machine (../.library/device): one prepared script, < 8 min.
#
#   benchmarks/gpu_check.sh prepare        # HERE: copies what the device needs into .gpu/ (git-excluded, ~46 MiB)
#   device run, carry [".gpu"], command:   bash benchmarks/gpu_check.sh run
#
# On the device (its python3 holds torch, lightning, timm, transformers, tokenizers, scikit-learn; nothing can be
# fetched there) it runs, writing everything under $OUT:
#   1. the tests that exercise CUDA when a GPU is present (devices, precision, the distillation teacher's bf16
#      autocast, init/export round trips), with PYTHONPATH=src; 1b. the asr / translation / language-tag tests;
#   2. a short label-efficiency run: simclr on 2,000 CIFAR-10 test-split images, linear probe vs scratch + pixels;
#   2b. distillation on the GPU: a tiny_cnn student from a selfsup teacher run (the teacher in bf16 autocast);
#   3. translation: bart with language tags on Multi30k (copied by prepare), pretrained vs scratch, BLEU / chrF;
#   4. the lightly throughput comparison, when lightly's wheels were carried in .gpu/wheels (peer_lightly.py).
# Record what it prints in benchmarks/RESULTS.md with the device's name.
set -uo pipefail
cd "$(dirname "$0")/.."
mode="${1:-run}"
SHARED="${SHARED:-../shared/data}"

if [ "$mode" = prepare ]; then
    mkdir -p .gpu && grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
    cp "$SHARED/images/cifar10/test.tar" .gpu/cifar10-test.tar
    # the scorers of --protocol asr / translation (step 1b): copied from this venv (built for its Python version)
    site=$(.venv/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    mkdir -p .gpu/site && for pkg in jiwer rapidfuzz click sacrebleu portalocker tabulate colorama lxml; do
        cp -r "$site/$pkg" .gpu/site/ 2>/dev/null; done
    mkdir -p .gpu/multi30k && cp "$SHARED"/text/multi30k/{train,test_2016_flickr}.{en,de} .gpu/multi30k/  # 4 MiB
    echo "prepared: $(du -sh .gpu | cut -f1) in .gpu/ (carry it: carry=[\".gpu\"])"
    exit 0
fi

OUT="${OUT:-/tmp/gpu-check}"; mkdir -p "$OUT"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
[ -d .gpu/wheels ] && python3 -m pip install -q --no-index --no-deps --target /tmp/site .gpu/wheels/*.whl \
    && export PYTHONPATH="$PYTHONPATH:/tmp/site"
PY=python3
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/device.txt"
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" | tee -a "$OUT/device.txt"

echo "== 1. tests that use the GPU when there is one"
timeout 180 $PY -m pytest -q -x -p no:cacheprovider tests/test_pretext.py tests/test_clusters.py tests/test_text_ops.py \
    tests/test_distill.py tests/test_image_init.py 2>&1 | tail -5 | tee "$OUT/tests.txt"

echo "== 1b. speech recognition and translation tests (CTC, BART, language tags) when their scorers import"
if PYTHONPATH="$PYTHONPATH:$PWD/.gpu/site" $PY -c "import jiwer, sacrebleu" 2>/dev/null; then
    PYTHONPATH="$PYTHONPATH:$PWD/.gpu/site" timeout 240 $PY -m pytest -q -x -p no:cacheprovider tests/test_asr.py \
        tests/test_bart.py tests/test_translation.py tests/test_language_tags.py 2>&1 | tail -5 | tee "$OUT/tests_tasks.txt"
else
    echo "not run: jiwer/sacrebleu do not import on this device (its Python differs from the venv's)" \
        | tee "$OUT/tests_tasks.txt"
fi

work=/tmp/gpu-work; mkdir -p "$work"
tar -xf .gpu/cifar10-test.tar -C "$work" 2>/dev/null
images="$work/$(tar -tf .gpu/cifar10-test.tar | head -1 | cut -d/ -f1)"
echo "== 2. label efficiency on the GPU: simclr, 2 min, CIFAR-10 test split (train on its images, probe 80/20)"
timeout 200 $PY - "$images" "$work" <<'EOF' 2>&1 | grep -v Warning | tail -25 | tee "$OUT/label_efficiency.txt"
import random, sys, time
from pathlib import Path
import selfsup
from selfsup.evaluation import format_table
images, work = Path(sys.argv[1]), Path(sys.argv[2])
rng = random.Random(0)
for split in ("train", "test"):
    (work / split).mkdir(exist_ok=True)
for cls in sorted(p for p in images.iterdir() if p.is_dir()):
    files = sorted(cls.glob("*.jpg"))[:200]
    rng.shuffle(files)
    for i, f in enumerate(files):
        link = work / ("train" if i < 160 else "test") / cls.name / f.name
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to(f)
t0 = time.time()
run = selfsup.pretrain(work / "train", "simclr", work / "run-simclr", encoder="resnet18_cifar", max_minutes=2,
                       epochs=1000, batch_size=256, progress_bar=False)
print(f"pretrain: {time.time() - t0:.0f} s whole call")
print(format_table(selfsup.evaluate(run, work / "train", work / "test", protocols=["linear"],
                                    label_fractions=[0.01, 0.1, 1.0], baseline="scratch,pixels")))
t0 = time.time()
student = selfsup.pretrain(work / "train", "distill", work / "run-distill", encoder="tiny_cnn", max_minutes=1,
                           epochs=1000, batch_size=256, overrides=[f"method.teacher={run}"], progress_bar=False)
print(f"distill: {time.time() - t0:.0f} s whole call")
print(format_table(selfsup.evaluate(student, work / "train", work / "test", protocols=["linear"],
                                    label_fractions=[0.1, 1.0], baseline="teacher")))
EOF

echo "== 3. translation on the GPU: bart with language tags on Multi30k en→de, pretrained vs scratch (when sacrebleu imports)"
if [ -d .gpu/multi30k ] && PYTHONPATH="$PYTHONPATH:$PWD/.gpu/site" $PY -c "import sacrebleu" 2>/dev/null; then
    PYTHONPATH="$PYTHONPATH:$PWD/.gpu/site" timeout 150 $PY benchmarks/translation_multi30k.py --arms bart --languages \
        --data .gpu/multi30k --pretrain-steps 2000 --finetune-steps 300 --fractions 0.01,1.0 --work "$work/mt" \
        --results "$OUT/RESULTS-translation.md" 2>&1 | grep -v Warning | grep "BLEU\|rror" | tail -8 \
        | tee "$OUT/translation.txt"
else
    echo "not run: no .gpu/multi30k (run prepare) or sacrebleu does not import here" | tee "$OUT/translation.txt"
fi

echo "== 4. lightly throughput (only when lightly was carried)"
if $PY -c "import lightly" 2>/dev/null; then
    # train.tar (74 MiB) does not fit the 64 MiB carry: the test split stands in for both splits here
    mkdir -p "$work/tars" && ln -sf "$PWD/.gpu/cifar10-test.tar" "$work/tars/train.tar" \
        && ln -sf "$PWD/.gpu/cifar10-test.tar" "$work/tars/test.tar"
    timeout 120 $PY benchmarks/peer_lightly.py --stems cifar --rounds 1 --accuracy-stems "" --train-subset 2000 \
        --test-subset 500 --data "$work/tars" --results "$OUT/RESULTS-lightly.md" 2>&1 | tail -15 | tee "$OUT/lightly.txt"
else
    echo "lightly not importable: carry its wheels in .gpu/wheels (device README) to compare" | tee "$OUT/lightly.txt"
fi
