"""Linear probe on frozen features.

The linear evaluation protocol: a linear classifier trained on frozen representations
(Zhang et al. 2016, "Colorful Image Colorization"; Kolesnikov et al. 2019, "Revisiting
Self-Supervised Visual Representation Learning", which uses L-BFGS logistic regression).
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from torch import Tensor


def _numpy(x: Tensor) -> np.ndarray:
    return x.detach().cpu().numpy()


def linear_probe_accuracy(
    train_feats: Tensor,
    train_labels: Tensor,
    test_feats: Tensor,
    test_labels: Tensor,
    seed: int = 0,
) -> float:
    """Test accuracy of L2-regularised logistic regression (lbfgs, C=1, max_iter=1000).

    Features are standardised with statistics of the training set. Works with a single sample
    per class; with a single class in the training set every test sample gets that class.
    """
    x_train = _numpy(train_feats).astype(np.float64)
    y_train = _numpy(train_labels).reshape(-1).astype(np.int64)
    x_test = _numpy(test_feats).astype(np.float64)
    y_test = _numpy(test_labels).reshape(-1).astype(np.int64)
    if x_train.shape[0] == 0:
        raise ValueError("linear_probe_accuracy needs at least one training sample")
    if x_test.shape[0] == 0:
        return float("nan")
    classes = np.unique(y_train)
    if classes.size == 1:
        return float(np.mean(y_test == classes[0]))
    scaler = StandardScaler().fit(x_train)
    clf = LogisticRegression(solver="lbfgs", max_iter=1000, C=1.0, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(scaler.transform(x_train), y_train)
    pred = clf.predict(scaler.transform(x_test))
    return float(np.mean(pred == y_test))
