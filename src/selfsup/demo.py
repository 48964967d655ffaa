"""`selfsup demo`: the whole loop on a real image set that ships with scikit-learn.

scikit-learn's handwritten digits (UCI ML hand-written digits, 1,797 8x8 grey images of 0-9) are
written out as PNG class folders — a train split for unlabeled pretraining and a test split —
then the run is pretrained and evaluated with the label-efficiency protocol, like any user data.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image


def write_digits(root: Path, test_fraction: float = 0.3, seed: int = 0) -> tuple[Path, Path]:
    """Write the digits as ``root/{train,test}/<digit>/<n>.png``; returns the two folders."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    pixels = (digits.images * (255.0 / 16.0)).round().astype(np.uint8)
    idx_train, idx_test = train_test_split(np.arange(len(pixels)), test_size=test_fraction,
                                           stratify=digits.target, random_state=seed)
    for split, indices in (("train", idx_train), ("test", idx_test)):
        for i in indices:
            folder = root / split / str(digits.target[i])
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels[i], mode="L").save(folder / f"{i:04d}.png")
    return root / "train", root / "test"


DIGIT_VIEWS = {name: {"method.crop_min_scale": 0.3, "method.flip_p": 0.0} for name in ("simclr", "byol")}


def run_demo(out: Path, method: str = "simclr", epochs: int = 30, finetune_steps: int = 150,
             say: Callable[[str], None] = print) -> list:
    from . import api
    from .evaluation import format_table

    out = Path(out)
    train, test = (out / "digits" / "train", out / "digits" / "test")
    if not train.exists():
        say(f"writing scikit-learn's handwritten digits as PNG folders under {out / 'digits'}")
        train, test = write_digits(out / "digits")
    run = out / f"run-{method}"
    say(f"pretraining {method} on {train} (labels ignored) into {run}")
    overrides: dict[str, object] = {"trainer.log_every": 5, "trainer.health_every": 10}
    if method in DIGIT_VIEWS:  # handwriting is not mirror-symmetric, and 8 px leave little to crop
        overrides.update(DIGIT_VIEWS[method])
    api.pretrain(train, method, run, image_size=16, epochs=epochs, batch_size=128, overrides=overrides)
    say("label-efficiency evaluation: pretrained encoder vs the same network from scratch")
    results = api.evaluate(run, train, test, protocols=("knn", "linear", "finetune"),
                           label_fractions=(0.01, 0.1, 1.0), baseline="scratch",
                           finetune_steps=finetune_steps, progress=say)
    say(format_table(results))
    say(f"results: {run / 'eval.json'}   plot: {run / 'plots' / 'label_efficiency.png'}")
    return results
