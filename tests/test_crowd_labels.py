"""Tests of the CrowdLabelMatrix container."""
# SPDX-License-Identifier: BSD-3-Clause

import re
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.model_selection import KFold
from sklearn.utils import _safe_indexing

from sklearn_metaannot.crowd._labels import CrowdLabelMatrix


def _triplet_set(Y):
    return set(zip(*(a.tolist() for a in Y.to_triplets())))


@pytest.fixture
def small():
    # 4 samples x 3 annotators; sample 3 and annotator "c" have no labels
    return CrowdLabelMatrix.from_triplets(
        ["s0", "s0", "s1", "s1", "s2"],
        ["a", "b", "a", "b", "b"],
        ["cat", "dog", "dog", "dog", "cat"],
        sample_ids=["s0", "s1", "s2", "s3"],
        annotator_ids=["a", "b", "c"],
    )


# ---------------------------------------------------- constructors / round trips


def test_triplets_round_trip(small):
    assert small.shape == (4, 3)
    assert len(small) == 4
    assert (small.n_samples, small.n_annotators) == (4, 3)
    assert small.n_classes == 2 and small.n_labels == 5
    assert small.classes.tolist() == ["cat", "dog"]
    assert _triplet_set(small) == {
        ("s0", "a", "cat"),
        ("s0", "b", "dog"),
        ("s1", "a", "dog"),
        ("s1", "b", "dog"),
        ("s2", "b", "cat"),
    }
    np.testing.assert_array_equal(
        small.to_codes(), [[0, 1, -1], [1, 1, -1], [-1, 0, -1], [-1, -1, -1]]
    )


def test_triplets_default_ids_are_sorted_uniques():
    Y = CrowdLabelMatrix.from_triplets([5, 2, 5], [1, 1, 0], [0, 1, 1])
    assert Y.sample_ids.tolist() == [2, 5]
    assert Y.annotator_ids.tolist() == [0, 1]
    np.testing.assert_array_equal(Y.to_codes(), [[-1, 1], [1, 0]])


def test_triplets_mixed_id_types_are_not_stringified():
    Y = CrowdLabelMatrix.from_triplets([1, "1"], ["w", "w"], [0, 1])
    assert Y.n_samples == 2
    assert _triplet_set(Y) == {(1, "w", 0), ("1", "w", 1)}


def test_triplets_random_round_trip():
    rng = np.random.default_rng(0)
    cells = rng.choice(40 * 7, size=100, replace=False)
    samples, annotators = cells // 7, cells % 7
    labels = rng.choice(["x", "y", "z"], size=100)
    Y = CrowdLabelMatrix.from_triplets(samples, annotators, labels)
    assert _triplet_set(Y) == set(
        zip(samples.tolist(), annotators.tolist(), labels.tolist())
    )


def test_triplets_given_classes_fix_codes():
    Y = CrowdLabelMatrix.from_triplets([0, 1], [0, 0], ["b", "b"], classes=["b", "a"])
    assert Y.classes.tolist() == ["b", "a"] and Y.n_classes == 2
    np.testing.assert_array_equal(Y.vote_counts(), [[1, 0], [1, 0]])


def test_dense_round_trip_numeric_nan():
    Y = np.array([[0.0, 1.0, np.nan], [2.0, np.nan, np.nan], [np.nan] * 3])
    M = CrowdLabelMatrix.from_dense(Y)
    assert M.shape == (3, 3) and M.n_labels == 3
    out = M.to_dense()
    assert out.dtype == np.float64
    np.testing.assert_array_equal(np.isnan(out), np.isnan(Y))
    np.testing.assert_array_equal(out, Y)
    np.testing.assert_array_equal(np.asarray(M), Y)


def test_dense_round_trip_int_sentinel():
    Y = np.array([[0, 3, -1], [-1, -1, 3]])
    M = CrowdLabelMatrix.from_dense(Y, missing=-1)
    assert M.classes.tolist() == [0, 3]
    out = M.to_dense(missing=-1)
    assert out.dtype == Y.dtype
    np.testing.assert_array_equal(out, Y)


def test_dense_round_trip_strings_and_none():
    Y = np.array([["a", None], [np.nan, "b"], ["b", "b"]], dtype=object)
    M = CrowdLabelMatrix.from_dense(Y)
    assert M.classes.tolist() == ["a", "b"] and M.n_labels == 4
    out = M.to_dense(missing=None)
    assert out.dtype == object
    assert out.tolist() == [["a", None], [None, "b"], ["b", "b"]]


def test_dense_one_dimensional_is_one_annotator():
    M = CrowdLabelMatrix.from_dense([1, 0, np.nan])
    assert M.shape == (3, 1) and M.n_labels == 2


def test_dense_dataframe_keeps_index_and_columns():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"ann": [1.0, np.nan], "bob": [0.0, 1.0]}, index=["x", "y"])
    M = CrowdLabelMatrix.from_dense(df)
    assert M.sample_ids.tolist() == ["x", "y"]
    assert M.annotator_ids.tolist() == ["ann", "bob"]
    assert _triplet_set(M) == {("x", "ann", 1.0), ("x", "bob", 0.0), ("y", "bob", 1.0)}


def test_long_round_trip():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(
        {
            "task": ["t2", "t1", "t1", "t3"],
            "worker": [10, 10, 11, 11],
            "label": ["no", "yes", "no", "yes"],
        }
    )
    M = CrowdLabelMatrix.from_long(df)
    out = M.to_long()
    assert list(out.columns) == ["task", "worker", "label"]
    assert set(map(tuple, out.to_numpy().tolist())) == set(
        map(tuple, df.to_numpy().tolist())
    )
    assert out["worker"].dtype == df["worker"].dtype
    M2 = CrowdLabelMatrix.from_long(
        df.rename(columns={"task": "item"}), task="item", sample_ids=["t1", "t2", "t3"]
    )
    np.testing.assert_array_equal(M2.to_codes(), M.to_codes())


def test_sparse_round_trip_keeps_explicit_zeros():
    S = sp.csr_matrix(
        (np.array([0, 2, 0, 5]), np.array([0, 2, 1, 0]), np.array([0, 2, 3, 4, 4])),
        shape=(4, 3),
    )
    assert S.nnz == 4 and (S.data == 0).sum() == 2
    M = CrowdLabelMatrix.from_sparse(S)
    assert M.n_labels == 4 and M.classes.tolist() == [0, 2, 5]
    back = M.to_sparse(codes=False)
    assert back.nnz == 4
    np.testing.assert_array_equal(back.indptr, S.indptr)
    np.testing.assert_array_equal(back.indices, S.indices)
    np.testing.assert_array_equal(back.data, S.data)
    # the code format is lossless for any classes
    codes = M.to_sparse()
    np.testing.assert_array_equal(codes.data, [0, 1, 0, 2])
    M2 = CrowdLabelMatrix.from_sparse(codes, classes=M.classes, codes=True)
    assert _triplet_set(M2) == _triplet_set(M)


def test_sparse_code_round_trip_with_string_classes(small):
    S = small.to_sparse()
    assert S.shape == small.shape and S.nnz == small.n_labels
    M = CrowdLabelMatrix.from_sparse(S, classes=small.classes, codes=True)
    np.testing.assert_array_equal(M.to_codes(), small.to_codes())
    np.testing.assert_array_equal(M.to_dense(None), small.to_dense(None))


def test_sparse_coo_identical_duplicates_dropped_with_warning():
    S = sp.coo_matrix(([1, 1], ([0, 0], [1, 1])), shape=(2, 2))
    with pytest.warns(UserWarning, match="identical"):
        M = CrowdLabelMatrix.from_sparse(S)
    assert M.n_labels == 1


def test_from_any_dispatch(small):
    pd = pytest.importorskip("pandas")
    assert CrowdLabelMatrix.from_any(small) is small
    dense = [[0, 1], [1, np.nan]]
    expected = CrowdLabelMatrix.from_dense(dense).to_codes()
    for Y in [
        np.array(dense),
        sp.csr_matrix(([0, 1, 1], ([0, 0, 1], [0, 1, 0])), shape=(2, 2)),
        pd.DataFrame({"task": [0, 0, 1], "worker": [0, 1, 0], "label": [0, 1, 1]}),
        pd.DataFrame(dense),
    ]:
        np.testing.assert_array_equal(CrowdLabelMatrix.from_any(Y).to_codes(), expected)


def test_low_level_constructor_and_read_only(small):
    M = CrowdLabelMatrix(
        [1, 0],
        [0, 1],
        [0, 0],
        sample_ids=["a", "b"],
        annotator_ids=[0, 1],
        classes=["yes"],
    )
    assert M.rows.tolist() == [0, 1]  # sorted
    with pytest.raises(ValueError, match="read-only"):
        small.codes[0] = 1


def test_repr(small):
    assert repr(small) == (
        "CrowdLabelMatrix(n_samples=4, n_annotators=3, n_labels=5, "
        "classes=['cat', 'dog'])"
    )
    many = CrowdLabelMatrix.from_dense(np.arange(8)[:, None])
    assert repr(many).endswith("classes=[0, 1, 2, 3, 4, ...])")


# -------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (
            {"samples": [0, 1], "annotators": [0], "labels": [1, 1]},
            "samples, annotators and labels must have the same length",
        ),
        (
            {"samples": [[0, 1]], "annotators": [0], "labels": [1]},
            "samples must be 1-D",
        ),
        (
            {"samples": [0, 1], "annotators": [0, 0], "labels": [1, None]},
            "labels contains 1 missing value",
        ),
        (
            {"samples": [0, 1], "annotators": [0, 0], "labels": [1, np.nan]},
            "labels contains 1 missing value",
        ),
        (
            {"samples": [0], "annotators": [0], "labels": [3], "classes": [0, 1]},
            r"labels contains 1 value\(s\) not in classes: \[3\]",
        ),
        (
            {"samples": [0, 7], "annotators": [0, 0], "labels": [1, 1],
             "sample_ids": [0, 1]},
            r"samples contains 1 value\(s\) not in sample_ids: \[7\]",
        ),
        (
            {"samples": [0], "annotators": ["z"], "labels": [1],
             "annotator_ids": ["a"]},
            r"annotators contains 1 value\(s\) not in annotator_ids: \['z'\]",
        ),
        (
            {"samples": [0], "annotators": [0], "labels": [1], "sample_ids": [0, 0]},
            r"sample_ids must hold unique values; duplicated: \[0\]",
        ),
        (
            {"samples": [0], "annotators": [0], "labels": [1], "classes": [1, 1]},
            "classes must hold unique values",
        ),
    ],
)  # fmt: skip
def test_from_triplets_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CrowdLabelMatrix.from_triplets(**kwargs)


def test_conflicting_duplicates_name_the_pair():
    with pytest.raises(ValueError, match=r"\('s1', 'ann'\): 'cat' vs 'dog'"):
        CrowdLabelMatrix.from_triplets(["s1", "s1"], ["ann", "ann"], ["cat", "dog"])


def test_identical_duplicates_dropped_with_warning():
    with pytest.warns(UserWarning, match="1 identical"):
        Y = CrowdLabelMatrix.from_triplets([0, 0, 1], [0, 0, 0], [2, 2, 2])
    assert Y.n_labels == 2


def test_from_long_errors():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"task": [0], "annotator": [0], "label": [1]})
    with pytest.raises(ValueError, match="df has no column 'worker'"):
        CrowdLabelMatrix.from_long(df)
    with pytest.raises(ValueError, match="df has no column 'lbl'"):
        CrowdLabelMatrix.from_long(df, worker="annotator", label="lbl")
    with pytest.raises(TypeError, match="df must be a pandas DataFrame"):
        CrowdLabelMatrix.from_long(np.zeros((2, 3)))


def test_from_dense_errors():
    with pytest.raises(ValueError, match=re.escape("Y must be 1-D (one annotator)")):
        CrowdLabelMatrix.from_dense(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="Y must be 1-D"):
        CrowdLabelMatrix.from_dense(3)
    with pytest.raises(TypeError, match="Y is a sparse matrix"):
        CrowdLabelMatrix.from_dense(sp.eye(2, format="csr"))
    with pytest.raises(ValueError, match="missing=-1 is also one of the classes"):
        CrowdLabelMatrix.from_dense([[0, -1]], missing=-1, classes=[-1, 0])
    with pytest.raises(ValueError, match=r"Y contains 1 value\(s\) not in classes"):
        CrowdLabelMatrix.from_dense([[0, 5]], classes=[0, 1])


def test_from_sparse_errors():
    with pytest.raises(TypeError, match="S must be a scipy sparse matrix"):
        CrowdLabelMatrix.from_sparse(np.eye(2))
    S = sp.csr_matrix(np.array([[np.nan, 1.0]]))
    with pytest.raises(ValueError, match="S contains 1 missing value"):
        CrowdLabelMatrix.from_sparse(S)
    with pytest.raises(ValueError, match="S must store non-negative integer codes"):
        CrowdLabelMatrix.from_sparse(sp.csr_matrix([[0.5, 1.0]]), codes=True)
    with pytest.raises(ValueError, match="S stores code 2 but classes has only 2"):
        CrowdLabelMatrix.from_sparse(sp.csr_matrix([[2, 1]]), classes=["a", "b"],
                                     codes=True)  # fmt: skip
    coo = sp.coo_matrix(([1, 2], ([0, 0], [1, 1])), shape=(2, 2))
    with pytest.raises(ValueError, match=r"S give 1 \(sample, annotator\) pair"):
        CrowdLabelMatrix.from_sparse(coo)


def test_conversion_errors(small):
    with pytest.raises(TypeError, match="to_sparse\\(codes=False\\) needs numeric"):
        small.to_sparse(codes=False)
    with pytest.raises(ValueError, match="missing='cat' is one of the classes"):
        small.to_dense(missing="cat")


def test_low_level_constructor_errors():
    kw = {"sample_ids": [0], "annotator_ids": [0], "classes": [0]}
    with pytest.raises(ValueError, match=r"rows must lie in \[0, 1\)"):
        CrowdLabelMatrix([1], [0], [0], **kw)
    with pytest.raises(TypeError, match="codes must hold integers"):
        CrowdLabelMatrix([0], [0], [0.5], **kw)
    with pytest.raises(ValueError, match="rows, cols and codes must have the same"):
        CrowdLabelMatrix([0], [0, 0], [0], **kw)


# ------------------------------------------------------------------------ indexing


def test_getitem_rows(small):
    sub = small[np.array([2, 0])]
    assert sub.shape == (2, 3)
    assert sub.sample_ids.tolist() == ["s2", "s0"]
    np.testing.assert_array_equal(sub.to_codes(), small.to_codes()[[2, 0]])
    assert sub.classes.tolist() == small.classes.tolist()
    assert sub.annotator_ids.tolist() == ["a", "b", "c"]
    for idx in [slice(1, None), np.array([True, False, True, True]), [-1, 0], [3, 3]]:
        np.testing.assert_array_equal(small[idx].to_codes(), small.to_codes()[idx])
    assert small[[]].shape == (0, 3)
    np.testing.assert_array_equal(small[[1], ...].to_codes(), small.to_codes()[[1]])
    np.testing.assert_array_equal(small[1:, :].to_codes(), small.to_codes()[1:])


def test_getitem_errors(small):
    with pytest.raises(TypeError, match=r"use Y\[\[i\]\] for one row"):
        small[0]
    with pytest.raises(TypeError, match="selects rows only"):
        small[0, 1]
    with pytest.raises(IndexError, match="out of range"):
        small[[4]]
    with pytest.raises(IndexError, match="boolean index has shape"):
        small[np.array([True, False])]


def test_safe_indexing_and_cross_validation_splits(small):
    sub = _safe_indexing(small, np.array([3, 1]))
    assert isinstance(sub, CrowdLabelMatrix)
    np.testing.assert_array_equal(sub.to_codes(), small.to_codes()[[3, 1]])
    sub = _safe_indexing(small, np.array([True, True, False, False]))
    assert sub.sample_ids.tolist() == ["s0", "s1"]
    X = np.arange(8).reshape(4, 2)
    for train, test in KFold(n_splits=2).split(X, small):
        assert _safe_indexing(small, train).n_samples == len(train)
        total = _safe_indexing(small, train).n_labels + small[test].n_labels
        assert total == small.n_labels


def test_never_densifies_huge_shapes():
    n = 1_000_000  # a dense matrix would have 10^12 cells
    rng = np.random.default_rng(0)
    samples = rng.choice(n, size=5000, replace=False)
    Y = CrowdLabelMatrix.from_triplets(
        samples,
        rng.integers(0, n, 5000),
        rng.integers(0, 3, 5000),
        sample_ids=np.arange(n),
        annotator_ids=np.arange(n),
    )
    assert Y.shape == (n, n)
    assert Y.to_sparse().nnz == 5000
    assert Y[np.arange(0, n, 2)].n_labels == int((samples % 2 == 0).sum())
    assert np.isnan(Y.majority_vote(random_state=0)).sum() == n - 5000
    assert Y.annotator_counts().sum() == 5000
    assert np.isnan(Y.annotator_agreement()).all()


# ---------------------------------------------------------------------- statistics


def test_vote_counts_and_majority_vote():
    Y = CrowdLabelMatrix.from_dense(
        [[0, 1, 1, np.nan], [2, 2, 0, 0], [np.nan] * 4, [1, np.nan, np.nan, np.nan]]
    )
    np.testing.assert_array_equal(
        Y.vote_counts(), [[1, 2, 0], [2, 0, 2], [0, 0, 0], [0, 1, 0]]
    )
    mv = Y.majority_vote(tie_break="first")
    np.testing.assert_array_equal(mv, [1.0, 0.0, np.nan, 1.0])
    np.testing.assert_array_equal(
        Y.majority_vote(tie_break="first", return_codes=True), [1, 0, -1, 1]
    )
    # random ties: both tied classes occur over seeds, never the third one
    picks = {Y.majority_vote(random_state=s)[1] for s in range(40)}
    assert picks == {0.0, 2.0}
    np.testing.assert_array_equal(
        Y.majority_vote(random_state=3), Y.majority_vote(random_state=3)
    )
    with pytest.raises(ValueError, match="tie_break must be 'random' or 'first'"):
        Y.majority_vote(tie_break="last")


def test_majority_vote_dtypes():
    ints = CrowdLabelMatrix.from_dense([[1, 1], [2, -1]], missing=-1)
    assert ints.majority_vote(tie_break="first").dtype == ints.classes.dtype
    strings = CrowdLabelMatrix.from_triplets(
        [0, 0, 1], [0, 1, 0], ["b", "b", "a"], sample_ids=[0, 1, 2]
    )
    mv = strings.majority_vote(tie_break="first")
    assert mv.dtype == object and mv.tolist() == ["b", "a", None]


def test_annotator_counts_and_agreement():
    # columns: annotators a0..a3; a3 never labels, a2 only labels alone (row 3)
    Y = CrowdLabelMatrix.from_dense(
        [
            [0, 0, np.nan, np.nan],  # a0, a1 agree
            [1, 0, np.nan, np.nan],  # a0, a1 disagree
            [1, 1, np.nan, np.nan],  # agree
            [np.nan, np.nan, 1, np.nan],  # a2 alone: not comparable
        ]
    )
    np.testing.assert_array_equal(Y.annotator_counts(), [3, 3, 1, 0])
    np.testing.assert_allclose(Y.annotator_agreement(), [2 / 3, 2 / 3, np.nan, np.nan])
    # ties among the others count 1 / (number of tied classes)
    Z = CrowdLabelMatrix.from_dense([[0, 1, 0], [0, 1, 2]])
    # a0: row0 others {1, 0} tie -> 1/2; row1 others {1, 2} -> 0
    # a1: row0 others {0, 0} -> 0;       row1 others {0, 2} -> 0
    # a2: row0 others {0, 1} -> 1/2;     row1 others {0, 1} -> 0
    np.testing.assert_allclose(Z.annotator_agreement(), [0.25, 0.0, 0.25])


def test_annotator_stats(small):
    pytest.importorskip("pandas")
    stats = small.annotator_stats()
    assert list(stats.columns) == ["annotator", "n_labels", "agreement"]
    assert stats["annotator"].tolist() == ["a", "b", "c"]
    assert stats["n_labels"].tolist() == [2, 3, 0]
    # s0: a=cat vs b=dog (0, 0); s1: both dog (1, 1)
    np.testing.assert_allclose(stats["agreement"], [0.5, 0.5, np.nan])


def test_no_warning_on_clean_input(small):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        CrowdLabelMatrix.from_dense(np.eye(3))
        small[[0, 0, 1]].to_codes()
