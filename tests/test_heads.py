"""The linear head: a class-probability model that grows with the data (issue 29)."""
# SPDX-License-Identifier: BSD-3-Clause

import numpy as np
import pytest
from sklearn.base import clone

from sklearn_metaannot import (
    DawidSkene,
    MetaAnnotatorClassifier,
    load,
    save,
    simulate_annotators,
)

K, M = 3, 6


def _elongated_task(n, seed=0):
    """Classes sharing one covariance with a direction of large variance that
    carries no class information: nearest prototype fails, a linear rule
    (LDA, logistic regression) does not."""
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(M, M))
    A[:, 0] *= 6.0
    means = 1.5 * rng.normal(size=(K, M))
    means[:, 0] = 0.0

    def draw(size):
        y = rng.integers(0, K, size)
        return means[y] + rng.normal(size=(size, M)) @ A.T, y

    return draw(n), draw(2000)


@pytest.fixture(scope="module")
def task():
    (X, y), (X_test, y_test) = _elongated_task(300)
    Y, _, _ = simulate_annotators(y, 3, random_state=0)
    return X, Y, y, X_test, y_test


def test_linear_head_learns_what_prototypes_cannot(task):
    X, Y, y, X_test, y_test = task
    proto = MetaAnnotatorClassifier(representation="input", head="prototype")
    proto.fit(X, Y)
    linear = MetaAnnotatorClassifier(representation="input", head="linear").fit(X, Y)
    assert proto.score(X_test, y_test) < 0.75
    assert linear.score(X_test, y_test) > proto.score(X_test, y_test) + 0.15
    # truth inference no worse than the labels alone
    ds = DawidSkene().fit(Y)
    inferred = linear.classes_[linear.sample_posterior_.argmax(axis=1)]
    assert np.mean(inferred == y) >= np.mean(ds.labels_ == y)
    assert linear.coef_.shape == (K, M) and linear.intercept_.shape == (K,)
    assert not hasattr(proto, "coef_")


def test_a_strong_pull_keeps_the_prototype_model(task):
    X, Y, _, X_test, _ = task
    fixed = {"representation": "input"}  # named heads: untempered
    proto = MetaAnnotatorClassifier(head="prototype", **fixed).fit(X, Y)
    pulled = MetaAnnotatorClassifier(head="linear", head_penalty=1e7, **fixed)
    pulled.fit(X, Y)
    np.testing.assert_allclose(
        pulled.predict_proba(X_test), proto.predict_proba(X_test), atol=1e-3
    )
    # and the head is the prototype model written as a linear rule
    np.testing.assert_allclose(pulled.coef_, proto.prototypes_, atol=1e-3)


def test_linear_head_keeps_what_fit_supports(task, tmp_path):
    X, Y, y, X_test, _ = task
    gold = np.full(len(y), np.nan)
    gold[:30] = y[:30]
    unlabelled = np.vstack([Y, np.full((50, Y.shape[1]), np.nan)])
    X_more = np.vstack([X, X_test[:50]])
    clf = MetaAnnotatorClassifier(representation="input", head="linear")
    clf.fit(X_more, unlabelled, y_gold=np.concatenate([gold, np.full(50, np.nan)]))
    # gold items keep their labels; unlabelled items get a posterior too
    np.testing.assert_array_equal(clf.sample_posterior_[:30].argmax(axis=1), y[:30])
    assert np.allclose(clf.sample_posterior_.sum(axis=1), 1.0)
    assert list(clf.annotator_report().index) == [0, 1, 2]
    # a class nobody named is kept
    four = clone(clf).fit(X, Y, classes=[0, 1, 2, 3])
    assert four.predict_proba(X_test).shape == (len(X_test), 4)
    # annotator history from a linear model
    nxt = clone(clf).fit(X, Y, annotator_prior=clf)
    assert nxt.annotator_has_history_.all()
    # saved and loaded without loss
    loaded = load(save(clf, tmp_path / "linear.zip"))
    np.testing.assert_array_equal(
        loaded.predict_proba(X_test), clf.predict_proba(X_test)
    )
    # a refit with the prototype model drops the head
    assert not hasattr(clf.set_params(head="prototype").fit(X, Y), "coef_")


def test_auto_head_chooses_from_held_out_crowd_labels(task):
    X, Y, y, X_test, y_test = task
    auto = MetaAnnotatorClassifier(representation="input", head="auto", random_state=0)
    auto.fit(X, Y)
    # where the prototypes fail, the crowd's held-out labels say so
    assert auto.head_ in ("linear", "mlp")
    assert auto.head_scores_[auto.head_] > auto.head_scores_["prototype"]
    assert auto.score(X_test, y_test) > 0.85
    # on round classes with few items the paper's model stays
    rng = np.random.default_rng(1)
    y_round = np.repeat(np.arange(K), 4)
    X_round = rng.normal(size=(len(y_round), M)) + 4.0 * np.eye(K, M)[y_round]
    Y_round, _, _ = simulate_annotators(y_round, 3, random_state=1)
    small = clone(auto).fit(X_round, Y_round)
    assert small.head_ == "prototype" and not hasattr(small, "coef_")
    one = clone(auto).fit(X_round[::4], Y_round[::4])  # one item per class
    assert one.head_ == "prototype" and np.isnan(one.head_scores_["linear"])


def _blurred_task(seed=0):
    """Six classes of three clusters each in 60 dimensions, most of them noise
    (the issue's make_classification case, smaller): a unit-variance prototype
    model of these features is overconfident."""
    from sklearn.datasets import make_classification

    X, y = make_classification(
        n_samples=1200,
        n_features=60,
        n_informative=12,
        n_redundant=12,
        n_classes=6,
        n_clusters_per_class=3,
        class_sep=1.5,
        random_state=seed,
    )
    Y, _, _ = simulate_annotators(y[:600], 5, random_state=seed)
    return X[:600], Y, y[:600], X[600:], y[600:]


def test_feature_weight_lets_the_labels_speak_in_the_posteriors():
    X, Y, y, X_test, _ = _blurred_task()
    kw = {"representation": "normalized", "random_state": 0}
    paper = MetaAnnotatorClassifier(head="prototype", **kw).fit(X, Y)
    auto = MetaAnnotatorClassifier(**kw).fit(X, Y)  # head="auto"
    ds = DawidSkene().fit(Y)

    def truth(clf):
        return np.mean(clf.classes_[clf.sample_posterior_.argmax(axis=1)] == y)

    # a named head is fitted as it is; "auto" tempers the features by the
    # held-out crowd labels, and the posteriors recover
    assert paper.feature_weight_ == 1.0 and paper.feature_weight_scores_ == {}
    assert auto.feature_weight_ <= 0.5
    best = max(auto.feature_weight_scores_, key=auto.feature_weight_scores_.get)
    assert float(best) == pytest.approx(auto.feature_weight_, rel=1e-3)  # calibrated
    assert truth(paper) < np.mean(ds.labels_ == y) - 0.1
    assert truth(auto) > truth(paper) + 0.05
    # the annotators' statistics follow the tempered posteriors
    np.testing.assert_allclose(
        auto.annotator_counts_.sum(axis=(1, 2)), auto.annotator_n_labels_
    )


def _prototype_task_inputs():
    """``fit_task``'s inputs for :func:`_blurred_task` in standardised features:
    embeddings, label triplets, number of annotators, prototype EM settings."""
    import torch

    X, Y, *_ = _blurred_task()
    U = torch.as_tensor((X - X.mean(0)) / X.std(0))
    rows, cols = np.nonzero(~np.isnan(Y))
    triplets = [torch.as_tensor(a) for a in (rows, cols, Y[rows, cols].astype(int))]
    kw = {"head": "prototype", "n_iter": 3, "tau": 0.0, "b": 10.0, "c": (2.0, 1.0)}
    return U, triplets, Y.shape[1], kw


def test_feature_weight_tempering_keeps_the_model_of_the_classes():
    """At a feature weight w < 1 the class model is unchanged (same predicted
    classes), its probabilities are those at weight 1 to the power w, and the
    posteriors move towards the labels."""
    import torch

    from sklearn_metaannot.em._heads import fit_task

    U, triplets, n_annotators, kw = _prototype_task_inputs()
    one = fit_task(U, *triplets, 6, n_annotators, feature_weight=1.0, **kw)
    low = fit_task(U, *triplets, 6, n_annotators, feature_weight=0.25, **kw)
    np.testing.assert_array_equal(one.mu.numpy(), low.mu.numpy())
    p, q = one.log_proba(U[:5]).exp(), low.log_proba(U[:5]).exp()
    tempered = p**0.25
    torch.testing.assert_close(q, tempered / tempered.sum(-1, keepdim=True))
    assert not torch.allclose(one.lam, low.lam)


def test_feature_weight_on_uninformative_features_leaves_the_labels_alone():
    """Features that say nothing of the class get a weight near 0, and the
    posteriors are then those of the labels alone: the re-estimation also runs
    from the vote, as Dawid-Skene (from the untempered features' posteriors
    alone it settled 5 points below Dawid-Skene on these tasks)."""
    gaps = []
    for seed in range(6):
        rng = np.random.default_rng(seed)
        y = np.repeat(np.arange(6), 10)
        X = rng.normal(size=(60, 100))
        Y, _, _ = simulate_annotators(y, 5, random_state=seed)
        clf = MetaAnnotatorClassifier(representation="input", random_state=0)
        clf.fit(X, Y)
        assert clf.feature_weight_ < 0.1
        inferred = clf.classes_[clf.sample_posterior_.argmax(axis=1)]
        gaps.append(np.mean(inferred == y) - np.mean(DawidSkene().fit(Y).labels_ == y))
    assert np.mean(gaps) >= -0.01


def test_tempered_posteriors_use_the_held_out_prediction():
    """Where ``held_out_log_proba`` gives an item's out-of-fold prediction, the
    tempered posteriors weigh that prediction, not the fitted model's own."""
    import torch

    from sklearn_metaannot.em._heads import fit_task

    U, triplets, n_annotators, kw = _prototype_task_inputs()
    own = fit_task(U, *triplets, 6, n_annotators, feature_weight=0.5, **kw)
    # an out-of-fold prediction for the first 100 items, sure of class 0
    held_out = np.full((100, 6), -60.0)
    held_out[:, 0] = 0.0
    moved = fit_task(
        U,
        *triplets,
        6,
        n_annotators,
        feature_weight=0.5,
        held_out_log_proba=held_out,
        **kw,
    )
    assert (moved.lam[:100].argmax(dim=1) == 0).all()
    assert not (own.lam[:100].argmax(dim=1) == 0).all()
    torch.testing.assert_close(moved.mu, own.mu)  # the class model is the same


def test_default_model_is_chosen_per_task_and_recorded():
    X, Y, y, X_test, y_test = _blurred_task()
    clf = MetaAnnotatorClassifier(random_state=0).fit(X, Y)
    assert clf.get_params()["head"] == "auto"
    assert set(clf.head_scores_) == {"prototype", "linear", "mlp"}
    assert clf.head_ == max(clf.head_scores_, key=clf.head_scores_.get)
    assert 0 < clf.feature_weight_ <= 1
    # truth inference at least as good as the labels alone (issue 29, item 2)
    ds = DawidSkene().fit(Y)
    inferred = clf.classes_[clf.sample_posterior_.argmax(axis=1)]
    assert np.mean(inferred == y) >= np.mean(ds.labels_ == y) - 0.01
    # one item per class: the paper's model, nothing checked
    one = np.concatenate([np.flatnonzero(y == k)[:1] for k in range(6)])
    small = clone(clf).fit(X[one], Y[one])
    assert (small.head_, small.feature_weight_) == ("prototype", 1.0)
    assert all(np.isnan(v) for v in small.feature_weight_scores_.values())


def test_mlp_head_learns_what_a_linear_rule_cannot(tmp_path):
    # XOR of two features: no linear rule separates the classes
    rng = np.random.default_rng(0)

    def draw(n):
        Z = rng.choice([-2.0, 2.0], size=(n, 2))
        X = np.hstack([Z + 0.5 * rng.normal(size=(n, 2)), rng.normal(size=(n, 2))])
        return X, (Z[:, 0] * Z[:, 1] > 0).astype(int)

    (X, y), (X_test, y_test) = draw(400), draw(1000)
    Y, _, _ = simulate_annotators(y, 3, random_state=0)
    kw = {"representation": "input", "random_state": 0}
    linear = MetaAnnotatorClassifier(head="linear", **kw).fit(X, Y)
    mlp = MetaAnnotatorClassifier(head="mlp", **kw).fit(X, Y)
    assert linear.score(X_test, y_test) < 0.7
    assert mlp.score(X_test, y_test) > 0.9
    assert mlp.hidden_coef_.shape == (64, 4) and mlp.hidden_out_.shape == (2, 64)
    # the automatic choice finds it from the crowd labels alone
    auto = MetaAnnotatorClassifier(**kw).fit(X, Y)
    assert auto.head_ == "mlp" and auto.score(X_test, y_test) > 0.9
    # saved and loaded; a refit with another head drops the hidden layer
    loaded = load(save(mlp, tmp_path / "mlp.zip"))
    np.testing.assert_array_equal(
        loaded.predict_proba(X_test), mlp.predict_proba(X_test)
    )
    assert not hasattr(mlp.set_params(head="linear").fit(X, Y), "hidden_out_")


def test_mlp_m_step_gradient_is_the_gradient_of_its_objective():
    """The MLP head's M-step gradient, written out, equals autograd's."""
    import torch

    from sklearn_metaannot.em._heads import _mlp_loss_and_grad

    g = torch.Generator().manual_seed(0)

    def draw(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    U, lam = draw(40, 5), torch.softmax(3 * draw(40, 3), dim=1)
    theta0 = (draw(3, 5), draw(3))
    params = [draw(3, 5), draw(3), draw(8, 5), draw(8), draw(3, 8)]
    loss, grads = _mlp_loss_and_grad(U, lam, params, theta0, penalty=2.0, alpha=0.5)
    leaves = [p.clone().requires_grad_(True) for p in params]
    auto_loss, _ = _mlp_loss_and_grad(U, lam, leaves, theta0, penalty=2.0, alpha=0.5)
    auto = torch.autograd.grad(auto_loss, leaves)
    torch.testing.assert_close(loss, auto_loss.detach())
    for mine, theirs in zip(grads, auto):
        torch.testing.assert_close(mine, theirs)
