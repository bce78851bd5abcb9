"""Input checks for crowd label matrices and feature arrays."""
# SPDX-License-Identifier: BSD-3-Clause

from __future__ import annotations

import os
import sys
import warnings
from numbers import Real
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

from ._labels import (
    CrowdLabelMatrix,
    _as_ids,
    _lookup,
    _missing_mask,
    check_classification_labels,
    is_long_table,
)


def warn_user(message, category):
    """Warn at the user's line: the first frame outside this package and
    scikit-learn's ``_fit_context`` wrapper, however deep the call."""
    # the package's root folder (this module lives in its crowd/ folder)
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
    wrapper = os.path.join("sklearn", "base.py")
    frame, level = sys._getframe(1), 2
    while frame is not None and (
        frame.f_code.co_filename.startswith(package)
        or frame.f_code.co_filename.endswith(wrapper)
    ):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


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


def _in_classes(labels, classes, name):
    """``labels`` with codes into ``classes`` instead of ``labels.classes``."""
    remap = _lookup(labels.classes, classes, name, "classes")
    return CrowdLabelMatrix(
        labels.rows,
        labels.cols,
        remap[labels.codes],
        sample_ids=labels.sample_ids,
        annotator_ids=labels.annotator_ids,
        classes=classes,
    )


def check_crowd_labels(
    Y, n_samples, *, name="Y", classes=None, sparse=False, sample_ids=None
):
    """Validate annotations for ``n_samples`` examples.

    Every form of ``Y`` goes through :meth:`CrowdLabelMatrix.from_any`, the one
    entry point of crowd labels; the annotator ids stay on the returned matrix.

    Parameters
    ----------
    Y : array-like of shape (n_samples,) or (n_samples, n_annotators), \
sparse matrix, long DataFrame or CrowdLabelMatrix
        Labels; ``np.nan`` or ``None`` mark missing labels in dense input. A
        long table (``task``, ``worker``, ``label`` columns) needs
        ``sample_ids``.
    n_samples : int
        Number of rows of X.
    name : str
        Argument name used in error messages.
    classes : array-like of shape (n_classes,), default=None
        Explicit class labels, in code order; a label of ``Y`` outside them
        raises a ValueError naming ``classes``. Classes nobody named are kept.
        By default the sorted labels found in ``Y``.
    sparse : bool, default=False
        If True, return the labels as a :class:`CrowdLabelMatrix` (label
        triplets ``rows``, ``cols``, ``codes``) instead of a dense code matrix:
        memory O(n_labels), whatever ``n_samples * n_annotators``.
    sample_ids : array-like of shape (n_samples,), default=None
        The task id of each row of X (the index of a DataFrame X): the rows of
        a long table are matched to them; a row without annotations is an
        unlabelled item.

    Returns
    -------
    codes : ndarray of shape (n_samples, n_annotators) or CrowdLabelMatrix
        Label codes, ``-1`` for missing; with ``sparse=True`` the checked
        CrowdLabelMatrix, whose ``codes`` index the returned ``classes``.
    classes : ndarray of shape (n_classes,)
        Label values; code k means ``classes[k]``.
    """
    labels = CrowdLabelMatrix.from_any(Y)  # a clear error for Y=None, ragged rows
    check_classification_labels(Y, name)
    if is_long_table(Y):
        labels = _align_to_samples(labels, sample_ids, name)
    if labels.n_samples != n_samples:
        raise ValueError(
            f"{name} has {labels.n_samples} samples but X has {n_samples}; they must "
            "describe the same examples, in the same order"
        )
    seen = np.flatnonzero(np.bincount(labels.codes, minlength=labels.n_classes))
    if seen.size == 0:
        raise ValueError(f"{name} has no label at all: every entry is missing")
    if classes is not None:
        classes = check_classes(classes)
        labels = _in_classes(labels, classes, name)
        return (labels if sparse else labels.to_codes()), classes
    if seen.size < 2:
        raise ValueError(
            f"{name} holds labels of one class only "
            f"({np.asarray(labels.classes)[seen[:1]].tolist()[0]!r}); "
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


def _align_to_samples(labels, sample_ids, name):
    """The labels of a long table, rows in the order of ``sample_ids`` (X's index)."""
    if sample_ids is None:
        raise ValueError(
            f"{name} is a long table (task, worker, label), whose rows name tasks, "
            "not positions: pass X as a pandas DataFrame indexed by task, or pass "
            f"{name} as CrowdLabelMatrix.from_long(...).to_dense() in the order of X"
        )
    sample_ids = np.asarray(sample_ids)
    position = {v: i for i, v in enumerate(sample_ids.tolist())}
    if len(position) != len(sample_ids):
        raise ValueError("X's index must not repeat a task")
    tasks = np.asarray(labels.sample_ids, dtype=object)
    rows = np.fromiter(
        (position.get(t, -1) for t in tasks.tolist()), dtype=np.int64, count=len(tasks)
    )
    if (rows < 0).any():
        absent = tasks[rows < 0]
        raise ValueError(
            f"{name} names {len(absent)} task(s) that X's index lacks, e.g. "
            f"{absent[0]!r}: every annotated task needs a row of features"
        )
    return CrowdLabelMatrix(
        rows[labels.rows],
        labels.cols,
        labels.codes,
        sample_ids=sample_ids,
        annotator_ids=labels.annotator_ids,
        classes=labels.classes,
    )


def check_gold_labels(y_gold, classes, n_samples, *, name="y_gold"):
    """Known true labels of some examples, as a mask and one-hot rows.

    Parameters
    ----------
    y_gold : array-like of shape (n_samples,) or None
        True label of each example, ``np.nan`` or ``None`` where unknown.
    classes : ndarray of shape (n_classes,)
        The classes of the crowd labels; gold labels must be among them.
    n_samples : int
        Number of rows of X.
    name : str
        Argument name used in error messages.

    Returns
    -------
    gold : tuple of 2 ndarrays, or None
        ``(mask, one_hot)``: a boolean mask of shape (n_samples,) of the
        examples with a known label, and their one-hot labels of shape
        (n_samples, n_classes). None when ``y_gold`` is None or holds no label.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_metaannot.crowd._validation import check_gold_labels
    >>> mask, one_hot = check_gold_labels([np.nan, 1, 0], np.array([0, 1]), 3)
    >>> mask.tolist(), one_hot.tolist()
    ([False, True, True], [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    """
    if y_gold is None:
        return None
    arr = np.asarray(y_gold, dtype=object)
    if arr.ndim != 1 or len(arr) != n_samples:
        raise ValueError(
            f"{name} must be 1-D with one entry per row of X ({n_samples}), np.nan "
            f"or None where the true label is unknown; got shape {arr.shape}"
        )
    missing = np.array([v is None or (isinstance(v, float) and v != v) for v in arr])
    index = {v: k for k, v in enumerate(np.asarray(classes).tolist())}
    mask = ~missing
    one_hot = np.zeros((n_samples, len(index)))
    for i in np.flatnonzero(mask):
        value = arr[i].item() if hasattr(arr[i], "item") else arr[i]
        if value not in index:
            raise ValueError(
                f"{name}[{i}] = {arr[i]!r} is not among the classes of the crowd "
                f"labels {np.asarray(classes).tolist()}"
            )
        one_hot[i, index[value]] = 1.0
    return (mask, one_hot) if mask.any() else None


def _history_counts(value, n_classes, key, name):
    """One annotator's history pseudo-counts as a finite, non-negative (K, K) array."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(
            f"{name}[{key!r}] must be a ({n_classes}, {n_classes}) array of "
            f"pseudo-counts, got {type(value).__name__}"
        ) from None
    if arr.shape != (n_classes, n_classes):
        raise ValueError(
            f"{name}[{key!r}] must have shape ({n_classes}, {n_classes}) (rows: true "
            "class, columns: label given, both in the order of the task's classes), "
            f"got {arr.shape}"
        )
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}[{key!r}] holds non-finite pseudo-counts")
    if (arr < 0).any():
        raise ValueError(
            f"{name}[{key!r}] holds negative pseudo-counts (min {arr.min():g})"
        )
    return arr


def check_annotator_prior(
    annotator_prior, annotators, classes, *, name="annotator_prior"
):
    """History pseudo-counts of the annotators of a task, matched by id and class.

    Parameters
    ----------
    annotator_prior : fitted MetaAnnotatorClassifier, mapping or None
        A fitted estimator (its ``annotators_``, ``classes_``, and the
        pseudo-counts ``annotator_counts_ + annotator_prior_counts_``, matched
        to ``classes`` by label value: classes missing on either side get no
        history), or a mapping ``{annotator id: (K, K) array}`` whose arrays
        are in the order of ``classes`` (rows: true class, columns: label
        given).
    annotators : ndarray of shape (n_annotators,)
        Ids of the task's annotators.
    classes : ndarray of shape (n_classes,)
        The task's classes.
    name : str
        Argument name used in error messages.

    Returns
    -------
    counts : ndarray of shape (n_annotators, n_classes, n_classes) or None
        Unweighted history pseudo-counts (zero for annotators without history);
        None when ``annotator_prior`` is None.
    has_history : ndarray of shape (n_annotators,) of bool or None
        Which annotators were found in ``annotator_prior``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_metaannot.crowd._validation import check_annotator_prior
    >>> counts, found = check_annotator_prior(
    ...     {"ann": [[3, 1], [0, 4]]}, np.array(["bob", "ann"]), np.array([0, 1]))
    >>> counts[1].tolist(), found.tolist()
    ([[3.0, 1.0], [0.0, 4.0]], [False, True])
    """
    if annotator_prior is None:
        return None, None
    classes = np.asarray(classes)
    K, R = len(classes), len(annotators)
    if hasattr(annotator_prior, "columns") and hasattr(annotator_prior, "index"):
        raise TypeError(
            f"{name} got a DataFrame: annotator_report() holds accuracies, not the "
            "confusion counts; pass the fitted estimator itself "
            "(fit(..., annotator_prior=previous)) or a mapping {annotator id: "
            f"({K}, {K}) array of pseudo-counts}}"
        )
    if hasattr(annotator_prior, "get_params") and hasattr(annotator_prior, "fit"):
        source = annotator_prior
        missing = [
            a
            for a in ("annotators_", "classes_", "annotator_counts_")
            if not hasattr(source, a)
        ]
        if missing:
            raise ValueError(
                f"{name} must be a fitted MetaAnnotatorClassifier (fit on the "
                f"earlier task; models fitted before annotator_prior existed must "
                f"be refitted); {type(source).__name__} lacks {missing}"
            )
        old = np.asarray(source.annotator_counts_, dtype=np.float64)
        old = old + np.asarray(
            getattr(source, "annotator_prior_counts_", 0.0), dtype=np.float64
        )
        new_index = {v: k for k, v in enumerate(classes.tolist())}
        pairs = [
            (new_index[v], j)
            for j, v in enumerate(np.asarray(source.classes_).tolist())
            if v in new_index
        ]
        if not pairs:
            warnings.warn(
                f"{name}: the earlier task's classes "
                f"{np.asarray(source.classes_).tolist()[:10]} share none with this "
                f"task's {classes.tolist()[:10]}; no annotator gets history",
                UserWarning,
                stacklevel=4,
            )
        mapping = {}
        new_k = np.array([p[0] for p in pairs], dtype=np.int64)
        old_k = np.array([p[1] for p in pairs], dtype=np.int64)
        for r, ident in enumerate(np.asarray(source.annotators_).tolist()):
            m = np.zeros((K, K))
            if pairs:
                m[np.ix_(new_k, new_k)] = old[r][np.ix_(old_k, old_k)]
            mapping[ident] = m
    elif hasattr(annotator_prior, "items") and hasattr(annotator_prior, "keys"):
        mapping = annotator_prior
    else:
        raise TypeError(
            f"{name} must be a fitted MetaAnnotatorClassifier or a mapping "
            f"{{annotator id: ({K}, {K}) array of pseudo-counts}}, got "
            f"{type(annotator_prior).__name__}"
        )
    counts = np.zeros((R, K, K))
    has_history = np.zeros(R, dtype=bool)
    for r, ident in enumerate(np.asarray(annotators).tolist()):
        try:
            value = mapping[ident] if ident in mapping else None
        except TypeError:  # an unhashable id
            value = None
        if value is not None:
            counts[r] = _history_counts(value, K, ident, name)
            has_history[r] = True
    # entries for annotators of other tasks are not used, but still checked
    if mapping is annotator_prior:
        for key, value in mapping.items():
            _history_counts(value, K, key, name)
    return counts, has_history


def check_prior_c(c):
    """The confusion prior ``c`` as a float or a (diagonal, off-diagonal) pair."""
    if isinstance(c, Real):
        return float(c)
    try:
        pair = tuple(float(v) for v in c)
    except (TypeError, ValueError):
        raise TypeError(
            f"c must be a float or a (diagonal, off-diagonal) pair, got {c!r}"
        ) from None
    if len(pair) != 2 or min(pair) < 1:
        raise ValueError(
            f"c must be a float >= 1 or a (diagonal, off-diagonal) pair of floats "
            f">= 1, got {c!r}"
        )
    return pair


def check_em_params(em_params):
    """``n_iter``, ``tau``, ``b``, ``c`` of the EM, defaults filled in, c checked."""
    from ..em._steps import DEFAULT_EM_PARAMS

    unknown = set(em_params or {}) - set(DEFAULT_EM_PARAMS)
    if unknown:
        raise ValueError(
            f"em_params takes the keys {sorted(DEFAULT_EM_PARAMS)}, got "
            f"{sorted(unknown)}"
        )
    params = {**DEFAULT_EM_PARAMS, **(em_params or {})}
    params["c"] = check_prior_c(params["c"])
    return params


class CheckedTask(NamedTuple):
    """The crowd side of a target task, checked (:func:`check_task`)."""

    labels: CrowdLabelMatrix
    classes: np.ndarray
    gold: tuple | None
    history: np.ndarray | None
    has_history: np.ndarray | None


def check_task(
    Y, n_samples, *, classes=None, y_gold=None, annotator_prior=None, sample_ids=None
):
    """Every check of ``fit``'s crowd inputs, in one call.

    ``Y`` through :func:`check_crowd_labels` (hence
    :meth:`CrowdLabelMatrix.from_any`), then the gold labels and the annotator
    history against its classes and annotator ids.

    Returns
    -------
    CheckedTask
    """
    labels, classes = check_crowd_labels(
        Y, n_samples, classes=classes, sparse=True, sample_ids=sample_ids
    )
    gold = check_gold_labels(y_gold, classes, n_samples)
    history, has_history = check_annotator_prior(
        annotator_prior, np.asarray(labels.annotator_ids), classes
    )
    return CheckedTask(labels, classes, gold, history, has_history)
