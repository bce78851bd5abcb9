"""Meta-training and adaptation as two objects (issue 28)."""
# SPDX-License-Identifier: BSD-3-Clause

import pickle
import warnings

import numpy as np
import pytest
from _factories import small_meta_classifier
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold

from sklearn_metaannot import (
    DawidSkene,
    MetaAnnotatorClassifier,
    MetaLearningWarning,
    simulate_annotators,
)
from sklearn_metaannot.meta._learner import MetaLearner as _MetaLearner

pd = pytest.importorskip("pandas")


def _source_and_task(seed=0):
    rng = np.random.default_rng(seed)
    y_source = np.repeat(np.arange(9), 15)
    X_source = rng.normal(size=(135, 4)) + 3.0 * np.eye(9, 4)[y_source]
    y = np.repeat([0, 1, 2], 8)
    X = rng.normal(size=(24, 4)) + 3.0 * np.eye(3, 4)[y]
    Y, _, _ = simulate_annotators(y, 3, random_state=seed)
    return X_source, y_source, X, Y, y


@pytest.fixture(scope="module")
def meta_fitted():
    X_source, y_source, X, Y, y = _source_and_task()
    clf = small_meta_classifier()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetaLearningWarning)
        clf.meta_fit(X_source, y_source)
    return clf, X, Y, y


@pytest.fixture
def count_meta_training(monkeypatch):
    calls = []
    fit = _MetaLearner.fit

    def counting(self, *args, **kwargs):
        calls.append(self.get_params())
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(_MetaLearner, "fit", counting)
    return calls


def test_the_classifier_does_not_override_clone():
    # (its parameter list is checked in test_estimator_checks.py)
    assert "__sklearn_clone__" not in vars(MetaAnnotatorClassifier)


def test_clone_is_unfitted_and_keeps_the_frozen_encoder(meta_fitted):
    clf, X, Y, _ = meta_fitted
    fitted = clone(clf).fit(X, Y)
    again = clone(fitted)
    assert not hasattr(again, "classes_")
    assert again.meta_encoder is clf.meta_encoder
    assert again.meta_learner is not clf.meta_learner  # the recipe is cloned
    np.testing.assert_array_equal(
        again.fit(X, Y).predict_proba(X), fitted.predict_proba(X)
    )


def test_a_standalone_learner_gives_the_same_encoder_as_meta_fit(meta_fitted):
    clf, X, Y, _ = meta_fitted
    X_source, y_source, *_ = _source_and_task()
    learner = clone(clf.meta_learner).set_params(random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetaLearningWarning)
        encoder = learner.fit(
            X_source, y_source, em_params=clf._em_params()
        ).meta_encoder_
    plain = MetaAnnotatorClassifier(meta_encoder=encoder, random_state=0)
    np.testing.assert_allclose(
        plain.fit(X, Y).predict_proba(X), clone(clf).fit(X, Y).predict_proba(X)
    )


def test_search_over_em_parameters_never_meta_trains(meta_fitted, count_meta_training):
    clf, X, Y, _ = meta_fitted
    grid = GridSearchCV(
        clf,
        {"n_em_iter": [1, 3], "b": [1.0, 10.0]},
        cv=KFold(2, shuffle=True, random_state=0),
    ).fit(X, Y)
    assert count_meta_training == []
    assert grid.best_estimator_.encoder_ is clf.meta_encoder


def test_search_over_meta_training_parameters_meta_trains_again(
    meta_fitted, count_meta_training
):
    clf, X, Y, _ = meta_fitted
    grid = GridSearchCV(
        clf,
        {"meta_learner__lr": [clf.meta_learner.lr, 0.05]},
        cv=KFold(2, shuffle=True, random_state=0),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetaLearningWarning)
        grid.fit(X, Y)
    # the original recipe reuses the encoder; the other one meta-trains per fold
    assert [c["lr"] for c in count_meta_training] == [0.05, 0.05] + (
        [0.05] if grid.best_params_["meta_learner__lr"] == 0.05 else []
    )
    other = clone(clf).set_params(meta_learner__lr=0.05)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetaLearningWarning)
        other.fit(X, Y)
    assert other.encoder_ is not clf.meta_encoder
    assert other.encoder_.recipe == other._learner().recipe() != clf.meta_encoder.recipe
    # runtime parameters do not change the recipe, nor does the seed that an
    # unseeded learner takes from the classifier: no meta-training again
    calls = len(count_meta_training)
    clone(clf).set_params(meta_learner__verbose=1, meta_learner__n_threads=1).fit(X, Y)
    clone(clf).set_params(random_state=5).fit(X, Y)
    assert len(count_meta_training) == calls
    # another learner class is another recipe

    class Variant(type(clf.meta_learner)):
        pass

    variant = Variant(**clf.meta_learner.get_params())
    assert variant.recipe() != clf.meta_learner.recipe()


def test_a_changed_recipe_without_the_source_is_a_clear_error(meta_fitted):
    clf, X, Y, _ = meta_fitted
    restored = pickle.loads(pickle.dumps(clf))
    assert restored.meta_encoder.source is None  # never pickled
    restored.fit(X, Y)  # the same recipe: fine
    with pytest.raises(ValueError, match="call meta_fit again"):
        restored.set_params(meta_learner__lr=0.05).fit(X, Y)


def test_callbacks_reach_meta_training_as_given():
    from skorch.callbacks import Callback

    class Recorder(Callback):
        def __init__(self):
            self.epochs = 0

        def on_epoch_end(self, net, **kwargs):
            self.epochs += 1

    recorder = Recorder()
    X_source, y_source, *_ = _source_and_task()
    clf = small_meta_classifier(callbacks=[recorder])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetaLearningWarning)
        clf.meta_fit(X_source, y_source)
    assert recorder.epochs == len(clf.meta_history_) == 2


def test_meta_learning_warning_points_at_the_callers_line():
    X_source, y_source, *_ = _source_and_task()
    clf = small_meta_classifier(validation_classes=0.0)
    with pytest.warns(MetaLearningWarning) as caught:
        clf.meta_fit(X_source, y_source)
    assert {w.filename for w in caught} == {__file__}


def test_fit_reads_a_long_table_against_a_task_indexed_X():
    _, _, X, Y, y = _source_and_task()
    tasks = np.array([f"t{i:02d}" for i in range(len(X))])
    rows, cols = np.nonzero(~np.isnan(Y))
    long = pd.DataFrame(
        {"task": tasks[rows], "worker": [f"w{c}" for c in cols], "label": Y[rows, cols]}
    ).sample(frac=1.0, random_state=0)  # any row order
    order = np.random.default_rng(0).permutation(len(X))
    X_df = pd.DataFrame(X[order], index=tasks[order])
    from_table = MetaAnnotatorClassifier().fit(X_df, long)
    from_dense = MetaAnnotatorClassifier().fit(
        X[order], pd.DataFrame(Y[order], columns=["w0", "w1", "w2"])
    )
    np.testing.assert_allclose(
        from_table.sample_posterior_, from_dense.sample_posterior_, atol=1e-12
    )
    assert sorted(from_table.annotators_.tolist()) == ["w0", "w1", "w2"]
    with pytest.raises(ValueError, match="DataFrame indexed by task"):
        MetaAnnotatorClassifier().fit(X, long)
    with pytest.raises(ValueError, match="X's index lacks.*'t23'"):
        MetaAnnotatorClassifier().fit(X_df.drop(index="t23"), long)


def test_representation_choice_explains_the_decision(meta_fitted):
    clf, X, Y, _ = meta_fitted
    forced = clone(clf).set_params(representation="scaled").fit(X, Y)
    assert forced.representation_choice_.reason == "forced"
    auto = clone(clf).fit(X, Y)
    choice = auto.representation_choice_
    assert choice.space == auto.representation_
    assert choice.default == clf.meta_selected_
    assert choice.reason in ("default held", "held-out crowd labels")
    assert (choice.space == choice.default) == (choice.reason == "default held")
    assert set(choice.candidates) <= set(choice.scores)
    one_shot = clone(clf).fit(X[[0, 8, 16]], Y[[0, 8, 16]])
    assert one_shot.representation_choice_.reason == "too few labelled items"


def test_classifier_and_dawid_skene_share_the_em_statistics():
    _, _, X, Y, _ = _source_and_task()
    clf = MetaAnnotatorClassifier().fit(X, Y)
    ds = DawidSkene(smoothing=0.0, n_iter=500, tol=1e-12).fit(Y)
    from sklearn_metaannot import CrowdLabelMatrix

    labels = CrowdLabelMatrix.from_any(Y)
    np.testing.assert_allclose(
        clf.annotator_counts_, labels.expected_counts(clf.sample_posterior_)
    )
    # at DawidSkene's fixed point its confusions are these counts, normalised
    counts = labels.expected_counts(ds.probas_)
    np.testing.assert_allclose(
        counts / counts.sum(axis=2, keepdims=True), ds.confusions_, atol=1e-6
    )
    n_labels, accuracy = labels.label_accuracy(clf.sample_posterior_)
    np.testing.assert_array_equal(n_labels, clf.annotator_n_labels_)
    np.testing.assert_allclose(accuracy, clf.annotator_accuracy_)
