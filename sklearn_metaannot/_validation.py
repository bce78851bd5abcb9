"""Input checks for crowd label matrices and feature arrays."""
# SPDX-License-Identifier: BSD-3-Clause

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.utils.multiclass import check_classification_targets

from ._crowd_labels import CrowdLabelMatrix


def flatten_samples(X):
    """Flatten image-like arrays (n, C, H, W) or (n, H, W) to (n, n_features).

    Returns the (possibly flattened) X and the per-sample shape, or ``None`` for
    inputs that are already 2-D (or not arrays; those are left to
    ``validate_data``).
    """
    ndim = getattr(X, "ndim", None)
    if ndim is not None and ndim > 2 and not sp.issparse(X):
        X = np.asarray(X)
        return X.reshape(X.shape[0], -1), tuple(X.shape[1:])
    return X, None


def check_crowd_labels(Y, n_samples, *, name="Y", sparse=False):
    """Validate annotations for ``n_samples`` examples.

    Parameters
    ----------
    Y : array-like of shape (n_samples,) or (n_samples, n_annotators), \
sparse matrix or CrowdLabelMatrix
        Labels; ``np.nan`` or ``None`` mark missing labels in dense input.
    n_samples : int
        Number of rows of X.
    name : str
        Argument name used in error messages.
    sparse : bool, default=False
        If True, return the labels as a :class:`CrowdLabelMatrix` (label
        triplets ``rows``, ``cols``, ``codes``) instead of a dense code matrix:
        memory O(n_labels), whatever ``n_samples * n_annotators``.

    Returns
    -------
    codes : ndarray of shape (n_samples, n_annotators) or CrowdLabelMatrix
        Label codes, ``-1`` for missing; with ``sparse=True`` the checked
        CrowdLabelMatrix, whose ``codes`` index the returned ``classes``.
    classes : ndarray of shape (n_classes,)
        Label values; code k means ``classes[k]``.
    """
    if Y is None:
        raise ValueError(
            f"This estimator requires y to be passed, but the target y is None: pass "
            f"{name} of shape (n_samples, n_annotators) or (n_samples,)"
        )
    if isinstance(Y, CrowdLabelMatrix):
        labels = Y
    elif sp.issparse(Y):
        labels = CrowdLabelMatrix.from_sparse(Y)
    else:
        arr = np.asarray(Y)
        if arr.ndim == 0 or arr.ndim > 2:
            raise ValueError(
                f"{name} must be 1-D (one annotator) or 2-D (n_samples, n_annotators), "
                f"got an array of shape {arr.shape}"
            )
        if arr.dtype.kind == "c":
            raise ValueError(f"{name} must hold class labels, got complex values")
        if arr.dtype.kind in "fiub":
            values = arr.astype(float)
            if np.isinf(values).any():
                raise ValueError(
                    f"{name} contains infinity; use np.nan for missing labels"
                )
            observed = values[~np.isnan(values)]
            if observed.size:
                # raises "Unknown label type: continuous" for regression targets
                check_classification_targets(observed)
        labels = CrowdLabelMatrix.from_dense(arr)
    if labels.n_samples != n_samples:
        raise ValueError(
            f"{name} has {labels.n_samples} samples but X has {n_samples}; they must "
            "describe the same examples, in the same order"
        )
    seen = np.flatnonzero(np.bincount(labels.codes, minlength=labels.n_classes))
    if seen.size == 0:
        raise ValueError(f"{name} has no label at all: every entry is missing")
    if seen.size < 2:
        raise ValueError(
            f"{name} holds labels of one class only ({labels.classes[seen[0]]!r}); "
            "a classifier needs at least 2 classes"
        )
    classes = np.asarray(labels.classes)
    if (
        isinstance(Y, np.ndarray)
        and Y.dtype.kind == "f"
        and classes.dtype.kind == "f"
        and np.all(np.mod(classes, 1) == 0)
    ):
        # integer labels stored as floats only to hold np.nan: give ints back
        classes = classes.astype(np.int64)
    if sparse:
        return labels, classes
    return labels.to_codes(), classes
