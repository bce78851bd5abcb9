"""Input checks for crowd label matrices and feature arrays."""
# SPDX-License-Identifier: BSD-3-Clause

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.utils.multiclass import check_classification_targets

from ._crowd_labels import CrowdLabelMatrix, _as_ids, _lookup, _missing_mask


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


def check_classes(classes, *, name="classes"):
    """Validate an explicit list of class labels.

    Returns a 1-D array of at least 2 unique, non-missing labels (mixed python
    types keep object dtype).
    """
    try:
        arr = _as_ids(classes, name)
    except TypeError as exc:
        raise TypeError(f"{name} must be a 1-D array-like of labels: {exc}") from None
    if _missing_mask(arr).any():
        raise ValueError(f"{name} must not contain NaN or None, got {arr.tolist()}")
    if len(arr) < 2:
        raise ValueError(
            f"{name} must list at least 2 class labels, got {arr.tolist()}"
        )
    return arr


def _codes_in_classes(labels, codes, classes, name):
    """Re-express ``codes`` (into ``labels.classes``) as codes into ``classes``."""
    remap = _lookup(labels.classes, classes, name, "classes")
    return np.where(codes >= 0, remap[np.maximum(codes, 0)], -1)


def check_crowd_labels(Y, n_samples, *, name="Y", classes=None):
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
    classes : array-like of shape (n_classes,), default=None
        Explicit class labels, in code order; a label of ``Y`` outside them
        raises a ValueError naming ``classes``. Classes nobody named are kept.
        By default the sorted labels found in ``Y``.

    Returns
    -------
    codes : ndarray of shape (n_samples, n_annotators)
        Label codes, ``-1`` for missing.
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
        try:
            arr = np.asarray(Y)
        except ValueError:
            raise ValueError(
                f"{name} must be 1-D (one annotator) or 2-D (n_samples, "
                "n_annotators) with rows of equal length; got ragged rows (use "
                "np.nan or None for missing labels)"
            ) from None
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
    codes = labels.to_codes()
    seen = np.unique(codes[codes >= 0])
    if seen.size == 0:
        raise ValueError(f"{name} has no label at all: every entry is missing")
    if classes is not None:
        classes = check_classes(classes)
        return _codes_in_classes(labels, codes, classes, name), classes
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
    return codes, classes
