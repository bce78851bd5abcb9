"""Sparse crowd annotations: the CrowdLabelMatrix container."""
# SPDX-License-Identifier: BSD-3-Clause

from __future__ import annotations

import numbers
import sys
import warnings

import numpy as np
import scipy.sparse as sp
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets

__all__ = ["CrowdLabelMatrix"]

# Elements of an object array processed at once by the chunked computations.
_CHUNK = 1 << 20


# --------------------------------------------------------------------------- helpers


def _import_pandas(what):
    try:
        import pandas as pd
    except ImportError as exc:  # pragma: no cover - pandas is installed in tests
        raise ImportError(
            f"{what} needs pandas, an optional dependency of sklearn-metaannot; "
            "install it with `pip install pandas`"
        ) from exc
    return pd


def _is_dataframe(obj):
    pd = sys.modules.get("pandas")
    return pd is not None and isinstance(obj, pd.DataFrame)


def _is_nan_scalar(value):
    try:
        return bool(value != value)
    except (TypeError, ValueError):
        return False


def _is_missing_scalar(value):
    """``None``, a float NaN, ``pd.NA`` or ``NaT``."""
    if value is None:
        return True
    if type(value).__name__ in ("NAType", "NaTType"):
        return True
    return _is_nan_scalar(value)


_is_missing_ufunc = np.frompyfunc(_is_missing_scalar, 1, 1)


def _missing_mask(arr):
    """Boolean mask of the NaN / None entries of ``arr`` (any shape)."""
    if arr.dtype.kind in "fc":
        return np.isnan(arr)
    if arr.dtype.kind == "M" or arr.dtype.kind == "m":
        return np.isnat(arr)
    if arr.dtype.kind == "O":
        try:  # fast path: NaN is the only value unequal to itself
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                mask = np.not_equal(arr, arr).astype(bool) | np.equal(arr, None)
            if mask.shape == arr.shape:
                return mask
        except (TypeError, ValueError):  # e.g. pd.NA, whose truth value raises
            pass
        return _is_missing_ufunc(arr).astype(bool)
    return np.zeros(arr.shape, dtype=bool)


def _equal_mask(arr, value):
    """Boolean mask of ``arr == value``; all False for incomparable types."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            eq = arr == value
    except (TypeError, ValueError):
        return np.zeros(arr.shape, dtype=bool)
    eq = np.asarray(eq)
    if eq.shape != arr.shape or eq.dtype != bool:
        return np.zeros(arr.shape, dtype=bool)
    return eq


def _as_1d(values, name):
    """A 1-D ndarray of ``values``; mixed python types keep object dtype."""
    if sp.issparse(values):
        raise TypeError(f"{name} must be a 1-D array-like, got a sparse matrix")
    if isinstance(values, np.ndarray):
        arr = values
    else:
        arr = np.asarray(values)
        if arr.dtype.kind in "US" and arr.ndim == 1:
            # np.asarray turns [1, "a"] into ["1", "a"]: keep the original objects
            obj = np.empty(len(arr), dtype=object)
            obj[:] = list(values)
            if not all(isinstance(v, (str, bytes)) for v in obj):
                arr = obj
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got an array of shape {arr.shape}")
    return arr


def _factorize(values):
    """Unique values (sorted when orderable) and the inverse codes (int64)."""
    try:
        uniques, inverse = np.unique(values, return_inverse=True)
        return uniques, inverse.reshape(-1).astype(np.int64, copy=False)
    except TypeError:
        # unorderable mixture (e.g. ints and strings): first-appearance order
        mapping = {}
        inverse = np.fromiter(
            (mapping.setdefault(v, len(mapping)) for v in values.tolist()),
            dtype=np.int64,
            count=len(values),
        )
        uniques = np.empty(len(mapping), dtype=object)
        uniques[:] = list(mapping)
        return uniques, inverse


def _check_unique(ids, name):
    uniques, inverse = _factorize(ids)
    if len(uniques) != len(ids):
        counts = np.bincount(inverse, minlength=len(uniques))
        dup = uniques[counts > 1]
        raise ValueError(
            f"{name} must hold unique values; duplicated: {dup[:10].tolist()}"
        )


def _lookup(values, ids, what, where):
    """Positions of ``values`` in the unique array ``ids``.

    Raises a ValueError naming ``what`` and ``where`` for values not in ``ids``.
    """
    values = np.asarray(values)
    if values.size == 0:
        return np.empty(0, dtype=np.int64)
    kinds = {values.dtype.kind, ids.dtype.kind}
    if len(ids) and (kinds <= set("biuf") or kinds <= set("U") or kinds <= set("S")):
        sorter = np.argsort(ids, kind="stable")
        pos = np.searchsorted(ids, values, sorter=sorter)
        idx = sorter[np.minimum(pos, len(ids) - 1)]
        found = ids[idx] == values
        codes = np.where(found, idx, -1).astype(np.int64)
    else:
        mapping = {v: i for i, v in enumerate(ids.tolist())}
        try:
            codes = np.fromiter(
                (mapping.get(v, -1) for v in values.tolist()),
                dtype=np.int64,
                count=len(values),
            )
        except TypeError as exc:  # unhashable values
            raise TypeError(f"{what} must hold hashable values: {exc}") from exc
    unknown = codes < 0
    if unknown.any():
        bad = _factorize(values[unknown])[0]
        raise ValueError(
            f"{what} contains {len(bad)} value(s) not in {where}: "
            f"{bad[:10].tolist()}{' ...' if len(bad) > 10 else ''}"
        )
    return codes


def _as_ids(ids, name):
    ids = _as_1d(ids, name)
    _check_unique(ids, name)
    return np.array(ids)  # a copy the matrix owns


def _encode(values, name, ids, ids_name):
    """Codes of ``values`` and the id array (given ``ids`` or the values' uniques)."""
    if ids is None:
        uniques, codes = _factorize(values)
        return codes, uniques
    ids = _as_ids(ids, ids_name)
    return _lookup(values, ids, name, ids_name), ids


def _check_random_state(random_state):
    if isinstance(random_state, np.random.Generator):
        return random_state
    return check_random_state(random_state)


def _argmax_tie_break(scores, tie_break="random", random_state=None, *, atol=1e-12):
    """Row-wise argmax of ``scores`` with ties broken by ``tie_break``.

    ``"first"`` takes the first maximal column, ``"random"`` one of the maximal
    columns (within ``atol``) uniformly at random.
    """
    if tie_break not in ("random", "first"):
        raise ValueError(f"tie_break must be 'random' or 'first', got {tie_break!r}")
    scores = np.asarray(scores, dtype=float)
    if scores.shape[1] == 0:
        return np.full(scores.shape[0], -1, dtype=np.int64)
    if tie_break == "first":
        return np.argmax(scores, axis=1).astype(np.int64)
    rng = _check_random_state(random_state)
    top = scores.max(axis=1, keepdims=True)
    noise = rng.random(scores.shape)
    noise[scores < top - atol] = -1.0
    return np.argmax(noise, axis=1).astype(np.int64)


def _decode(codes, classes):
    """Label values of ``codes``; ``-1`` becomes NaN (numeric) or None (others).

    The result keeps the dtype of ``classes`` when no code is ``-1``.
    """
    codes = np.asarray(codes)
    missing = codes < 0
    if not missing.any():
        return classes[codes]
    if classes.dtype.kind in "iuf":
        out = np.full(codes.shape, np.nan)
    else:
        out = np.full(codes.shape, None, dtype=object)
    out[~missing] = classes[codes[~missing]]
    return out


def _item(arr, i):
    """``arr[i]`` as a python object (for error messages)."""
    return arr[i : i + 1].tolist()[0]


def _readonly(arr):
    arr.flags.writeable = False
    return arr


# --------------------------------------------------------------------------- class


def is_long_table(Y):
    """Whether ``Y`` is a long table: a DataFrame with task, worker, label columns."""
    return _is_dataframe(Y) and {"task", "worker", "label"} <= set(Y.columns)


def _check_dense_labels(Y, name="Y"):
    """``Y`` as a 1-D or 2-D array of class labels, with clear errors."""
    try:
        arr = np.asarray(Y)
    except ValueError:
        raise ValueError(
            f"{name} must be 1-D (one annotator) or 2-D (n_samples, n_annotators) "
            "with rows of equal length; got ragged rows (use np.nan or None for "
            "missing labels)"
        ) from None
    if arr.ndim == 0 or arr.ndim > 2:
        raise ValueError(
            f"{name} must be 1-D (one annotator) or 2-D (n_samples, n_annotators), "
            f"got an array of shape {arr.shape}"
        )
    if arr.dtype.kind == "c":
        raise ValueError(f"{name} must hold class labels, got complex values")
    return arr


def check_classification_labels(Y, name="Y"):
    """Reject dense numeric labels that are infinite or continuous (classifiers)."""
    if isinstance(Y, CrowdLabelMatrix) or sp.issparse(Y) or is_long_table(Y):
        return
    arr = _check_dense_labels(Y, name)
    if arr.dtype.kind in "fiub":
        values = arr.astype(float)
        if np.isinf(values).any():
            raise ValueError(f"{name} contains infinity; use np.nan for missing labels")
        observed = values[~np.isnan(values)]
        if observed.size:
            # raises "Unknown label type: continuous" for regression targets
            check_classification_targets(observed)


class CrowdLabelMatrix:
    """Sparse annotations of ``n_samples`` items by ``n_annotators`` annotators.

    Every annotation is a (sample, annotator, label) triplet; unlabelled
    (sample, annotator) cells are simply absent, so memory grows with the number
    of labels, not with ``n_samples * n_annotators``. Build one with the
    ``from_*`` class methods rather than with the constructor.

    Parameters
    ----------
    rows : array-like of int of shape (n_labels,)
        Row (sample position) of each annotation.
    cols : array-like of int of shape (n_labels,)
        Column (annotator position) of each annotation.
    codes : array-like of int of shape (n_labels,)
        Label of each annotation as an index into ``classes``.
    sample_ids : array-like of shape (n_samples,)
        Unique identifier of each row.
    annotator_ids : array-like of shape (n_annotators,)
        Unique identifier of each column.
    classes : array-like of shape (n_classes,)
        Unique label values; code ``k`` stands for ``classes[k]``.

    Attributes
    ----------
    rows, cols, codes : ndarray of int64 of shape (n_labels,)
        The annotations in COO form, sorted by row then column (read-only).
    sample_ids : ndarray of shape (n_samples,)
    annotator_ids : ndarray of shape (n_annotators,)
    classes : ndarray of shape (n_classes,)

    See Also
    --------
    sklearn_metaannot.aggregation.MajorityVote : Aggregate by majority vote.
    sklearn_metaannot.aggregation.DawidSkene : Aggregate with annotator
        confusion matrices.

    Notes
    -----
    Indexing with an integer array, a slice or a boolean mask selects rows
    (``Y[train]``), so scikit-learn's cross-validation splitters can pass a
    ``CrowdLabelMatrix`` as ``y``. Repeated indices (bootstrap samples) give
    repeated ``sample_ids``; such a matrix cannot be rebuilt with
    :meth:`from_triplets`, which requires unique sample ids.

    Examples
    --------
    >>> from sklearn_metaannot import CrowdLabelMatrix
    >>> Y = CrowdLabelMatrix.from_triplets(
    ...     ["img1", "img1", "img2", "img3"],
    ...     ["ann", "bob", "bob", "ann"],
    ...     ["cat", "dog", "dog", "cat"],
    ... )
    >>> Y
    CrowdLabelMatrix(n_samples=3, n_annotators=2, n_labels=4, classes=['cat', 'dog'])
    >>> Y.to_codes()
    array([[ 0,  1],
           [-1,  1],
           [ 0, -1]])
    >>> Y.majority_vote(tie_break="first").tolist()
    ['cat', 'dog', 'cat']
    """

    def __init__(self, rows, cols, codes, *, sample_ids, annotator_ids, classes):
        sample_ids = _as_ids(sample_ids, "sample_ids")
        annotator_ids = _as_ids(annotator_ids, "annotator_ids")
        classes = _as_ids(classes, "classes")
        arrays = {}
        for name, values, bound in [
            ("rows", rows, len(sample_ids)),
            ("cols", cols, len(annotator_ids)),
            ("codes", codes, len(classes)),
        ]:
            arr = _as_1d(values, name)
            if arr.size and arr.dtype.kind not in "iu":
                raise TypeError(f"{name} must hold integers, got dtype {arr.dtype}")
            arr = arr.astype(np.int64)
            if arr.size and (arr.min() < 0 or arr.max() >= bound):
                raise ValueError(
                    f"{name} must lie in [0, {bound}), got values in "
                    f"[{arr.min()}, {arr.max()}]"
                )
            arrays[name] = arr
        if not len(arrays["rows"]) == len(arrays["cols"]) == len(arrays["codes"]):
            raise ValueError(
                "rows, cols and codes must have the same length, got "
                f"{len(arrays['rows'])}, {len(arrays['cols'])} and "
                f"{len(arrays['codes'])}"
            )
        rows, cols, codes = self._canonical(
            arrays["rows"],
            arrays["cols"],
            arrays["codes"],
            sample_ids,
            annotator_ids,
            classes,
            source="the annotations",
        )
        self._set(rows, cols, codes, sample_ids, annotator_ids, classes)

    # ------------------------------------------------------------------ internals

    def _set(self, rows, cols, codes, sample_ids, annotator_ids, classes):
        self.rows = _readonly(rows)
        self.cols = _readonly(cols)
        self.codes = _readonly(codes)
        self.sample_ids = _readonly(sample_ids)
        self.annotator_ids = _readonly(annotator_ids)
        self.classes = _readonly(classes)

    @classmethod
    def _trusted(cls, rows, cols, codes, sample_ids, annotator_ids, classes):
        """Build from canonical (sorted, duplicate-free) arrays without checks."""
        self = cls.__new__(cls)
        self._set(rows, cols, codes, sample_ids, annotator_ids, classes)
        return self

    @staticmethod
    def _canonical(rows, cols, codes, sample_ids, annotator_ids, classes, *, source):
        """Sort by (row, col); drop identical duplicates, reject conflicting ones."""
        n_annotators = max(len(annotator_ids), 1)
        keys = rows * n_annotators + cols
        if keys.size > 1 and not np.all(keys[1:] > keys[:-1]):
            order = np.argsort(keys, kind="stable")
            keys, rows, cols, codes = (
                keys[order],
                rows[order],
                cols[order],
                codes[order],
            )
            dup = np.flatnonzero(keys[1:] == keys[:-1])
            if dup.size:
                conflict = dup[codes[dup] != codes[dup + 1]]
                if conflict.size:
                    pairs = [
                        f"({_item(sample_ids, rows[i])!r}, "
                        f"{_item(annotator_ids, cols[i])!r}): "
                        f"{_item(classes, codes[i])!r} vs "
                        f"{_item(classes, codes[i + 1])!r}"
                        for i in conflict[:5]
                    ]
                    raise ValueError(
                        f"{source} give {conflict.size} (sample, annotator) pair(s) "
                        "two different labels; an annotator labels a sample at "
                        f"most once: {'; '.join(pairs)}"
                        f"{' ...' if conflict.size > 5 else ''}"
                    )
                warnings.warn(
                    f"{source} repeat {dup.size} identical (sample, annotator, "
                    "label) triplet(s); the repetitions were dropped",
                    UserWarning,
                    stacklevel=3,
                )
                keep = np.ones(keys.size, dtype=bool)
                keep[dup + 1] = False
                rows, cols, codes = rows[keep], cols[keep], codes[keep]
        return rows, cols, codes

    @classmethod
    def _from_positions(
        cls,
        rows,
        cols,
        labels,
        sample_ids,
        annotator_ids,
        classes,
        *,
        labels_name,
        source,
    ):
        """Matrix from row/col positions and label values (checked, encoded)."""
        missing = _missing_mask(labels)
        if missing.any():
            raise ValueError(
                f"{labels_name} contains {int(missing.sum())} missing value(s) "
                "(NaN or None); drop them, a missing label is an absent triplet"
            )
        codes, classes = _encode(labels, labels_name, classes, "classes")
        rows, cols, codes = cls._canonical(
            rows.astype(np.int64),
            cols.astype(np.int64),
            codes,
            sample_ids,
            annotator_ids,
            classes,
            source=source,
        )
        return cls._trusted(rows, cols, codes, sample_ids, annotator_ids, classes)

    # --------------------------------------------------------------- constructors

    @classmethod
    def from_triplets(
        cls,
        samples,
        annotators,
        labels,
        *,
        sample_ids=None,
        annotator_ids=None,
        classes=None,
    ):
        """Build from (sample, annotator, label) triplets.

        Parameters
        ----------
        samples : array-like of shape (n_labels,)
            Sample id of each annotation (any hashable: ints, strings, ...).
        annotators : array-like of shape (n_labels,)
            Annotator id of each annotation.
        labels : array-like of shape (n_labels,)
            Label of each annotation; NaN / None are rejected.
        sample_ids : array-like of shape (n_samples,), default=None
            Row order. Samples listed here but absent from ``samples`` become
            rows without labels; ids in ``samples`` that are not listed raise a
            ValueError. By default the sorted unique ``samples`` (first-appearance
            order if they cannot be sorted).
        annotator_ids : array-like of shape (n_annotators,), default=None
            Column order, like ``sample_ids``.
        classes : array-like of shape (n_classes,), default=None
            Label values in code order; labels not in it raise a ValueError. By
            default the sorted unique labels.

        Returns
        -------
        CrowdLabelMatrix

        Raises
        ------
        ValueError
            If the arrays differ in length, if a label is missing or unknown, or
            if a (sample, annotator) pair has two different labels. Identical
            repeated triplets are dropped with a UserWarning.

        Examples
        --------
        >>> from sklearn_metaannot import CrowdLabelMatrix
        >>> Y = CrowdLabelMatrix.from_triplets(
        ...     [0, 0, 2], ["a", "b", "a"], [1, 0, 1], sample_ids=[0, 1, 2]
        ... )
        >>> Y.shape, Y.n_labels
        ((3, 2), 3)
        >>> Y.to_dense()
        array([[ 1.,  0.],
               [nan, nan],
               [ 1., nan]])
        """
        samples = _as_1d(samples, "samples")
        annotators = _as_1d(annotators, "annotators")
        labels = _as_1d(labels, "labels")
        if not len(samples) == len(annotators) == len(labels):
            raise ValueError(
                "samples, annotators and labels must have the same length, got "
                f"{len(samples)}, {len(annotators)} and {len(labels)}"
            )
        rows, sample_ids = _encode(samples, "samples", sample_ids, "sample_ids")
        cols, annotator_ids = _encode(
            annotators, "annotators", annotator_ids, "annotator_ids"
        )
        return cls._from_positions(
            rows,
            cols,
            labels,
            sample_ids,
            annotator_ids,
            classes,
            labels_name="labels",
            source="the triplets",
        )

    @classmethod
    def from_long(
        cls,
        df,
        *,
        task="task",
        worker="worker",
        label="label",
        sample_ids=None,
        annotator_ids=None,
        classes=None,
    ):
        """Build from a long table with one annotation per row (crowd-kit format).

        Parameters
        ----------
        df : pandas.DataFrame
            Table with a task (sample), a worker (annotator) and a label column.
        task, worker, label : str, default="task", "worker", "label"
            Column names.
        sample_ids, annotator_ids, classes : array-like, default=None
            As in :meth:`from_triplets`.

        Returns
        -------
        CrowdLabelMatrix

        Examples
        --------
        >>> import pandas as pd
        >>> from sklearn_metaannot import CrowdLabelMatrix
        >>> df = pd.DataFrame(
        ...     {"task": ["t1", "t1", "t2"], "worker": ["w1", "w2", "w1"],
        ...      "label": ["yes", "no", "yes"]}
        ... )
        >>> Y = CrowdLabelMatrix.from_long(df)
        >>> Y.shape, Y.classes.tolist()
        ((2, 2), ['no', 'yes'])
        """
        if not hasattr(df, "columns"):
            raise TypeError(f"df must be a pandas DataFrame, got {type(df).__name__}")
        for arg, column in [("task", task), ("worker", worker), ("label", label)]:
            if column not in df.columns:
                raise ValueError(
                    f"df has no column {column!r} (the {arg} column); its columns "
                    f"are {list(df.columns)}"
                )
        return cls.from_triplets(
            df[task].to_numpy(),
            df[worker].to_numpy(),
            df[label].to_numpy(),
            sample_ids=sample_ids,
            annotator_ids=annotator_ids,
            classes=classes,
        )

    @classmethod
    def from_dense(cls, Y, *, missing=np.nan, classes=None):
        """Build from a dense (n_samples, n_annotators) array of labels.

        Parameters
        ----------
        Y : array-like of shape (n_samples, n_annotators) or (n_samples,)
            Labels, numeric or not. NaN and None always mark a missing label;
            1-D input is one annotator. A pandas DataFrame keeps its index as
            ``sample_ids`` and its columns as ``annotator_ids``; otherwise the
            ids are ``0 .. n - 1``.
        missing : scalar, default=np.nan
            A further sentinel for missing labels, e.g. ``-1``.
        classes : array-like of shape (n_classes,), default=None
            Label values in code order (by default the sorted unique labels).

        Returns
        -------
        CrowdLabelMatrix

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn_metaannot import CrowdLabelMatrix
        >>> Y = CrowdLabelMatrix.from_dense([[0, 1], [2, -1]], missing=-1)
        >>> Y.n_labels, Y.classes
        (3, array([0, 1, 2]))
        >>> Y.to_dense(missing=-1)
        array([[ 0,  1],
               [ 2, -1]])
        """
        if sp.issparse(Y):
            raise TypeError("Y is a sparse matrix: use CrowdLabelMatrix.from_sparse")
        if isinstance(Y, CrowdLabelMatrix):
            raise TypeError("Y is already a CrowdLabelMatrix: use from_any")
        sample_ids = annotator_ids = None
        if _is_dataframe(Y):
            sample_ids, annotator_ids = Y.index.to_numpy(), Y.columns.to_numpy()
            _check_unique(sample_ids, "Y.index")
            _check_unique(annotator_ids, "Y.columns")
        arr = _check_dense_labels(Y)
        if arr.ndim == 1:
            arr = arr[:, None]
        mask = _missing_mask(arr)
        if not _is_missing_scalar(missing):
            mask |= _equal_mask(arr, missing)
            if classes is not None and any(
                c == missing for c in _as_1d(classes, "classes").tolist()
            ):
                raise ValueError(
                    f"missing={missing!r} is also one of the classes; pick a "
                    "sentinel that is not a label"
                )
        rows, cols = np.nonzero(~mask)
        if sample_ids is None:
            sample_ids = np.arange(arr.shape[0])
        if annotator_ids is None:
            annotator_ids = np.arange(arr.shape[1])
        return cls._from_positions(
            rows,
            cols,
            arr[rows, cols],
            sample_ids,
            annotator_ids,
            classes,
            labels_name="Y",
            source="Y",
        )

    @classmethod
    def from_sparse(cls, S, *, classes=None, codes=False):
        """Build from a scipy sparse matrix of labels.

        Explicitly stored entries are annotations, explicit zeros included;
        implicit zeros are missing.

        Parameters
        ----------
        S : scipy sparse matrix or array of shape (n_samples, n_annotators)
            Stored labels. Repeated identical COO entries are dropped with a
            warning, repeated different ones raise a ValueError.
        classes : array-like of shape (n_classes,), default=None
            Label values in code order. By default the sorted unique stored
            values (``codes=False``) or ``0 .. max code`` (``codes=True``).
        codes : bool, default=False
            If True, the stored values are codes into ``classes``, the format
            of :meth:`to_sparse`: ``from_sparse(Y.to_sparse(), classes=Y.classes,
            codes=True)`` rebuilds ``Y`` (with ids ``0 .. n - 1``).

        Returns
        -------
        CrowdLabelMatrix

        Examples
        --------
        >>> import scipy.sparse as sp
        >>> from sklearn_metaannot import CrowdLabelMatrix
        >>> S = sp.csr_matrix(([0, 1, 1], ([0, 0, 1], [0, 2, 1])), shape=(2, 3))
        >>> S.nnz  # the explicit zero counts as a label
        3
        >>> Y = CrowdLabelMatrix.from_sparse(S)
        >>> Y.to_codes()
        array([[ 0, -1,  1],
               [-1,  1, -1]])
        """
        if not sp.issparse(S):
            raise TypeError(
                f"S must be a scipy sparse matrix or array, got {type(S).__name__}"
            )
        coo = S.tocoo()
        if coo.ndim != 2:
            raise ValueError(f"S must be 2-D, got shape {coo.shape}")
        n_samples, n_annotators = coo.shape
        rows = np.asarray(coo.row, dtype=np.int64)
        cols = np.asarray(coo.col, dtype=np.int64)
        data = np.asarray(coo.data)
        sample_ids, annotator_ids = np.arange(n_samples), np.arange(n_annotators)
        if not codes:
            return cls._from_positions(
                rows,
                cols,
                data,
                sample_ids,
                annotator_ids,
                classes,
                labels_name="S",
                source="S",
            )
        if data.size and (
            data.dtype.kind not in "biuf"
            or not np.all(np.isfinite(data))
            or not np.all(data == np.round(data))
            or data.min() < 0
        ):
            raise ValueError("S must store non-negative integer codes when codes=True")
        data = data.astype(np.int64)
        if classes is None:
            classes = np.arange(data.max() + 1 if data.size else 0)
        classes = _as_ids(classes, "classes")
        if data.size and data.max() >= len(classes):
            raise ValueError(
                f"S stores code {data.max()} but classes has only {len(classes)} values"
            )
        rows, cols, data = cls._canonical(
            rows, cols, data, sample_ids, annotator_ids, classes, source="S"
        )
        return cls._trusted(rows, cols, data, sample_ids, annotator_ids, classes)

    @classmethod
    def from_any(cls, Y):
        """Build from any supported input.

        Parameters
        ----------
        Y : CrowdLabelMatrix, scipy sparse matrix, pandas DataFrame or array-like
            A CrowdLabelMatrix is returned as is; sparse input goes to
            :meth:`from_sparse`, a DataFrame with ``task``, ``worker`` and
            ``label`` columns to :meth:`from_long`, anything else to
            :meth:`from_dense`.

        Returns
        -------
        CrowdLabelMatrix

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn_metaannot import CrowdLabelMatrix
        >>> CrowdLabelMatrix.from_any(np.array([[1.0, np.nan], [0.0, 1.0]]))
        CrowdLabelMatrix(n_samples=2, n_annotators=2, n_labels=3, classes=[0.0, 1.0])
        """
        if Y is None:
            raise ValueError(
                "This estimator requires y to be passed, but the target y is None: "
                "pass Y of shape (n_samples, n_annotators) or (n_samples,)"
            )
        if isinstance(Y, CrowdLabelMatrix):
            return Y
        if sp.issparse(Y):
            return cls.from_sparse(Y)
        if is_long_table(Y):
            return cls.from_long(Y)
        return cls.from_dense(Y)

    # ----------------------------------------------------------------- properties

    @property
    def shape(self):
        """(n_samples, n_annotators)."""
        return (len(self.sample_ids), len(self.annotator_ids))

    @property
    def n_samples(self):
        """Number of rows (samples), labelled or not."""
        return len(self.sample_ids)

    @property
    def n_annotators(self):
        """Number of columns (annotators), with labels or not."""
        return len(self.annotator_ids)

    @property
    def n_classes(self):
        """Number of label values."""
        return len(self.classes)

    @property
    def n_labels(self):
        """Number of annotations."""
        return len(self.codes)

    def __len__(self):
        return self.n_samples

    def __repr__(self):
        classes = self.classes[:6].tolist()
        shown = repr(classes[:5])
        if len(self.classes) > 5:
            shown = shown[:-1] + ", ...]"
        return (
            f"{type(self).__name__}(n_samples={self.n_samples}, "
            f"n_annotators={self.n_annotators}, n_labels={self.n_labels}, "
            f"classes={shown})"
        )

    # ---------------------------------------------------------------- conversions

    def to_codes(self):
        """Dense matrix of label codes.

        Returns
        -------
        ndarray of int64 of shape (n_samples, n_annotators)
            ``classes[codes[i, j]]`` is annotator ``j``'s label of sample ``i``;
            ``-1`` marks a missing label.

        Examples
        --------
        >>> from sklearn_metaannot import CrowdLabelMatrix
        >>> CrowdLabelMatrix.from_dense([["a", None], ["b", "a"]]).to_codes()
        array([[ 0, -1],
               [ 1,  0]])
        """
        out = np.full(self.shape, -1, dtype=np.int64)
        out[self.rows, self.cols] = self.codes
        return out

    def to_dense(self, missing=np.nan):
        """Dense matrix of label values.

        Parameters
        ----------
        missing : scalar, default=np.nan
            Value of the unlabelled cells; must not be a class.

        Returns
        -------
        ndarray of shape (n_samples, n_annotators)
            Float with NaN for numeric classes and ``missing=np.nan``; the
            common numeric dtype for numeric classes and a numeric ``missing``
            (e.g. int64 for int classes and ``missing=-1``); object otherwise.

        Examples
        --------
        >>> from sklearn_metaannot import CrowdLabelMatrix
        >>> Y = CrowdLabelMatrix.from_dense([["a", None], ["b", "a"]])
        >>> Y.to_dense()
        array([['a', nan],
               ['b', 'a']], dtype=object)
        >>> Y.to_dense(missing=None)
        array([['a', None],
               ['b', 'a']], dtype=object)
        """
        classes = self.classes
        numeric = classes.dtype.kind in "iuf"
        if _is_nan_scalar(missing):
            dtype = np.result_type(classes.dtype, np.float64) if numeric else object
        else:
            if any(c == missing for c in classes.tolist()):
                raise ValueError(
                    f"missing={missing!r} is one of the classes; pick another sentinel"
                )
            is_number = isinstance(missing, numbers.Number) and not isinstance(
                missing, bool
            )
            dtype = (
                np.result_type(classes.dtype, np.asarray(missing).dtype)
                if numeric and is_number
                else object
            )
        out = np.empty(self.shape, dtype=dtype)
        out[...] = missing
        out[self.rows, self.cols] = classes[self.codes]
        return out

    def __array__(self, dtype=None, copy=None):
        if copy is False:
            raise ValueError(
                "a CrowdLabelMatrix is stored sparsely: it cannot become a dense "
                "array without a copy"
            )
        out = self.to_dense()
        return out if dtype is None else out.astype(dtype)

    def to_triplets(self):
        """The annotations as (samples, annotators, labels) arrays of original ids.

        Returns
        -------
        samples : ndarray of shape (n_labels,)
        annotators : ndarray of shape (n_labels,)
        labels : ndarray of shape (n_labels,)

        Examples
        --------
        >>> from sklearn_metaannot import CrowdLabelMatrix
        >>> Y = CrowdLabelMatrix.from_triplets(["x", "y"], [7, 7], [True, False])
        >>> [a.tolist() for a in Y.to_triplets()]
        [['x', 'y'], [7, 7], [True, False]]
        """
        return (
            self.sample_ids[self.rows],
            self.annotator_ids[self.cols],
            self.classes[self.codes],
        )

    def to_long(self, *, task="task", worker="worker", label="label"):
        """The annotations as a long pandas DataFrame (crowd-kit format).

        Parameters
        ----------
        task, worker, label : str, default="task", "worker", "label"
            Column names.

        Returns
        -------
        pandas.DataFrame
            One row per annotation, sorted by row then annotator. Samples
            without labels do not appear.

        Examples
        --------
        >>> from sklearn_metaannot import CrowdLabelMatrix
        >>> CrowdLabelMatrix.from_dense([[0, 1], [1, -1]], missing=-1).to_long()
           task  worker  label
        0     0       0      0
        1     0       1      1
        2     1       0      1
        """
        pd = _import_pandas("CrowdLabelMatrix.to_long")
        samples, annotators, labels = self.to_triplets()
        return pd.DataFrame({task: samples, worker: annotators, label: labels})

    def to_sparse(self, *, codes=True):
        """The annotations as a CSR matrix.

        Parameters
        ----------
        codes : bool, default=True
            If True, the stored values are label codes (indices into
            ``classes``, int64), with explicit zeros for code 0: the lossless
            format that ``from_sparse(S, classes=Y.classes, codes=True)`` reads
            back. If False, the stored values are the label values themselves
            (numeric classes only; explicit zeros kept), the inverse of
            ``from_sparse(S)``.

        Returns
        -------
        scipy.sparse.csr_matrix of shape (n_samples, n_annotators)
            One explicit entry per annotation, canonical format.

        Examples
        --------
        >>> from sklearn_metaannot import CrowdLabelMatrix
        >>> Y = CrowdLabelMatrix.from_dense([["a", None], ["b", "a"]])
        >>> S = Y.to_sparse()
        >>> S.nnz, S.toarray().tolist()
        (3, [[0, 0], [1, 0]])
        >>> Z = CrowdLabelMatrix.from_sparse(S, classes=Y.classes, codes=True)
        >>> (Z.to_codes() == Y.to_codes()).all()
        np.True_
        """
        if codes:
            data = self.codes.copy()
        else:
            if self.classes.dtype.kind not in "biuf":
                raise TypeError(
                    "to_sparse(codes=False) needs numeric classes, got dtype "
                    f"{self.classes.dtype}; use codes=True"
                )
            data = self.classes[self.codes]
        indptr = np.zeros(self.n_samples + 1, dtype=np.int64)
        np.cumsum(np.bincount(self.rows, minlength=self.n_samples), out=indptr[1:])
        return sp.csr_matrix((data, self.cols.copy(), indptr), shape=self.shape)

    # ------------------------------------------------------------------- indexing

    def __getitem__(self, idx):
        """Select rows with an int array, a slice or a boolean mask.

        ``Y[idx, ...]`` and ``Y[idx, :]`` are accepted too (scikit-learn's
        ``_safe_indexing`` uses the former). All annotators and classes are
        kept.
        """
        if isinstance(idx, tuple):
            if len(idx) == 2 and (idx[1] is Ellipsis or idx[1] == slice(None)):
                idx = idx[0]
            elif len(idx) == 1:
                idx = idx[0]
            else:
                raise TypeError(
                    "CrowdLabelMatrix indexing selects rows only: use Y[rows], "
                    f"got a tuple of {len(idx)} indices"
                )
        n = self.n_samples
        if isinstance(idx, slice):
            idx = np.arange(n)[idx]
        elif isinstance(idx, numbers.Integral):
            raise TypeError(
                "CrowdLabelMatrix indexing selects rows: use Y[[i]] for one row"
            )
        else:
            idx = np.asarray(idx)
            if idx.dtype == bool:
                if idx.shape != (n,):
                    raise IndexError(
                        f"boolean index has shape {idx.shape}, expected ({n},)"
                    )
                idx = np.flatnonzero(idx)
            elif idx.size == 0:
                idx = idx.astype(np.int64).reshape(-1)
            elif idx.dtype.kind not in "iu" or idx.ndim != 1:
                raise IndexError(
                    "rows must be selected with a 1-D integer array, a slice or a "
                    f"boolean mask, got dtype {idx.dtype} and shape {idx.shape}"
                )
            elif idx.min() < -n or idx.max() >= n:
                raise IndexError(
                    f"row index out of range for a matrix with {n} samples"
                )
            idx = np.where(idx < 0, idx + n, idx).astype(np.int64)
        counts = np.bincount(self.rows, minlength=n)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        lengths = counts[idx]
        total = int(lengths.sum())
        new_rows = np.repeat(np.arange(len(idx), dtype=np.int64), lengths)
        offsets = np.arange(total, dtype=np.int64) - np.repeat(
            np.cumsum(lengths) - lengths, lengths
        )
        take = np.repeat(starts[idx], lengths) + offsets
        return self._trusted(
            new_rows,
            self.cols[take],
            self.codes[take],
            self.sample_ids[idx],
            self.annotator_ids.copy(),
            self.classes.copy(),
        )

    # ----------------------------------------------------------------- statistics

    def vote_counts(self):
        """Number of votes for each class.

        Returns
        -------
        ndarray of float64 of shape (n_samples, n_classes)

        Examples
        --------
        >>> from sklearn_metaannot import CrowdLabelMatrix
        >>> CrowdLabelMatrix.from_dense([[0, 1, 1], [2, None, None]]).vote_counts()
        array([[1., 2., 0.],
               [0., 0., 1.]])
        """
        k = self.n_classes
        counts = np.bincount(self.rows * k + self.codes, minlength=self.n_samples * k)
        return counts.astype(np.float64).reshape(self.n_samples, k)

    def majority_vote(
        self, *, tie_break="random", random_state=None, return_codes=False
    ):
        """Most frequent label of each sample.

        Parameters
        ----------
        tie_break : {"random", "first"}, default="random"
            Among tied classes, pick one uniformly at random, or the first in
            ``classes`` order.
        random_state : int, RandomState, Generator or None, default=None
            Seed of the random tie-breaking.
        return_codes : bool, default=False
            Return codes (``-1`` for samples without labels) instead of labels.

        Returns
        -------
        ndarray of shape (n_samples,)
            The voted labels. Samples without any label get NaN (numeric
            classes, float result) or None (other classes, object result);
            when every sample has a label the dtype is that of ``classes``.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn_metaannot import CrowdLabelMatrix
        >>> Y = CrowdLabelMatrix.from_dense([[0, 1, 1], [0, 1, np.nan], [np.nan] * 3])
        >>> Y.majority_vote(tie_break="first")
        array([ 1.,  0., nan])
        >>> Y.majority_vote(tie_break="first", return_codes=True)
        array([ 1,  0, -1])
        """
        counts = self.vote_counts()
        codes = _argmax_tie_break(counts, tie_break, random_state)
        codes[counts.sum(axis=1) == 0] = -1
        return codes if return_codes else _decode(codes, self.classes)

    def vote_matrix(self):
        """Sparse indicator of the labels, shape (n_annotators * n_classes, n_samples).

        Entry ``[r * K + l, n]`` is 1 when annotator ``r`` gave label ``l`` to
        sample ``n``: ``vote_matrix() @ posterior`` sums, for every (annotator,
        label), the posteriors of the samples so labelled.

        Returns
        -------
        scipy.sparse.csr_matrix

        Examples
        --------
        >>> from sklearn_metaannot import CrowdLabelMatrix
        >>> Y = CrowdLabelMatrix.from_dense([[0, 1], [1, None]])
        >>> Y.vote_matrix().toarray()
        array([[1., 0.],
               [0., 1.],
               [0., 0.],
               [1., 0.]])
        """
        K = self.n_classes
        return sp.csr_matrix(
            (np.ones(self.n_labels), (self.cols * K + self.codes, self.rows)),
            shape=(self.n_annotators * K, self.n_samples),
        )

    def expected_counts(self, posterior):
        """Expected confusion counts at the true-label ``posterior``.

        ``[r, k, l] = sum_n posterior[n, k] * [annotator r said l for n]``: the
        sufficient statistics of the confusion matrices in the M-step of
        Dawid-Skene and of the classifier's EM (spec 3.2, paper Eq. 7).

        Parameters
        ----------
        posterior : ndarray of shape (n_samples, n_classes)

        Returns
        -------
        ndarray of shape (n_annotators, n_classes, n_classes)

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn_metaannot import CrowdLabelMatrix
        >>> Y = CrowdLabelMatrix.from_dense([[0, 1], [1, 1]])
        >>> Y.expected_counts(np.array([[1.0, 0.0], [0.0, 1.0]]))[1]
        array([[0., 1.],
               [0., 1.]])
        """
        K = self.n_classes
        counts = np.asarray(self.vote_matrix() @ np.asarray(posterior, dtype=float))
        return counts.reshape(self.n_annotators, K, K).transpose(0, 2, 1).copy()

    def label_accuracy(self, posterior):
        """Labels per annotator and the mean posterior probability of their labels.

        Parameters
        ----------
        posterior : ndarray of shape (n_samples, n_classes)

        Returns
        -------
        n_labels : ndarray of shape (n_annotators,)
        accuracy : ndarray of shape (n_annotators,)
            NaN for an annotator without labels.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn_metaannot import CrowdLabelMatrix
        >>> Y = CrowdLabelMatrix.from_dense([[0, 1], [1, 1], [0, None]])
        >>> n_labels, accuracy = Y.label_accuracy(np.eye(2)[[0, 1, 0]])
        >>> n_labels.tolist(), accuracy.tolist()
        ([3, 2], [1.0, 0.5])
        """
        R = self.n_annotators
        n_labels = np.bincount(self.cols, minlength=R)
        right = np.bincount(
            self.cols, weights=posterior[self.rows, self.codes], minlength=R
        )
        with np.errstate(invalid="ignore", divide="ignore"):
            accuracy = np.where(n_labels > 0, right / np.maximum(n_labels, 1), np.nan)
        return n_labels, accuracy

    def annotator_counts(self):
        """Number of labels given by each annotator.

        Returns
        -------
        ndarray of int64 of shape (n_annotators,)

        Examples
        --------
        >>> from sklearn_metaannot import CrowdLabelMatrix
        >>> Y = CrowdLabelMatrix.from_dense([[0, 1, None], [2, None, None]])
        >>> Y.annotator_counts()
        array([2, 1, 0])
        """
        return np.bincount(self.cols, minlength=self.n_annotators).astype(np.int64)

    def annotator_agreement(self):
        """Agreement of each annotator with the majority vote of the others.

        For each label of annotator ``j`` on a sample that at least one other
        annotator labelled, the score is ``1 / t`` if the label is among the
        ``t`` classes tied for the most votes of the *other* annotators, else
        0 (the expected agreement with a randomly tie-broken vote). The
        annotator's agreement is the mean score of these labels.

        Returns
        -------
        ndarray of float64 of shape (n_annotators,)
            NaN for annotators none of whose labels can be compared.

        Examples
        --------
        >>> from sklearn_metaannot import CrowdLabelMatrix
        >>> Y = CrowdLabelMatrix.from_dense(
        ...     [[0, 0, 1], [1, 1, 1], [0, 0, None], [1, None, None]]
        ... )
        >>> Y.annotator_agreement().round(3)
        array([0.833, 0.833, 0.5  ])
        """
        k = self.n_classes
        counts = self.vote_counts()
        per_row = counts.sum(axis=1)
        comparable = per_row[self.rows] > 1
        rows, cols, codes = (
            self.rows[comparable],
            self.cols[comparable],
            self.codes[comparable],
        )
        score = np.empty(rows.size)
        step = max(1, _CHUNK // max(k, 1))
        for start in range(0, rows.size, step):
            stop = min(start + step, rows.size)
            others = counts[rows[start:stop]]
            at = np.arange(stop - start)
            others[at, codes[start:stop]] -= 1
            tied = others == others.max(axis=1, keepdims=True)
            score[start:stop] = tied[at, codes[start:stop]] / tied.sum(axis=1)
        total = np.bincount(cols, weights=score, minlength=self.n_annotators)
        n = np.bincount(cols, minlength=self.n_annotators)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n > 0, total / np.maximum(n, 1), np.nan)

    def annotator_stats(self):
        """Per-annotator summary as a pandas DataFrame.

        Returns
        -------
        pandas.DataFrame
            Columns ``annotator`` (id), ``n_labels`` (:meth:`annotator_counts`)
            and ``agreement`` (:meth:`annotator_agreement`), one row per
            annotator.

        Examples
        --------
        >>> from sklearn_metaannot import CrowdLabelMatrix
        >>> Y = CrowdLabelMatrix.from_dense([[0, 0, 1], [1, 1, 1]])
        >>> Y.annotator_stats()
           annotator  n_labels  agreement
        0          0         2       0.75
        1          1         2       0.75
        2          2         2       0.50
        """
        pd = _import_pandas("CrowdLabelMatrix.annotator_stats")
        return pd.DataFrame(
            {
                "annotator": self.annotator_ids,
                "n_labels": self.annotator_counts(),
                "agreement": self.annotator_agreement(),
            }
        )
