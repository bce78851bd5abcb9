"""Property-based tests (hypothesis): label formats, EM invariances, bad input."""
# SPDX-License-Identifier: BSD-3-Clause

import warnings

import numpy as np
import pytest
from sklearn.base import clone

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from sklearn_metaannot import (  # noqa: E402
    CrowdLabelMatrix,
    MetaAnnotatorClassifier,
    MetaLearner,
)

SETTINGS = settings(
    max_examples=30,
    deadline=None,
    database=None,  # no .hypothesis folder in the checkout
    suppress_health_check=[HealthCheck.too_slow],
)

LABEL_SETS = {
    "int": [0, 1, 2, 7],
    "float": [0.5, 1.0, 2.25],
    "str": ["cat", "dog", "eel"],
    "mixed": [1, "b", 2.5],
}


@st.composite
def crowd_matrices(draw):
    """Label dict {(row, col): label}, shape, and the label kind."""
    kind = draw(st.sampled_from(sorted(LABEL_SETS)))
    values = LABEL_SETS[kind]
    n_samples = draw(st.integers(1, 6))
    n_annotators = draw(st.integers(1, 4))
    cells = [(i, j) for i in range(n_samples) for j in range(n_annotators)]
    labelled = draw(st.lists(st.sampled_from(cells), unique=True, max_size=len(cells)))
    labels = {cell: draw(st.sampled_from(values)) for cell in labelled}
    return labels, (n_samples, n_annotators), kind


def _dense(labels, shape):
    dense = np.full(shape, None, dtype=object)
    for (i, j), v in labels.items():
        dense[i, j] = v
    return dense


def _assert_same(a, b):
    for name in ("rows", "cols", "codes", "sample_ids", "annotator_ids", "classes"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.tolist() == y.tolist(), name
        assert [type(v) for v in x.tolist()] == [type(v) for v in y.tolist()], name


@SETTINGS
@given(crowd_matrices())
def test_crowd_label_matrix_round_trips_every_format(case):
    labels, shape, kind = case
    Y = CrowdLabelMatrix.from_dense(_dense(labels, shape))
    assert Y.shape == shape and Y.n_labels == len(labels)
    # nothing is lost: every (row, col, label) comes back
    classes = Y.classes.tolist()
    got = {(int(r), int(c)): classes[k] for r, c, k in zip(Y.rows, Y.cols, Y.codes)}
    assert got == labels
    ids = {"sample_ids": Y.sample_ids, "annotator_ids": Y.annotator_ids}
    # triplets, with empty rows and columns kept through the id lists
    again = CrowdLabelMatrix.from_triplets(*Y.to_triplets(), **ids, classes=Y.classes)
    _assert_same(Y, again)
    # crowd-kit's long DataFrame
    _assert_same(Y, CrowdLabelMatrix.from_long(Y.to_long(), **ids, classes=Y.classes))
    # scipy sparse (codes; explicit zeros are labels)
    S = Y.to_sparse(codes=True)
    _assert_same(Y, CrowdLabelMatrix.from_sparse(S, classes=Y.classes, codes=True))
    _assert_same(Y, CrowdLabelMatrix.from_dense(Y.to_dense(), classes=Y.classes))
    if kind in ("int", "float") and labels:
        # dense float array with NaN for missing labels, and sparse label values
        dense = np.full(shape, np.nan)
        for (i, j), v in labels.items():
            dense[i, j] = v
        Yf = CrowdLabelMatrix.from_dense(dense)
        assert Yf.n_labels == len(labels)
        np.testing.assert_array_equal(Yf.to_dense(), dense)  # NaN where missing
        np.testing.assert_array_equal(Yf.to_codes(), Y.to_codes())
        S_values = Yf.to_sparse(codes=False)
        _assert_same(Yf, CrowdLabelMatrix.from_sparse(S_values, classes=Yf.classes))


@SETTINGS
@given(crowd_matrices(), st.data())
def test_duplicate_triplets_policy(case, data):
    labels, shape, _ = case
    if not labels:
        return
    Y = CrowdLabelMatrix.from_dense(_dense(labels, shape))
    samples, annotators, values = (a.tolist() for a in Y.to_triplets())
    ids = {"sample_ids": Y.sample_ids, "annotator_ids": Y.annotator_ids}
    repeat = data.draw(st.lists(st.integers(0, len(values) - 1), min_size=1))
    # identical repetitions are dropped with a warning: the matrix is unchanged
    with pytest.warns(UserWarning, match="identical .* triplet"):
        dup = CrowdLabelMatrix.from_triplets(
            samples + [samples[i] for i in repeat],
            annotators + [annotators[i] for i in repeat],
            values + [values[i] for i in repeat],
            **ids,
            classes=Y.classes,
        )
    _assert_same(Y, dup)
    # a (sample, annotator) pair with two different labels is an error
    i = repeat[0]
    other = next((c for c in Y.classes.tolist() if c != values[i]), None)
    if other is not None:
        with pytest.raises(ValueError, match="two different labels"):
            CrowdLabelMatrix.from_triplets(
                samples + [samples[i]],
                annotators + [annotators[i]],
                values + [other],
                **ids,
                classes=Y.classes,
            )


@st.composite
def tasks(draw):
    """A small crowd task: X (n, 3), Y (n, R) with NaN, 2-3 classes all named."""
    n_classes = draw(st.integers(2, 3))
    n = draw(st.integers(n_classes + 1, 10))
    R = draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    y = np.concatenate([np.arange(n_classes), rng.integers(0, n_classes, n)])[:n]
    X = 2.0 * np.eye(3)[y] + rng.normal(size=(n, 3))
    Y = np.where(
        rng.random((n, R)) < 0.8, y[:, None], rng.integers(0, n_classes, (n, R))
    )
    Y = Y.astype(float)
    Y[rng.random((n, R)) < 0.3] = np.nan
    Y[np.arange(n_classes), 0] = np.arange(n_classes)  # every class is named
    return X, Y, rng.permutation(n), rng.permutation(R), n_classes


@SETTINGS
@given(tasks())
def test_em_is_invariant_to_permuting_annotators_and_items(task):
    X, Y, item_perm, annot_perm, _ = task
    # the EM itself (representation, head and unlabelled_weight "auto" would
    # also choose from held-out folds, which follow the order of the items)
    em = MetaAnnotatorClassifier(
        representation="input", head="prototype", unlabelled_weight=1.0
    )
    ref = clone(em).fit(X, Y)
    by_annotator = clone(em).fit(X, Y[:, annot_perm])
    np.testing.assert_allclose(by_annotator.prototypes_, ref.prototypes_, atol=1e-8)
    np.testing.assert_allclose(by_annotator.class_prior_, ref.class_prior_, atol=1e-8)
    np.testing.assert_allclose(
        by_annotator.annotator_confusion_,
        ref.annotator_confusion_[annot_perm],
        atol=1e-8,
    )
    np.testing.assert_allclose(
        by_annotator.sample_posterior_, ref.sample_posterior_, atol=1e-8
    )
    by_item = clone(em).fit(X[item_perm], Y[item_perm])
    np.testing.assert_allclose(by_item.prototypes_, ref.prototypes_, atol=1e-8)
    np.testing.assert_allclose(
        by_item.annotator_confusion_, ref.annotator_confusion_, atol=1e-8
    )
    np.testing.assert_allclose(
        by_item.sample_posterior_, ref.sample_posterior_[item_perm], atol=1e-8
    )
    np.testing.assert_allclose(
        by_item.predict_proba(X), ref.predict_proba(X), atol=1e-8
    )


@SETTINGS
@given(tasks(), st.permutations(["zebra", "ant", "moth"]))
def test_renaming_classes_renames_the_output(task, names):
    X, Y, _, _, n_classes = task
    names = np.array(names[:n_classes], dtype=object)
    Y_named = np.full(Y.shape, None, dtype=object)
    labelled = ~np.isnan(Y)
    Y_named[labelled] = names[Y[labelled].astype(int)]
    ref = MetaAnnotatorClassifier().fit(X, Y)
    renamed = MetaAnnotatorClassifier().fit(X, Y_named)
    np.testing.assert_array_equal(renamed.predict(X), names[ref.predict(X)])
    # classes_ are sorted names: columns follow them
    order = [list(names).index(c) for c in renamed.classes_]
    np.testing.assert_allclose(
        renamed.predict_proba(X), ref.predict_proba(X)[:, order], atol=1e-8
    )


# -- random bad input -------------------------------------------------------


@SETTINGS
@given(tasks(), st.sampled_from([np.nan, np.inf, -np.inf]), st.data())
def test_non_finite_X_is_rejected_naming_X(task, bad, data):
    X, Y, _, _, _ = task
    i = data.draw(st.integers(0, X.shape[0] - 1))
    j = data.draw(st.integers(0, X.shape[1] - 1))
    X_bad = X.copy()
    X_bad[i, j] = bad
    with pytest.raises(ValueError, match="Input X contains (NaN|infinity)"):
        MetaAnnotatorClassifier().fit(X_bad, Y)
    clf = MetaAnnotatorClassifier().fit(X, Y)
    with pytest.raises(ValueError, match="Input X contains (NaN|infinity)"):
        clf.predict(X_bad)
    y_source = np.arange(len(X)) % 3
    with pytest.raises(ValueError, match="Input X_source contains|Input X contains"):
        MetaAnnotatorClassifier(meta_learner=MetaLearner(n_way=2)).meta_fit(
            X_bad, y_source
        )


@SETTINGS
@given(tasks(), st.data())
def test_bad_Y_is_rejected_naming_Y(task, data):
    X, Y, _, _, n_classes = task
    n = len(X)
    kind = data.draw(
        st.sampled_from(["ragged", "rows", "3d", "empty", "one_class", "outside"])
    )
    kwargs = {}
    if kind == "ragged":
        Y_bad = [list(row) for row in Y]
        Y_bad[data.draw(st.integers(0, n - 1))].append(0.0)
        match = "Y must be"
    elif kind == "rows":
        Y_bad = Y[: data.draw(st.integers(0, n - 1))]
        match = "Y has .* samples but X has"
    elif kind == "3d":
        Y_bad = Y[:, :, None]
        match = "Y must be 1-D .* or 2-D"
    elif kind == "empty":
        Y_bad = np.full(Y.shape, np.nan)
        match = "Y has no label at all"
    elif kind == "one_class":
        Y_bad = np.where(np.isnan(Y), np.nan, 1.0)
        match = "Y holds labels of one class only"
    else:
        Y_bad = Y
        kwargs["classes"] = list(range(n_classes - 1)) + [99]
        match = "Y contains .* not in classes"
    with pytest.raises(ValueError, match=match):
        MetaAnnotatorClassifier().fit(X, Y_bad, **kwargs)


@SETTINGS
@given(st.integers(0, 3), st.integers(1, 4))
def test_zero_samples_and_bad_shapes_name_the_argument(n_features, n_annotators):
    X = np.empty((0, n_features))
    with pytest.raises(ValueError, match="0 sample"):
        MetaAnnotatorClassifier().fit(X, np.empty((0, n_annotators)))
    with pytest.raises(ValueError, match="0 sample"):
        MetaAnnotatorClassifier().meta_fit(X, np.empty(0))
    X = np.ones((6, max(n_features, 1)))
    with pytest.raises(ValueError, match="y_source must be 1-D"):
        MetaAnnotatorClassifier().meta_fit(X, np.zeros((6, 2)))
    with pytest.raises(ValueError, match="X_source and y_source have different"):
        MetaAnnotatorClassifier().meta_fit(X, np.arange(5))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = MetaAnnotatorClassifier().fit(X + np.arange(6)[:, None], np.arange(6) % 2)
    with pytest.raises(ValueError, match="X has .* features"):
        clf.predict(np.ones((2, X.shape[1] + 1)))


@SETTINGS
@given(tasks(), st.data())
def test_bad_weights_are_rejected_naming_the_argument(task, data):
    X, Y, _, _, _ = task
    clf = MetaAnnotatorClassifier().fit(X, Y)
    n = len(X)
    y = np.arange(n) % 2
    kind = data.draw(st.sampled_from(["negative", "length", "nonfinite", "zero"]))
    w = np.ones(n)
    if kind == "negative":
        w[data.draw(st.integers(0, n - 1))] = -data.draw(st.floats(1e-6, 1e6))
    elif kind == "length":
        w = np.ones(n + data.draw(st.sampled_from([-1, 1])))
    elif kind == "nonfinite":
        bad = data.draw(st.sampled_from([np.nan, np.inf]))
        w[data.draw(st.integers(0, n - 1))] = bad
    else:
        w = np.zeros(n)
    for reference in (y, Y):  # true labels, and a crowd's majority vote
        with pytest.raises(ValueError, match="sample_weight must"):
            clf.score(X, reference, sample_weight=w)
    mixture = data.draw(
        st.lists(st.floats(-1.0, 1.0), min_size=3, max_size=3).filter(
            lambda m: min(m) < 0
        )
    )
    with pytest.raises(ValueError, match="annotator_mixture"):
        MetaAnnotatorClassifier(
            meta_learner=MetaLearner(n_way=2, annotator_mixture=tuple(mixture))
        ).meta_fit(X, np.arange(n) % 3)
