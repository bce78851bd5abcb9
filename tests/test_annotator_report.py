"""MetaAnnotatorClassifier.annotator_report: who labels well, per annotator id."""
# SPDX-License-Identifier: BSD-3-Clause

from pathlib import Path

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from sklearn_metaannot import (
    CrowdLabelMatrix,
    MetaAnnotatorClassifier,
    simulate_annotators,
)

pd = pytest.importorskip("pandas")


@pytest.fixture(scope="module")
def crowd():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 40)
    X = rng.normal(size=(120, 4)) + 2.5 * np.eye(3, 4)[y]
    Y, confusion, _ = simulate_annotators(y, 8, annotation_rate=0.7, random_state=1)
    return X, Y, y, confusion


@pytest.fixture(scope="module")
def fitted(crowd):
    """The default model fitted on ``crowd`` (report() leaves it as it is)."""
    X, Y, _, _ = crowd
    return MetaAnnotatorClassifier().fit(X, Y)


def test_report_estimates_annotator_accuracy(crowd, fitted):
    _, Y, y, _ = crowd
    report = fitted.annotator_report()
    assert list(report.columns) == [
        "accuracy",
        "prior_weighted_accuracy",
        "n_labels",
        "recall_0",
        "recall_1",
        "recall_2",
    ]
    assert report.index.tolist() == list(range(8))
    labelled = ~np.isnan(Y)
    assert report["n_labels"].tolist() == labelled.sum(axis=0).tolist()
    true_accuracy = [(Y[m, r] == y[m]).mean() for r, m in enumerate(labelled.T)]
    # close to the truth, and ranks the annotators almost as the truth does
    for column in ("accuracy", "prior_weighted_accuracy"):
        assert np.abs(report[column] - true_accuracy).max() < 0.15, column
        assert np.corrcoef(report[column], true_accuracy)[0, 1] > 0.9, column


def test_report_rows_are_consistent_with_the_confusion_matrices(crowd, fitted):
    _, Y, _, _ = crowd
    clf = fitted
    report = clf.annotator_report()
    diag = np.diagonal(clf.annotator_confusion_, axis1=1, axis2=2)
    np.testing.assert_allclose(report.filter(like="recall_").to_numpy(), diag)
    np.testing.assert_allclose(
        report["prior_weighted_accuracy"], diag @ clf.class_prior_
    )
    # accuracy: mean posterior probability of the labels each annotator gave
    codes = np.where(np.isnan(Y), -1, Y).astype(int)
    for r in range(Y.shape[1]):
        given = codes[:, r] >= 0
        expected = clf.sample_posterior_[given, codes[given, r]].mean()
        assert report["accuracy"].iloc[r] == pytest.approx(expected)


def test_report_keeps_the_annotator_ids_of_a_crowd_label_matrix():
    X = np.array([[0.0], [0.2], [3.0], [3.2], [0.1], [3.1]])
    Y = CrowdLabelMatrix.from_triplets(
        [0, 0, 1, 2, 2, 3, 4, 4, 5, 5],
        ["ann", "bob", "ann", "ann", "bob", "ann", "ann", "bob", "ann", "bob"],
        ["cat", "cat", "cat", "dog", "dog", "dog", "cat", "dog", "dog", "cat"],
    )
    clf = MetaAnnotatorClassifier().fit(X, Y)
    report = clf.annotator_report()
    assert clf.annotators_.tolist() == ["ann", "bob"]
    assert report.index.name == "annotator"
    assert report.loc["ann", "n_labels"] == 6 and report.loc["bob", "n_labels"] == 4
    assert report.loc["ann", "accuracy"] > report.loc["bob", "accuracy"]
    assert list(report.columns[3:]) == ["recall_cat", "recall_dog"]


def test_report_uses_dataframe_column_names(crowd):
    X, Y, _, _ = crowd
    Y_df = pd.DataFrame(Y, columns=[f"w{r}" for r in range(Y.shape[1])])
    report = MetaAnnotatorClassifier().fit(X, Y_df).annotator_report()
    assert report.index.tolist() == [f"w{r}" for r in range(8)]


def test_report_needs_fit():
    with pytest.raises(NotFittedError):
        MetaAnnotatorClassifier().annotator_report()


LABELME = Path(__file__).resolve().parents[2] / "shared" / "data" / "labelme"


@pytest.mark.skipif(
    not (LABELME / "answers.txt").is_file(),
    reason=f"LabelMe files not found in {LABELME} (the shared data folder next to "
    "the repository)",
)
def test_report_ranks_real_annotators_on_labelme():
    from sklearn.decomposition import PCA

    from sklearn_metaannot.datasets import load_labelme

    data = load_labelme(LABELME)
    X = PCA(32, random_state=0).fit_transform(data.X_train)
    report = MetaAnnotatorClassifier(n_em_iter=10).fit(X, data.crowd_train)
    report = report.annotator_report()
    answers, y = data.answers, data.y_train
    labelled = answers >= 0
    true = np.array([(a[m] == y[m]).mean() for a, m in zip(answers.T, labelled.T)])
    busy = labelled.sum(axis=0) >= 20  # accuracies of a few labels are noise
    assert busy.sum() >= 30
    # measured: correlation 0.73 (37 annotators with >= 20 labels), mean absolute
    # error 0.11 over all 59 annotators
    assert np.corrcoef(report["accuracy"][busy], true[busy])[0, 1] > 0.6
    assert np.abs(report["accuracy"] - true).mean() < 0.15
