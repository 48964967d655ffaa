"""The report's embedding sample: where it comes from, its 2-D map and its nearest neighbours.

``selfsup evaluate`` keeps the pretrained encoder's embeddings of (a sample of) the labelled test set in
``RUN/embedding_sample.npz``, with their labels and references (file paths, texts); otherwise the report embeds a
sample of the training data through the modality (:meth:`~selfsup.modalities.base.Modality.report_sample`). The map
is t-SNE (van der Maaten & Hinton 2008) of the cosine geometry; neighbours are by cosine similarity.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SAMPLE_FILE = "embedding_sample.npz"
SAMPLE_LIMIT = 300  # samples embedded and mapped: t-SNE of 300 points takes a few seconds on a CPU
log = logging.getLogger("selfsup")


@dataclass
class EmbeddingSample:
    """Embeddings [N, D] with the reference of each row (what the modality shows), their labels when known, where
    they come from (for the page) and, for training data, how many samples the data holds."""

    features: np.ndarray
    references: list[str]
    labels: list[str] | None
    source: str
    total: int | None = None


def save_test_sample(path: Path, encoder, test_set, transform, device: str, seed: int = 0,
                     limit: int = SAMPLE_LIMIT) -> None:
    """Embed at most ``limit`` items of a labelled test set (``Labeled`` with ``references``) with ``encoder`` and
    write them, their class names and references to ``path`` (``.npz``, no pickles). Never raises: the evaluation
    that calls it has its results already (a failure is a warning)."""
    from ..evaluation.features import extract_features
    from ..modalities.base import sample_of

    try:
        references = test_set.references
        if references is None:
            return
        rows, _ = sample_of(range(len(references)), limit, seed)
        feats = extract_features(encoder, test_set.inputs[rows], transform, device=device).numpy()
        labels = [test_set.classes[int(test_set.labels[i])] for i in rows]
        np.savez_compressed(path, features=feats.astype(np.float32), references=np.array([references[i] for i in rows]),
                            labels=np.array(labels))
    except Exception as exc:  # noqa: BLE001 - a report's input must not fail the evaluation
        log.warning("the report's embedding sample was not saved (%s: %s)", type(exc).__name__, exc)


def load_test_sample(run_dir: Path) -> EmbeddingSample | None:
    """``RUN/embedding_sample.npz`` when it is newer than the run's last checkpoint (else it embeds an older encoder)."""
    path, checkpoint = run_dir / SAMPLE_FILE, run_dir / "checkpoints" / "last.ckpt"
    if not path.is_file() or (checkpoint.exists() and checkpoint.stat().st_mtime > path.stat().st_mtime):
        return None
    with np.load(path, allow_pickle=False) as data:
        labels = [str(x) for x in data["labels"]] if "labels" in data else None
        return EmbeddingSample(data["features"].astype(np.float32), [str(x) for x in data["references"]], labels,
                               "the labelled test set of `selfsup evaluate`")


def normalized(features: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return features / np.where(norms > 0, norms, 1.0)


def tsne_map(features: np.ndarray, seed: int = 0) -> np.ndarray:
    """2-D t-SNE coordinates [N, 2] of unit-length embeddings (perplexity at most 30, below N / 3). The exact
    gradient: for a few hundred points it is several times faster than Barnes-Hut on a busy CPU."""
    from sklearn.manifold import TSNE

    n = features.shape[0]
    perplexity = float(max(2.0, min(30.0, (n - 1) / 3)))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed, metric="cosine",
                method="exact", max_iter=500).fit_transform(normalized(features))


def map_figure(coords: np.ndarray, labels: list[str] | None, title: str):
    """A scatter plot of ``coords``, one colour per label (a legend up to 20 of them), one colour without labels."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 5.6), dpi=90)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    if labels is None:
        ax.scatter(coords[:, 0], coords[:, 1], s=12, color="C0", alpha=0.8)
    else:
        classes = sorted(set(labels))
        palette = [f"C{i}" for i in range(10)] if len(classes) <= 10 else None
        for i, name in enumerate(classes):
            rows = [j for j, label in enumerate(labels) if label == name]
            color = palette[i] if palette else _tab20(i / max(1, len(classes) - 1))
            ax.scatter(coords[rows, 0], coords[rows, 1], s=12, color=color, alpha=0.8, label=name)
        if len(classes) <= 20:
            ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    return fig


def _tab20(x: float):
    from matplotlib import colormaps

    return colormaps["tab20"](x)


def nearest_neighbours(features: np.ndarray, queries: int = 6, k: int = 5, seed: int = 0
                       ) -> list[tuple[int, list[tuple[int, float]]]]:
    """``queries`` rows (drawn with ``seed``) and, for each, its ``k`` most cosine-similar other rows with their
    similarity."""
    z = normalized(features)
    n = z.shape[0]
    chosen = sorted(np.random.default_rng(seed).choice(n, size=min(queries, n), replace=False).tolist())
    similarity = z[chosen] @ z.T
    out = []
    for row, query in zip(similarity, chosen):
        row = row.copy()
        row[query] = -np.inf
        order = np.argsort(-row, kind="stable")[: min(k, n - 1)]
        out.append((query, [(int(j), float(row[j])) for j in order]))
    return out
