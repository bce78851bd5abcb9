"""Tests of representation="auto": a latent space chosen per task from crowd labels."""
# SPDX-License-Identifier: BSD-3-Clause

import numpy as np
import pytest
import torch
from sklearn.model_selection import GridSearchCV, KFold

from sklearn_metaannot import (
    MetaAnnotatorClassifier,
    MetaEncoder,
    crowd_agreement_score,
    simulate_annotators,
)
from sklearn_metaannot.adapt._representation import (
    INPUT_SPACES,
    MIN_Z,
    choose_representation,
    held_out_agreement,
)


def _task(n_per_class, n_classes=4, seed=0, n_signal=2, n_noise=10, noise_sd=3.0):
    """Classes separated in ``n_signal`` features, next to loud nuisance features."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(n_classes), n_per_class)
    centres = 3.0 * rng.normal(size=(n_classes, n_signal))
    signal = centres[y] + 0.5 * rng.normal(size=(len(y), n_signal))
    noise = noise_sd * rng.normal(size=(len(y), n_noise))
    return np.hstack([signal, noise]), y


def _with_encoder(columns, n_features, weight, meta_selected):
    """An estimator "meta-fitted" with a fixed linear encoder keeping ``columns``."""
    module = torch.nn.Linear(n_features, len(columns), bias=False)
    with torch.no_grad():
        module.weight.zero_()
        module.weight[np.arange(len(columns)), columns] = weight
    encoder = MetaEncoder(module, 0.0, 1.0, n_features, selected=meta_selected)
    return MetaAnnotatorClassifier(meta_encoder=encoder, random_state=0)


def _crowd(y, seed):
    Y, _, _ = simulate_annotators(
        y, 5, mixture={"hammer": 0.7, "spammer": 0.3}, random_state=seed
    )
    return Y


def test_auto_chooses_the_input_features_when_the_embedding_is_worse():
    # the "meta-learned" encoder keeps only nuisance features, and meta_fit's
    # validation had (wrongly) preferred it: the crowd labels must overrule it
    X, y = _task(6, seed=1)
    Xq, yq = _task(50, seed=1)
    Y = _crowd(y, seed=1)
    clf = _with_encoder([5, 6, 7], X.shape[1], 1.0, meta_selected="meta").fit(X, Y)
    assert clf.representation_ != "meta"
    scores = clf.representation_scores_
    assert set(scores) == {*INPUT_SPACES, "meta"}
    assert scores["meta"] < min(scores[name] for name in INPUT_SPACES)
    forced = _with_encoder([5, 6, 7], X.shape[1], 1.0, "meta")
    forced.set_params(representation="meta").fit(X, Y)
    assert clf.score(Xq, yq) > forced.score(Xq, yq) + 0.2


def test_auto_chooses_the_embedding_when_it_is_better():
    # the encoder keeps the two informative features (nothing validated it:
    # meta_selected_ is "input"), the input spaces drown them in noise
    X, y = _task(6, seed=2, n_noise=30)
    Xq, yq = _task(50, seed=2, n_noise=30)
    Y = _crowd(y, seed=2)
    clf = _with_encoder([0, 1], X.shape[1], 1.0, meta_selected="input").fit(X, Y)
    assert clf.representation_ == "meta"
    plain = MetaAnnotatorClassifier(representation="input").fit(X, Y)
    assert clf.score(Xq, yq) > plain.score(Xq, yq) + 0.1


def test_auto_keeps_the_validated_default_on_one_shot_tasks():
    # one item per class: held-out labels say nothing, the default stands
    X, y = _task(1, seed=3)
    Y = _crowd(y, seed=3)
    clf = _with_encoder([5, 6, 7], X.shape[1], 1.0, meta_selected="meta").fit(X, Y)
    assert clf.representation_ == "meta"
    assert all(np.isnan(v) for v in clf.representation_scores_.values())
    assert MetaAnnotatorClassifier().fit(X, Y).representation_ == "input"


def test_explicit_representations_skip_the_choice():
    X, y = _task(5)
    Y = _crowd(y, seed=0)
    for name in INPUT_SPACES:
        clf = MetaAnnotatorClassifier(representation=name).fit(X, Y)
        assert clf.representation_ == name and clf.representation_scores_ == {}
    with pytest.raises(ValueError, match="meta_fit first"):
        MetaAnnotatorClassifier(representation="meta").fit(X, Y)


def test_held_out_agreement_is_paired_and_cannot_see_its_hidden_labels():
    X, y = _task(5, seed=4)
    X = X[:, :2]  # the informative features
    codes = np.where(np.isnan(_crowd(y, 4)), -1, _crowd(y, 4)).astype(int)
    kw = {"n_iter": 3, "b": 10.0, "c": (2.0, 1.0), "n_folds": 5}
    a = held_out_agreement(X, codes, 4, random_state=0, **kw)
    assert a.shape == ((codes >= 0).sum(),)
    assert np.all((a >= 0) & (a <= 1))
    np.testing.assert_array_equal(
        a, held_out_agreement(X, codes, 4, random_state=0, **kw)
    )
    # a space without information scores every annotation by the class prior
    # of the other folds, about 1/K; the informative one scores far higher
    flat = held_out_agreement(np.zeros_like(X), codes, 4, random_state=0, **kw)
    assert flat.shape == a.shape
    np.testing.assert_allclose(flat, 0.25, atol=0.05)
    assert a.mean() > flat.mean() + 0.1
    rows = np.nonzero(codes >= 0)[0]
    folds = [np.arange(i, 20, 5) for i in range(5)]  # without a seed: in turn
    # a hidden item's prediction uses its features, never its own labels: with
    # by_item, the mean score of an item whose labels all say k is p(k | x); so
    # changing them to k' swaps p(k | x) for p(k' | x), the rest unchanged
    item = folds[3][0]  # between classes 0 and 3: p(. | x) is not one-hot
    per_class = []
    for k in range(4):
        relabelled = codes.copy()
        relabelled[item] = np.where(codes[item] >= 0, k, -1)
        scores = held_out_agreement(X, relabelled, 4, by_item=True, **kw)
        per_class.append(scores[np.searchsorted(np.unique(rows), item)])
    # the four scores are one distribution over the classes: p(. | x_item)
    assert np.isclose(sum(per_class), 1.0)
    # two classes are plausible for this item: its labels would sway a fit
    # that saw them
    assert sorted(per_class)[-2] > 0.3
    # one labelled item: nothing to hold out against
    lone = np.full_like(codes, -1)
    lone[0, 0] = 1
    assert held_out_agreement(X, lone, 4, random_state=0, **kw).size == 0


def test_held_out_agreement_by_item_averages_each_items_annotations():
    X, y = _task(5, seed=4)
    codes = np.where(np.isnan(_crowd(y, 4)), -1, _crowd(y, 4)).astype(int)
    codes[3] = -1  # an unlabelled item has no score
    kw = {"n_iter": 3, "b": 10.0, "c": (2.0, 1.0), "random_state": 0}
    per_label = held_out_agreement(X, codes, 4, **kw)
    per_item = held_out_agreement(X, codes, 4, by_item=True, **kw)
    labelled = np.flatnonzero((codes >= 0).any(axis=1))
    assert per_item.shape == (labelled.size,)
    # same scores, regrouped: items weighted by their number of labels give
    # back the mean over the annotations
    n_labels = (codes[labelled] >= 0).sum(axis=1)
    assert np.isclose(np.average(per_item, weights=n_labels), per_label.mean())


def test_choose_representation_needs_a_clear_paired_advantage():
    base = np.linspace(0.2, 0.8, 30)
    assert choose_representation({"a": base, "b": base + 0.05}, "a") == "b"
    assert choose_representation({"a": base, "b": base - 0.05}, "a") == "a"
    assert choose_representation({"a": base, "b": base}, "a") == "a"
    three = {"a": base, "b": base + 0.05, "c": base + 0.1}
    assert choose_representation(three, "a") == "c"
    # the best of several clear winners, wherever it is listed
    three = {"a": base, "c": base + 0.1, "b": base + 0.05}
    assert choose_representation(three, "a") == "c"


def test_choose_representation_with_chance_needs_informative_features():
    rng = np.random.default_rng(0)
    # an informative, overconfident default (probability 1 or 0 of each hidden
    # annotation) against nearly flat posteriors (about 1/K whatever the item)
    confident = (rng.uniform(size=40) < 0.1).astype(float)
    flat = 0.245 + 0.01 * rng.normal(size=40)  # as flat as chance, or below
    scores = {"a": confident, "b": flat}
    assert choose_representation(scores, "a", min_z=1.25) == "b"
    assert choose_representation(scores, "a", min_z=1.25, chance=0.25) == "a"
    # a candidate clearly above chance still overrules the default
    scores["c"] = 0.6 + 0.05 * rng.normal(size=40)
    assert choose_representation(scores, "a", min_z=1.25, chance=0.25) == "c"


def _paired(base, z, seed=0):
    """``base`` plus a paired advantage of exactly ``z`` standard errors."""
    e = np.random.default_rng(seed).normal(size=base.size)
    e = (e - e.mean()) / e.std(ddof=1)
    return base + 0.02 + 0.02 * np.sqrt(base.size) / z * e


def test_choose_representation_at_the_threshold_of_fit():
    # fit overrules the validated default at MIN_Z standard errors, above
    # chance: a one-standard-error advantage is noise, a clear one is not
    base = np.linspace(0.4, 0.8, 40)
    rule = {"min_z": MIN_Z, "chance": 0.25}
    assert MIN_Z > 1.0
    noise = {"a": base, "b": _paired(base, 1.0)}
    assert choose_representation(noise, "a", **rule) == "a"
    below, above = _paired(base, 0.9 * MIN_Z), _paired(base, 1.1 * MIN_Z)
    assert choose_representation({"a": base, "b": below}, "a", **rule) == "a"
    assert choose_representation({"a": base, "b": above}, "a", **rule) == "b"


def test_fit_keeps_the_default_on_an_advantage_below_the_threshold():
    # "normalized" agrees better with the held-out labels than the default
    # ("input", without meta_fit), and above chance, but not by MIN_Z standard
    # errors (between 1.0 and 1.5 on this seeded task): the default stands
    rng = np.random.default_rng(26)
    y = np.repeat(np.arange(3), 6)
    spread = np.array([1.0, 1.0, 3.0, 0.3])
    X = 2.0 * rng.normal(size=(3, 4))[y] + rng.normal(size=(18, 4)) * spread
    Y, _, _ = simulate_annotators(y, 3, random_state=26)
    clf = MetaAnnotatorClassifier(random_state=0).fit(X, Y)
    scores = clf.representation_scores_
    assert scores["normalized"] > scores["input"] > 0.5  # chance: 1/3
    assert clf.representation_ == "input"


def test_fit_does_not_switch_to_a_space_that_is_not_above_chance():
    # leave-one-out on 2 items per class: in the standardised space each hidden
    # item lies nearer the other class's prototype (confidently wrong), while
    # every item has the same direction, so "normalized" puts them all at one
    # point and predicts the class prior, which the hidden item's own class
    # lacks: it beats the default on every item, yet stays below chance (1/2)
    X = np.array([[1.0], [11.0], [2.0], [10.0]])
    Y = np.array([[0, 0, 0], [0, 0, 0], [1, 1, 1], [1, 1, 1]])
    clf = MetaAnnotatorClassifier(random_state=0).fit(X, Y)
    scores = clf.representation_scores_
    assert scores["input"] < 0.25 < scores["normalized"] < 0.5
    assert clf.representation_ == "input"


def test_crowd_agreement_score_tunes_without_gold_labels():
    X, y = _task(20, seed=5, n_noise=2, noise_sd=1.0)
    Y = _crowd(y, seed=5)
    grid = GridSearchCV(
        MetaAnnotatorClassifier(representation="scaled"),
        {"n_em_iter": [0, 3], "b": [1.0, 100.0]},
        scoring=crowd_agreement_score,
        cv=KFold(3, shuffle=True, random_state=0),
    ).fit(X, Y)
    assert 0.3 < grid.best_score_ <= 1.0  # chance: 0.25
    # a model that predicts the crowd well scores higher than one that cannot
    good = MetaAnnotatorClassifier(representation="scaled").fit(X, Y)
    blind = MetaAnnotatorClassifier(representation="scaled").fit(0 * X, Y)
    assert crowd_agreement_score(good, X, Y) > crowd_agreement_score(blind, X, Y) + 0.1
    # labels the model never saw score 0; an empty label matrix is an error
    Y_new = np.full_like(Y, np.nan)
    Y_new[:, 0] = 99
    assert crowd_agreement_score(good, X, Y_new) == 0.0
    with pytest.raises(ValueError, match="no annotation"):
        crowd_agreement_score(good, X, np.full_like(Y, np.nan))


def test_held_out_agreement_match_scores_the_argmax_of_the_feature_only_prediction():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 10)
    codes = np.stack([y, y, 1 - y]).T  # two good annotators, one adversary
    U = y[:, None] * 4.0 + rng.normal(size=(20, 2))
    kw = {"n_iter": 3, "b": 10.0, "c": (2.0, 1.0), "random_state": 0}
    match = held_out_agreement(U, codes, 2, score="match", **kw)
    proba = held_out_agreement(U, codes, 2, **kw)
    assert set(np.unique(match)) <= {0.0, 1.0}
    # well separated classes: the argmax is the majority's label on every item,
    # so each item's match is 2/3, and the probability scores agree with it
    items = held_out_agreement(U, codes, 2, score="match", by_item=True, **kw)
    np.testing.assert_allclose(items, 2 / 3)
    np.testing.assert_array_equal(match == 1.0, proba > 0.5)
    with pytest.raises(ValueError, match="score must be 'probability' or 'match'"):
        held_out_agreement(U, codes, 2, score="log", **kw)
