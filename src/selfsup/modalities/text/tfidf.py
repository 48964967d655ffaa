"""TF-IDF baselines for text evaluation (no learned representation).

Bag of unigrams + bigrams with sublinear TF-IDF and logistic regression, the classic strong
baseline for sentence classification (Wang & Manning 2012, "Baselines and Bigrams: Simple, Good
Sentiment and Topic Classification"), and TF-IDF cosine similarity as the unsupervised baseline of
semantic textual similarity.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from torch import Tensor

__all__ = ["tfidf_accuracy", "tfidf_similarity", "tfidf_vectorizer"]


def tfidf_vectorizer() -> TfidfVectorizer:
    """The shared vectorizer: word uni- and bigrams, sublinear TF, L2-normalised rows."""
    return TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True)


def _fit(vectorizer: TfidfVectorizer, texts: list[str], what: str) -> TfidfVectorizer:
    try:
        return vectorizer.fit(texts)
    except ValueError as err:  # "empty vocabulary": no word of two or more characters
        raise ValueError(f"cannot fit TF-IDF on the {what} texts: {err}") from err


def tfidf_accuracy(
    train_texts: list[str],
    train_labels: Tensor,
    test_texts: list[str],
    test_labels: Tensor,
    seed: int = 0,
) -> float:
    """Test accuracy of TF-IDF (fitted on the training texts only) + logistic regression (C=1).

    With a single class in the training set every test text gets that class; an empty test set
    gives nan.
    """
    y_train = train_labels.detach().cpu().reshape(-1).numpy().astype(np.int64)
    y_test = test_labels.detach().cpu().reshape(-1).numpy().astype(np.int64)
    if len(train_texts) != y_train.shape[0] or len(test_texts) != y_test.shape[0]:
        raise ValueError(
            f"texts and labels differ in length: train {len(train_texts)} vs {y_train.shape[0]}, "
            f"test {len(test_texts)} vs {y_test.shape[0]}"
        )
    if not train_texts:
        raise ValueError("tfidf_accuracy needs at least one training text")
    if not test_texts:
        return float("nan")
    classes = np.unique(y_train)
    if classes.size == 1:
        return float(np.mean(y_test == classes[0]))
    vectorizer = _fit(tfidf_vectorizer(), list(train_texts), "training")
    clf = LogisticRegression(C=1.0, max_iter=1000, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(vectorizer.transform(train_texts), y_train)
    pred = clf.predict(vectorizer.transform(test_texts))
    return float(np.mean(pred == y_test))


def tfidf_similarity(first: list[str], second: list[str], fit_texts: list[str]) -> Tensor:
    """Cosine similarity float32 [N] of the TF-IDF vectors of each pair ``(first[i], second[i])``.

    The vectorizer is fitted on ``fit_texts``; a text with no known n-gram has similarity 0.
    """
    if len(first) != len(second):
        raise ValueError(f"first and second must pair up, got {len(first)} and {len(second)} texts")
    if not first:
        return torch.empty(0, dtype=torch.float32)
    vectorizer = _fit(tfidf_vectorizer(), list(fit_texts), "fit")
    a = vectorizer.transform(first)
    b = vectorizer.transform(second)  # rows are L2-normalised: the dot product is the cosine
    sims = np.asarray(a.multiply(b).sum(axis=1), dtype=np.float64).reshape(-1)
    return torch.from_numpy(np.clip(sims, -1.0, 1.0)).float()
