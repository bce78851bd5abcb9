"""Choosing a latent space on a crowd-labelled task without gold labels."""
# SPDX-License-Identifier: BSD-3-Clause

# The criterion: hide every label of some items, fit the EM on the rest, predict
# the hidden items' classes from their features alone (paper Eq. 8) and score
# how probable that prediction makes the hidden annotations. A latent space in
# which the features predict what the annotators said about unseen items is
# one in which the features predict the true class. Ours, not the paper's.

from __future__ import annotations

import numpy as np
import torch

from ._em import predict_log_proba, run_em_sparse

#: Folds of the held-out agreement in ``fit(representation="auto")``.
N_FOLDS = 5
#: Below this many labelled items per class the held-out agreement carries no
#: information (at one item per class a hidden item's class is absent from the
#: rest of the task), and ``fit`` keeps the validated default.
MIN_ITEMS_PER_CLASS = 2
#: Paired z-score that held-out agreement needs to overrule the default: the
#: smallest threshold that never loses from the right default on the validation
#: tasks of ``benchmarks/selection_check.py``, dense and sparse crowds (1.0 while
#: there were two input spaces; 1.25 with three, until the sparse crowds showed
#: it switching away from the right default).
MIN_Z = 1.5


def held_out_agreement(
    U,
    labels,
    n_classes,
    *,
    n_folds=5,
    random_state=None,
    by_item=False,
    score="probability",
    **em_params,
) -> np.ndarray:
    """Cross-validated agreement of feature-only predictions with the crowd.

    The labelled items are split into ``n_folds`` folds; for each fold the EM
    is fitted on every other item (its labels and embeddings), the fold's
    items are classified from their embeddings alone, and each of the fold's
    hidden annotations ``y_n^r`` is scored by ``p(t_n = y_n^r | x_n)``. Gold
    labels are never used. Time and memory grow with the number of labels
    (:func:`~sklearn_metaannot._em.run_em_sparse`), not items x annotators.

    Parameters
    ----------
    U : ndarray of shape (n_samples, M)
        Embeddings of the task's items in one candidate latent space.
    labels : (rows, cols, codes) int arrays of shape (n_labels,), or ndarray \
of shape (n_samples, n_annotators)
        The annotations as triplets (item, annotator, label code), or a dense
        code matrix with ``-1`` for missing labels.
    n_classes : int
        Number of classes K.
    n_folds : int, default=5
        Folds (at most the number of labelled items: leave-one-out then).
    random_state : int, Generator or None, default=None
        Seeds a random fold assignment; None assigns the labelled items to the
        folds in turn (deterministic, and classes sorted by item still spread
        over the folds). Use the same value for every candidate space, so that
        their scores are paired.
    by_item : bool, default=False
        Return one score per labelled item (the mean over its annotations, items
        in increasing order) instead of one per annotation. The annotations of an
        item share its prediction and are not independent, so a paired test
        between spaces should count items, not annotations.
    score : {"probability", "match"}, default="probability"
        What a hidden annotation ``y_n^r`` scores: ``p(t_n = y_n^r | x_n)``, or
        1 when the class predicted from the features alone (the argmax) is
        ``y_n^r`` and 0 otherwise, which does not reward confident posteriors.
    **em_params
        ``n_iter``, ``tau``, ``b``, ``c`` of
        :func:`sklearn_metaannot._em.run_em_sparse`.

    Returns
    -------
    ndarray of shape (n_labels,) or (n_labelled_items,)
        One score per annotation, in an order that depends only on ``labels``
        and ``random_state``, or per item with ``by_item`` (empty with fewer
        than two labelled items).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_metaannot._selection import held_out_agreement
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([0, 1], 10)
    >>> codes = np.stack([y, y, 1 - y]).T  # two good annotators, one adversary
    >>> informative = y[:, None] * 4.0 + rng.normal(size=(20, 2))
    >>> noise = rng.normal(size=(20, 2))
    >>> kw = dict(n_iter=3, b=10.0, c=(2.0, 1.0), random_state=0)
    >>> good = held_out_agreement(informative, codes, 2, **kw)
    >>> bad = held_out_agreement(noise, codes, 2, **kw)
    >>> good.shape, bool(good.mean() > bad.mean())
    ((60,), True)
    """
    if isinstance(labels, np.ndarray) and labels.ndim == 2:
        rows, cols = np.nonzero(labels >= 0)
        labels = (rows, cols, labels[rows, cols])
    if score not in ("probability", "match"):
        raise ValueError(f"score must be 'probability' or 'match', got {score!r}")
    rows, cols, codes = (np.asarray(a, dtype=np.int64) for a in labels)
    n_annotators = int(cols.max()) + 1 if cols.size else 0
    labelled = np.unique(rows)
    if labelled.size < 2:
        return np.empty(0)
    n_folds = min(n_folds, labelled.size)
    if random_state is None:
        folds = [labelled[i::n_folds] for i in range(n_folds)]
    else:
        order = np.random.default_rng(random_state).permutation(labelled)
        folds = np.array_split(order, n_folds)
    U = torch.as_tensor(np.asarray(U, dtype=np.float64))
    N = U.shape[0]
    scores, items = [], []
    for fold in folds:
        hidden = np.zeros(N, dtype=bool)
        hidden[fold] = True
        train = np.flatnonzero(~hidden)
        new_index = np.cumsum(~hidden) - 1  # item -> row in the training task
        kept = ~hidden[rows]
        res = run_em_sparse(
            U[train],
            torch.from_numpy(new_index[rows[kept]]),
            torch.from_numpy(cols[kept]),
            torch.from_numpy(codes[kept]),
            n_classes,
            n_annotators,
            **em_params,
        )
        log_proba = predict_log_proba(U[fold][None], res.mu[None], res.log_pi[None])
        position = np.full(N, -1)
        position[fold] = np.arange(len(fold))
        log_proba = log_proba[0].numpy()[position[rows[~kept]]]
        if score == "match":
            scores.append((log_proba.argmax(axis=1) == codes[~kept]).astype(float))
        else:
            scores.append(np.exp(log_proba[np.arange(len(log_proba)), codes[~kept]]))
        items.append(rows[~kept])
    scores = np.concatenate(scores)
    if not by_item:
        return scores
    items = np.concatenate(items)
    index = np.searchsorted(labelled, items)
    return np.bincount(index, scores, labelled.size) / np.bincount(
        index, None, labelled.size
    )


def _z(diff):
    """Mean of ``diff`` in standard errors of that mean."""
    se = diff.std(ddof=1) / np.sqrt(diff.size)
    return diff.mean() / se if se > 0 else (np.inf if diff.mean() > 0 else 0.0)


def plausible_spaces(scores, per_episode, *, min_z=MIN_Z) -> tuple:
    """The spaces not clearly worse than the best one on the same episodes.

    A space is dropped when the best space's advantage over it, paired over
    episodes, is at least ``min_z`` standard errors. ``meta_fit`` applies this
    to the input spaces on its source episodes: which input space suits the
    features depends on their units and geometry, not on the classes, so a
    space that clearly lost there is not a candidate of the per-task check.

    Parameters
    ----------
    scores : dict of str to float
        Mean accuracy per space; the best is the first of the highest.
    per_episode : dict of str to ndarray
        Accuracy per episode, the same episodes for every space.
    min_z : float, default=MIN_Z

    Returns
    -------
    tuple of str
        In the order of ``scores``; always holds the best space.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_metaannot._selection import plausible_spaces
    >>> rng = np.random.default_rng(0)
    >>> a = rng.uniform(0.6, 0.9, size=50)
    >>> per = {"a": a, "b": a - 0.2, "c": a + rng.normal(0, 0.05, size=50)}
    >>> plausible_spaces({k: v.mean() for k, v in per.items()}, per)
    ('a', 'c')
    """
    best = max(scores, key=scores.get)
    ref = np.asarray(per_episode[best], dtype=float)
    return tuple(
        name
        for name in scores
        if name == best or _z(ref - np.asarray(per_episode[name], dtype=float)) < min_z
    )


def choose_representation(scores, default, *, min_z=1.0, chance=None):
    """The candidate the held-out crowd labels prefer, if clearly; else ``default``.

    A candidate replaces ``default`` only when its paired advantage in
    held-out agreement (:func:`held_out_agreement`, same folds) is at least
    ``min_z`` standard errors and, with ``chance``, its own agreement is also
    ``min_z`` standard errors above ``chance``; among several such candidates
    the one with the highest mean wins.

    Parameters
    ----------
    scores : dict of str to ndarray
        Held-out scores of each candidate, paired (same items, same folds):
        per item in ``fit`` (``held_out_agreement(..., by_item=True)``).
    default : str
        The candidate chosen without evidence (a key of ``scores``).
    min_z : float, default=1.0
        Required mean / standard error of the paired differences.
    chance : float or None, default=None
        The agreement of a guess that ignores the features (``1 / K`` for the
        probability score). A space whose posteriors are nearly flat scores
        about that much whatever the class, and can beat an informative but
        overconfident default; with ``chance`` it must show that its features
        predict the hidden annotations at all.

    Returns
    -------
    str

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_metaannot._selection import choose_representation
    >>> rng = np.random.default_rng(0)
    >>> base = rng.uniform(size=40)
    >>> choose_representation({"a": base, "b": base + 0.2}, default="a")
    'b'
    >>> noisy = base + np.tile([0.3, -0.29], 20)  # better by 0.005 on average
    >>> choose_representation({"a": base, "b": noisy}, default="a")
    'a'
    """
    ref = np.asarray(scores[default], dtype=float)
    best, best_mean = default, ref.mean() if ref.size else -np.inf
    for name, s in scores.items():
        s = np.asarray(s, dtype=float)
        if name == default or s.size < 2:
            continue
        informative = chance is None or _z(s - chance) >= min_z
        if _z(s - ref) >= min_z and informative and s.mean() > best_mean:
            best, best_mean = name, float(s.mean())
    return best


def crowd_agreement_score(estimator, X, Y):
    """Scorer: how probable a fitted model makes held-out annotations.

    ``mean over the annotations (n, r) of p(t_n = y_n^r | x_n)``, from the
    estimator's ``predict_proba``; an annotation naming a class the estimator
    does not know scores 0. It needs no gold labels, so ``GridSearchCV`` can
    tune a crowd-labelled model with it (``scoring=crowd_agreement_score`` and
    a splitter over items, e.g. ``KFold``). Higher is better.

    Parameters
    ----------
    estimator : fitted classifier
        With ``predict_proba`` and ``classes_``.
    X : array-like of shape (n_samples, n_features)
        Held-out items.
    Y : array-like of shape (n_samples, n_annotators), or CrowdLabelMatrix
        Their annotations (``np.nan`` where missing).

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.model_selection import KFold, cross_val_score
    >>> from sklearn_metaannot import MetaAnnotatorClassifier, crowd_agreement_score
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([0, 1, 2], 20)
    >>> X = rng.normal(size=(60, 4)) + 3 * np.eye(4)[y]
    >>> Y = np.stack([y, y, rng.integers(0, 3, 60)], axis=1).astype(float)
    >>> scores = cross_val_score(MetaAnnotatorClassifier(), X, Y,
    ...                          scoring=crowd_agreement_score,
    ...                          cv=KFold(3, shuffle=True, random_state=0))
    >>> bool(scores.mean() > 0.6)
    True
    """
    from ._crowd_labels import CrowdLabelMatrix
    from ._validation import flatten_samples

    labels = Y if isinstance(Y, CrowdLabelMatrix) else CrowdLabelMatrix.from_any(Y)
    codes = labels.to_codes()
    lookup = {v: i for i, v in enumerate(np.asarray(estimator.classes_).tolist())}
    column = np.array([lookup.get(v, -1) for v in np.asarray(labels.classes).tolist()])
    proba = estimator.predict_proba(flatten_samples(X)[0])
    n, r = np.nonzero(codes >= 0)
    if n.size == 0:
        raise ValueError("Y holds no annotation to score against")
    k = column[codes[n, r]]
    return float(np.where(k >= 0, proba[n, np.maximum(k, 0)], 0.0).mean())
