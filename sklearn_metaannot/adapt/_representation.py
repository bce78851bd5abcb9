"""The representation: input spaces, their validation, the per-task choice, embedding.

One module owns the question "in which latent space does ``fit`` run EM?":

- the input spaces (:data:`INPUT_SPACES`) and their scaling;
- EM in those spaces on validation episodes (:func:`no_meta_accuracy`), the
  peers a meta-learned encoder must beat, and the default that meta-training
  validated (:func:`validated_default`);
- the per-task check on held-out crowd labels (:func:`held_out_agreement`) and
  the one decision function of ``fit`` (:func:`decide`), recorded in a
  :class:`RepresentationChoice`;
- the embedding of items in the chosen space (:func:`embed`).
"""
# SPDX-License-Identifier: BSD-3-Clause

# The criterion: hide every label of some items, fit the EM on the rest, predict
# the hidden items' classes from their features alone (paper Eq. 8) and score
# how probable that prediction makes the hidden annotations. A latent space in
# which the features predict what the annotators said about unseen items is
# one in which the features predict the true class. Ours, not the paper's.

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch

from ..em._heads import fit_task
from ..em._steps import one_hot_annotations, predict_log_proba, run_em

#: The latent spaces of EM without meta-learning, each built from the features of
#: the task's own support set: "input" standardises every feature, "scaled"
#: subtracts one global mean and divides by one global standard deviation, and
#: "normalized" scales every item to unit Euclidean norm before that global
#: scaling (EM on directions: the cosine geometry of CNN features).
INPUT_SPACES = ("input", "scaled", "normalized")


def normalize_rows(X):
    """Each row of ``X`` divided by its Euclidean norm (rows of zeros kept)."""
    X = np.asarray(X, dtype=np.float64)
    norm = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.where(norm > 0, norm, 1.0)


def input_space_scaling(X, space):
    """Offset and scale of the input ``space`` (a name of ``INPUT_SPACES``) from
    ``X``, after :func:`normalize_rows` for "normalized"."""
    X = np.asarray(X, dtype=np.float64)
    if space == "input":
        mean, scale = X.mean(axis=0), X.std(axis=0)
        scale[scale == 0] = 1.0
        return mean, scale
    if space == "normalized":
        X = normalize_rows(X)
    return float(X.mean()), float(X.std()) or 1.0


def to_input_space(X, space, offset, scale):
    """``X`` in the input ``space`` with the ``offset`` and ``scale`` of
    :func:`input_space_scaling`."""
    X = np.asarray(X, dtype=np.float64)
    if space == "normalized":
        X = normalize_rows(X)
    return (X - offset) / scale


def no_meta_accuracy(
    dataset,
    *,
    n_em_iter,
    tau,
    b,
    c,
    scaling="input",
    return_episodes=False,
):
    """Query accuracy of EM on the input features (no meta-learning).

    Each task builds the input space ``scaling`` (a name of ``INPUT_SPACES``)
    from the statistics of its own support set, exactly as
    :meth:`MetaAnnotatorClassifier.fit` does for ``representation=scaling``;
    these are the peers that a meta-learned encoder has to beat. With
    ``return_episodes``, also the query accuracy of each episode (in the order
    of ``dataset``), for paired comparisons between spaces.
    """
    K = dataset.sampler.n_way
    # tasks of the same support size and number of annotators run as one batch
    # (each task's EM is independent of the others in the batch)
    groups = {}
    for i in range(len(dataset)):
        ep = dataset.episode(i)
        groups.setdefault(ep.support_codes.shape, []).append((i, ep))
    correct = total = 0
    per_episode = np.empty(len(dataset))
    for members in groups.values():
        index, episodes = zip(*members)
        U, Uq = zip(*(_scaled_task(ep, scaling) for ep in episodes))
        codes = np.stack([ep.support_codes for ep in episodes])
        Y = one_hot_annotations(torch.from_numpy(codes), K).double()
        res = run_em(
            torch.from_numpy(np.stack(U)), Y, n_iter=n_em_iter, tau=tau, b=b, c=c
        )
        log_proba = predict_log_proba(
            torch.from_numpy(np.stack(Uq)), res.mu, res.log_pi
        )
        pred = log_proba.argmax(-1).numpy()
        query_y = np.stack([ep.query_y for ep in episodes])
        correct += int((pred == query_y).sum())
        total += query_y.size
        per_episode[list(index)] = (pred == query_y).mean(axis=1)
    if return_episodes:
        return correct / total, per_episode
    return correct / total


def _scaled_task(ep, scaling):
    """Support and query features of ``ep`` in the input space ``scaling``, built
    from its support's statistics."""
    xs = np.asarray(ep.support_X, dtype=np.float64).reshape(len(ep.support_X), -1)
    xq = np.asarray(ep.query_X, dtype=np.float64).reshape(len(ep.query_X), -1)
    offset, scale = input_space_scaling(xs, scaling)
    return (
        to_input_space(xs, scaling, offset, scale),
        to_input_space(xq, scaling, offset, scale),
    )


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
    head="prototype",
    head_penalty=1.0,
    **em_params,
) -> np.ndarray:
    """Cross-validated agreement of feature-only predictions with the crowd.

    The labelled items are split into ``n_folds`` folds; for each fold the EM
    is fitted on every other item (its labels and embeddings), the fold's
    items are classified from their embeddings alone, and each of the fold's
    hidden annotations ``y_n^r`` is scored by ``p(t_n = y_n^r | x_n)``. Gold
    labels are never used. Time and memory grow with the number of labels
    (:func:`~sklearn_metaannot.em._steps.run_em_sparse`), not items x annotators.

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
    head, head_penalty : str and float, default="prototype" and 1.0
        The class-probability model fitted on the other folds
        (:func:`~sklearn_metaannot.em._heads.fit_task`).
    **em_params
        ``n_iter``, ``tau``, ``b``, ``c`` of
        :func:`sklearn_metaannot.em._steps.run_em_sparse`, and optionally ``weight``,
        one per item of ``U`` (each fit takes those of its items).

    Returns
    -------
    ndarray of shape (n_labels,) or (n_labelled_items,)
        One score per annotation, in an order that depends only on ``labels``
        and ``random_state``, or per item with ``by_item`` (empty with fewer
        than two labelled items).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_metaannot.adapt._representation import held_out_agreement
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
    labelled = np.unique(rows)
    if labelled.size < 2:
        return np.empty(0)
    U = torch.as_tensor(np.asarray(U, dtype=np.float64))
    N = U.shape[0]
    weight = em_params.pop("weight", None)
    scores, items = [], []
    for fold, kept, res in _fold_fits(
        U,
        (rows, cols, codes),
        n_classes,
        n_folds,
        random_state,
        head=head,
        head_penalty=head_penalty,
        weight=weight,
        **em_params,
    ):
        log_proba = res.log_proba(U[fold])
        position = np.full(N, -1)
        position[fold] = np.arange(len(fold))
        log_proba = log_proba.numpy()[position[rows[~kept]]]
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


def _fold_fits(U, labels, n_classes, n_folds, random_state, weight=None, **fit_params):
    """For each fold of the labelled items: ``(fold, kept, fit)``, the fold's
    items, the mask of the labels not hidden, and the task fitted without the
    fold's labels and items (:func:`~sklearn_metaannot.em._heads.fit_task`; the
    per-item ``weight`` of the M-steps, if any, restricted to its items).

    The folds of :func:`held_out_agreement` (its ``n_folds`` and
    ``random_state``); at least two labelled items.
    """
    rows, cols, codes = labels
    n_annotators = int(cols.max()) + 1 if cols.size else 0
    labelled = np.unique(rows)
    n_folds = min(n_folds, labelled.size)
    if random_state is None:
        folds = [labelled[i::n_folds] for i in range(n_folds)]
    else:
        order = np.random.default_rng(random_state).permutation(labelled)
        folds = np.array_split(order, n_folds)
    N = U.shape[0]
    for fold in folds:
        hidden = np.zeros(N, dtype=bool)
        hidden[fold] = True
        train = np.flatnonzero(~hidden)
        new_index = np.cumsum(~hidden) - 1  # item -> row in the training task
        kept = ~hidden[rows]
        res = fit_task(
            U[train],
            torch.from_numpy(new_index[rows[kept]]),
            torch.from_numpy(cols[kept]),
            torch.from_numpy(codes[kept]),
            n_classes,
            n_annotators,
            weight=None if weight is None else torch.as_tensor(weight)[train],
            **fit_params,
        )
        yield fold, kept, res


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
    >>> from sklearn_metaannot.adapt._representation import plausible_spaces
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
    >>> from sklearn_metaannot.adapt._representation import choose_representation
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
    from ..crowd._labels import CrowdLabelMatrix
    from ..crowd._validation import flatten_samples

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


# -- the default that meta-training validated ------------------------------------


def validated_default(
    val_scores, input_scores, *, val_way, n_way, shared_classes=(), best_epoch=None
):
    """The space ``fit`` uses by default after ``meta_fit``, and why.

    Parameters
    ----------
    val_scores : dict of str to float
        Validation-task accuracy of "meta" and of the input spaces; empty when
        nothing could validate the encoder.
    input_scores : dict of str to float
        Accuracy of the input spaces on ``n_way``-way episodes of the source.
    val_way, n_way : int
        Classes per validation task and per target task (meta-training's
        ``n_way``).
    shared_classes : sequence, default=()
        Classes that user-given validation data shares with the training data.
    best_epoch : int or None
        The epoch of the kept encoder (for the message).

    Returns
    -------
    selected : str
        The validated default: "meta", or the best input space.
    message : str or None
        Why the encoder is not the default, for a :class:`MetaLearningWarning`
        (None when the encoder won, or when nothing validated it: the caller
        has said so already).

    Examples
    --------
    >>> from sklearn_metaannot.adapt._representation import validated_default
    >>> inputs = {"input": 0.7, "scaled": 0.72, "normalized": 0.6}
    >>> validated_default({"meta": 0.8, **inputs}, inputs, val_way=5, n_way=5)
    ('meta', None)
    >>> validated_default({}, inputs, val_way=0, n_way=5)
    ('scaled', None)
    """
    best_input = max(input_scores, key=input_scores.get)
    if not val_scores:
        # nothing validated the encoder: fit uses it only where a task's own
        # crowd labels show it to be better
        return best_input, None
    meta, chosen = val_scores["meta"], best_input
    against = f"(accuracy {meta:.3f} against {val_scores[best_input]:.3f})"
    then = (
        f"fit (representation='auto') uses representation={best_input!r}, and the "
        "encoder only on tasks whose own crowd labels show it to be better"
    )
    if len(shared_classes):
        # Tasks of classes the encoder was trained on measure how well it fits
        # them, not how it transfers to new ones (on LabelMe, 0.83 against 0.50
        # for EM on the input features there, a tie on the target tasks): they
        # choose the epoch, not the latent space.
        first = np.asarray(shared_classes, dtype=object)[0]
        return chosen, (
            f"X_val shares {len(shared_classes)} classes with X_source (e.g. "
            f"{first!r}): its tasks choose the epoch but cannot show that the "
            f"encoder transfers to new classes {against}; {then}; pass X_val of "
            "other classes to validate it"
        )
    if val_way < n_way:
        # Smaller validation episodes than target tasks, over one or two
        # held-out classes, rated the encoder above the input spaces where it
        # was far below them on target tasks (small-source benchmark).
        return chosen, (
            f"the validation tasks are {val_way}-way, smaller than n_way={n_way}: "
            f"they cannot validate the meta-learned encoder {against}; {then} "
            f"(the better input space on {n_way}-way episodes of all source "
            "classes)"
        )
    chosen = max(val_scores, key=val_scores.get)  # ties go to "meta", listed first
    if chosen == "meta":
        return chosen, None
    return chosen, (
        "meta-learning did not help on the validation tasks: the best "
        f"meta-learned encoder (epoch {best_epoch}) reached accuracy {meta:.3f}, "
        f"EM on standardised input features {val_scores['input']:.3f}, on "
        f"globally scaled features {val_scores['scaled']:.3f}, on unit-norm items "
        f"{val_scores['normalized']:.3f}. fit will use representation={chosen!r} "
        "unless a task's crowd labels show the encoder to be better "
        "(representation='auto'); set representation='meta' to use the encoder "
        "anyway"
    )


# -- the per-task choice of fit ----------------------------------------------------


@dataclass(frozen=True)
class RepresentationChoice:
    """Which latent space ``fit`` used, and why (``representation_choice_``).

    Attributes
    ----------
    space : str
        The space EM ran in: "meta" or a name of :data:`INPUT_SPACES`.
    default : str
        The space chosen without evidence from the task: what ``meta_fit``
        validated ("input" without ``meta_fit``), or the forced space.
    reason : str
        "forced" (``representation`` named a space), "too few labelled items"
        (fewer than ``MIN_ITEMS_PER_CLASS`` per class: the default),
        "default held" (no candidate clearly beat it), or "held-out crowd
        labels" (a candidate clearly did, and was above chance).
    scores : dict of str to float
        Mean held-out agreement of each space (NaN where not computed; empty
        for a forced space).
    candidates : tuple of str
        The spaces the check compared.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_metaannot import MetaAnnotatorClassifier
    >>> X = np.array([[0.0], [0.2], [3.0], [3.2]])
    >>> clf = MetaAnnotatorClassifier().fit(X, [[0, 0], [0, 1], [1, 1], [1, 1]])
    >>> clf.representation_choice_.space, clf.representation_choice_.reason
    ('input', 'default held')
    """

    space: str
    default: str
    reason: str
    scores: dict = field(default_factory=dict)
    candidates: tuple = ()


def input_scalings(X):
    """Offset and scale of every input space, from ``X`` (``input_scaling_``)."""
    return {space: input_space_scaling(X, space) for space in INPUT_SPACES}


def embed(X, space, *, meta_encoder=None, scalings):
    """``X`` in the latent ``space``: the encoder's, or an input space."""
    if space == "meta":
        return meta_encoder.transform(X)
    offset, scale = scalings[space]
    return to_input_space(X, space, offset, scale)


def check_meta_encoder(meta_encoder, n_features):
    """A clear error when the encoder is missing or expects other features."""
    if meta_encoder is None:
        raise ValueError(
            "representation='meta' needs a meta-learned encoder: call meta_fit "
            "first, or pass meta_encoder="
        )
    if meta_encoder.n_features_in != n_features:
        raise ValueError(
            f"X has {n_features} features, but the meta-learned encoder expects "
            f"{meta_encoder.n_features_in} (the features of X_source in meta_fit)"
        )


def _too_few_labelled(labels, n_classes):
    """Fewer than ``MIN_ITEMS_PER_CLASS`` labelled items per class: no check."""
    return np.unique(labels.rows).size < MIN_ITEMS_PER_CLASS * n_classes


def _task_agreement(U, labels, n_classes, seed, em_params, **model):
    """Per-item held-out agreement of a task in ``U``, with the folds of ``seed``:
    the evidence of every per-task check of ``fit``."""
    return held_out_agreement(
        U,
        (labels.rows, labels.cols, labels.codes),
        n_classes,
        n_folds=N_FOLDS,
        random_state=seed,
        by_item=True,
        **model,
        **em_params,
    )


def _clear_winner(scores, default, n_classes):
    """The candidate that clearly beats ``default`` and chance, else ``default``."""
    return choose_representation(scores, default, min_z=MIN_Z, chance=1.0 / n_classes)


def decide(mode, X, labels, n_classes, *, meta_encoder, scalings, em_params, seed):
    """The latent space of a task: the one decision of ``fit``.

    ``mode`` is the ``representation`` parameter. A named space is used as
    given. With "auto" the default is what ``meta_fit`` validated
    (``meta_encoder.selected``; "input" without an encoder). When the task has
    at least ``MIN_ITEMS_PER_CLASS`` labelled items per class, held-out crowd
    labels (:func:`held_out_agreement`, the folds of ``seed``) may overrule it
    (:func:`choose_representation`, at ``MIN_Z`` and above chance ``1 / K``)
    with a candidate: the encoder, the default, and the input spaces that
    ``meta_fit`` found plausible on its source episodes.

    Parameters
    ----------
    mode : str
    X : ndarray of shape (n_samples, n_features)
    labels : CrowdLabelMatrix
    n_classes : int
    meta_encoder : MetaEncoder or None
    scalings : dict
        Of :func:`input_scalings`.
    em_params : dict
        ``n_iter``, ``tau``, ``b``, ``c`` of the EM.
    seed : int or None
        Seed of the held-out folds (the same for every candidate).

    Returns
    -------
    RepresentationChoice
    """
    if mode == "meta" or (mode == "auto" and meta_encoder is not None):
        check_meta_encoder(meta_encoder, X.shape[1])
    if mode != "auto":
        return RepresentationChoice(mode, mode, "forced")
    default = "input" if meta_encoder is None else meta_encoder.selected
    # input spaces clearly worse on meta_fit's source episodes stay out: how well
    # a space suits the features depends on their units, not classes
    plausible = INPUT_SPACES if meta_encoder is None else meta_encoder.input_candidates
    spaces = [*INPUT_SPACES, *([] if meta_encoder is None else ["meta"])]
    candidates = tuple(s for s in spaces if s in plausible or s in (default, "meta"))
    means = dict.fromkeys(spaces, float("nan"))
    if _too_few_labelled(labels, n_classes):
        return RepresentationChoice(
            default, default, "too few labelled items", means, candidates
        )
    scores = {}
    for name in candidates:
        U = embed(X, name, meta_encoder=meta_encoder, scalings=scalings)
        scores[name] = _task_agreement(U, labels, n_classes, seed, em_params)
        means[name] = float(np.mean(scores[name]))
    space = _clear_winner(scores, default, n_classes)
    reason = "default held" if space == default else "held-out crowd labels"
    return RepresentationChoice(space, default, reason, means, candidates)


# -- the weight of the features in the posteriors -----------------------------------

#: The candidates of ``head="auto"``, the default first.
AUTO_HEADS = ("prototype", "linear", "mlp")
#: ``head="auto"`` tries the MLP head from this many labelled items per class
#: (on average): a hidden layer has nothing to earn below it, and below the
#: threshold a default fit stays about as fast as the prototype EM (its MLP
#: check fits 5 folds). On the validation tasks (``benchmarks/head_validation.py``)
#: "auto" chose the MLP head in 2 of 24 tasks at 10 items per class and in most
#: at 50 and all; 10 rather than 20 raised their mean test accuracy from 0.708
#: to 0.709 (``dog_mixture`` at 10 items per class: 0.602 to 0.620).
MLP_MIN_ITEMS_PER_CLASS = 10

#: The candidate temperatures of the features' prediction in the posteriors
#: (``p(t | x) ** weight``): 1, the paper's model, down to 1/64, close to the
#: annotators' labels alone, in steps of sqrt(2).
FEATURE_WEIGHTS = tuple(2.0 ** (-j / 2) for j in range(13))
#: The head and weight check of a larger task runs on this many of its labelled
#: items (drawn with the folds' seed): its standard errors are then a fraction of
#: a point, and its cost stops growing with the task (every candidate head is
#: fitted once per fold). The fitted models are fitted on fewer items than the
#: final one, which leans the check towards the simpler model and the smaller
#: weight.
MAX_CHECK_ITEMS = 4000


def _check_sample(U, labels, seed, weight=None):
    """``U``, the label triplets and the items' M-step ``weight`` (None: all 1)
    of at most ``MAX_CHECK_ITEMS`` labelled items (all items in a smaller task;
    drawn with ``seed``, evenly spaced without), items and annotators
    renumbered."""
    rows, cols, codes = labels.rows, labels.cols, labels.codes
    labelled = np.unique(rows)
    if labelled.size <= MAX_CHECK_ITEMS:
        return U, (rows, cols, codes), weight
    if seed is None:  # deterministic, as the folds: evenly spaced items
        keep = labelled[np.linspace(0, labelled.size - 1, MAX_CHECK_ITEMS).astype(int)]
    else:
        rng = np.random.default_rng([seed, 29])
        keep = np.sort(rng.choice(labelled, MAX_CHECK_ITEMS, replace=False))
    new = np.full(len(U), -1)
    new[keep] = np.arange(keep.size)
    mask = new[rows] >= 0
    # the annotators of the kept labels, renumbered: the check's cost follows
    # the sample, not the task's number of annotators
    _, annotators = np.unique(cols[mask], return_inverse=True)
    weight = None if weight is None else np.asarray(weight)[keep]
    return U[keep], (new[rows[mask]], annotators, codes[mask]), weight


def held_out_label_score(
    U,
    labels,
    n_classes,
    weights=FEATURE_WEIGHTS,
    *,
    n_folds=5,
    random_state=None,
    return_log_proba=False,
    **fit_params,
) -> np.ndarray:
    """How well the tempered features predict held-out crowd labels, per weight.

    The folds of :func:`held_out_agreement`: for each fold the task is fitted
    on every other item (:func:`~sklearn_metaannot.em._heads.fit_task`). A hidden
    annotation ``y`` of item ``n`` by annotator ``r`` is predicted by
    ``q(l) = sum_k p_w(k | x_n) A^r[k, l]``, with the confusion matrices ``A``
    of that fit and its features' prediction tempered by each weight ``w``,
    ``p_w(k | x)`` proportional to ``p(k | x) ** w``, and scored by minus the
    Brier score ``sum_l (q(l) - [l = y])^2``: how well the features, at that
    temperature, predict what the annotators said about unseen items. This
    calibrates the features' prediction on crowd labels through the
    confusion matrices (temperature scaling, Guo et al., 2017, "On
    calibration of modern neural networks"; no gold labels). The Brier score
    is proper and bounded: a few items on which a confident model is wrong do
    not decide the temperature alone, as they would under the log-loss.

    Parameters
    ----------
    U : ndarray of shape (n_samples, M)
        Embeddings of the task's items.
    labels : (rows, cols, codes) int arrays of shape (n_labels,)
        The annotations as triplets (item, annotator, label code).
    n_classes : int
    weights : sequence of float, default=FEATURE_WEIGHTS
    n_folds, random_state
        As :func:`held_out_agreement`.
    return_log_proba : bool, default=False
        Also return the untempered out-of-fold prediction of every item.
    **fit_params
        ``n_iter``, ``tau``, ``b``, ``c`` of the EM, and ``head``,
        ``head_penalty`` of :func:`~sklearn_metaannot.em._heads.fit_task`.

    Returns
    -------
    scores : ndarray of shape (n_labelled_items, len(weights))
        Minus the mean Brier score of each item's hidden annotations (higher is
        better), items in increasing order (empty with fewer than two labelled
        items).
    log_proba : ndarray of shape (n_samples, n_classes)
        With ``return_log_proba``: ``log p(t | u_n)`` of each labelled item from
        the fit of the folds that hid it; NaN for the other items.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_metaannot.adapt._representation import held_out_label_score
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([0, 1], 30)
    >>> codes = np.stack([y, y, np.where(rng.random(60) < 0.8, y, 1 - y)]).T
    >>> rows, cols = np.nonzero(codes >= 0)
    >>> labels = (rows, cols, codes[rows, cols])
    >>> X = rng.normal(size=(60, 50))  # features that say nothing of the class
    >>> kw = dict(n_iter=3, b=10.0, c=(2.0, 1.0), random_state=0)
    >>> S = held_out_label_score(X, labels, 2, (1.0, 0.1), **kw)
    >>> S.shape, bool(S[:, 1].mean() > S[:, 0].mean())  # tempered is better
    ((60, 2), True)
    """
    rows, cols, codes = (np.asarray(a, dtype=np.int64) for a in labels)
    labelled = np.unique(rows)
    oof = np.full((len(U), n_classes), np.nan)
    if labelled.size < 2:
        empty = np.empty((0, len(weights)))
        return (empty, oof) if return_log_proba else empty
    U = torch.as_tensor(np.asarray(U, dtype=np.float64))
    weights = np.asarray(weights, dtype=np.float64)
    out = np.empty((labelled.size, weights.size))
    for fold, kept, res in _fold_fits(
        U, (rows, cols, codes), n_classes, n_folds, random_state, **fit_params
    ):
        oof[fold] = res.log_proba(U[fold]).numpy()
        tempered = weights[:, None, None] * oof[fold]
        proba = np.exp(
            tempered - np.logaddexp.reduce(tempered, axis=-1, keepdims=True)
        )  # (weights, fold items, K)
        position = np.full(U.shape[0], -1)
        position[fold] = np.arange(len(fold))
        hidden = ~kept
        at = position[rows[hidden]]
        # predicted label distribution of each hidden annotation, (W, H, K)
        q = np.einsum(
            "whk,hkl->whl", proba[:, at], np.exp(res.log_A.numpy())[cols[hidden]]
        )
        brier = (q * q).sum(-1) - 2.0 * q[:, np.arange(at.size), codes[hidden]] + 1.0
        total = np.zeros((len(fold), weights.size))
        np.add.at(total, at, brier.T)
        count = np.bincount(at, minlength=len(fold))[:, None]
        out[np.searchsorted(labelled, fold)] = -total / count
    return (out, oof) if return_log_proba else out


def _a_class_barely_named(labels, n_classes):
    """Some class is named for fewer than ``MIN_ITEMS_PER_CLASS`` items: a
    discriminative head has no labelled evidence to learn it from (the
    prototype EM can still find it among unlabelled items)."""
    named = np.zeros((n_classes, labels.n_samples), dtype=bool)
    named[labels.codes, labels.rows] = True
    return bool((named.sum(axis=1) < MIN_ITEMS_PER_CLASS).any())


class ModelChoice(NamedTuple):
    """The class-probability model of a task, and the evidence (of
    :func:`decide_model`).

    Attributes
    ----------
    head : str
        A name of :data:`~sklearn_metaannot.em._heads.HEADS`.
    feature_weight : float
        The temperature of the features' prediction in the posteriors.
    head_scores : dict of str to float
        With ``head="auto"``: each candidate head's mean held-out score at its
        best weight (NaN when the task is too small to check; else empty).
    weight_scores : dict of str to float
        With ``feature_weight="auto"``: the chosen head's mean held-out score at
        each candidate weight, keyed by the weight written with 4 significant
        digits (``"0.7071"``; NaN when the task is too small to check; else
        empty).
    held_out_log_proba : ndarray of shape (n_samples, n_classes) or None
        The chosen head's out-of-fold ``log p(t | u_n)`` of the labelled items
        (NaN rows for the others), for the tempered posteriors; None when the
        weight is 1 or the check ran on a sample of the items.
    """

    head: str
    feature_weight: float
    head_scores: dict
    weight_scores: dict
    held_out_log_proba: np.ndarray | None = None


def decide_model(
    head, feature_weight, U, labels, n_classes, *, head_penalty, em_params, seed
) -> ModelChoice:
    """The class-probability model of a task and the temperature of its
    features' prediction in the posteriors: the one decision of ``fit`` after
    the latent space.

    ``head`` and ``feature_weight`` are what ``fit`` asks for (``fit`` passes
    ``"auto"`` for the weight with ``head="auto"``, 1 with a named head). A named
    head and a number are used as given. Otherwise the evidence is the held-out
    score of each candidate head at each candidate weight
    (:func:`held_out_label_score`, minus a Brier score: proper, so that heads of
    different confidence compare fairly; the folds of ``seed``, the same for every
    candidate, in the chosen space ``U``).

    - The heads are compared each at its best weight, calibrated as well as a
      temperature can: with ``"auto"`` a head replaces the prototypes when its
      score clearly beats theirs (``MIN_Z`` standard errors, paired over items).
      Only the prototypes are candidates when some class is named for fewer
      than ``MIN_ITEMS_PER_CLASS`` items, and the MLP head only from
      ``MLP_MIN_ITEMS_PER_CLASS`` labelled items per class.
    - The chosen head's weight in the posteriors is its best one (the
      calibrated temperature) when that clearly beats 1 (``MIN_Z``), else 1.
    - Below ``MIN_ITEMS_PER_CLASS`` labelled items per class nothing is checked:
      the prototypes, weight 1. Above ``MAX_CHECK_ITEMS`` labelled items the
      check runs on that many of them.

    Returns
    -------
    ModelChoice
    """
    heads = AUTO_HEADS if head == "auto" else (head,)
    weights = FEATURE_WEIGHTS if feature_weight == "auto" else (float(feature_weight),)

    def keyed(values):
        return {f"{w:.4g}": float(v) for w, v in zip(weights, values)}

    head_nan = dict.fromkeys(heads, float("nan")) if head == "auto" else {}
    weight_nan = keyed([float("nan")] * len(weights)) if len(weights) > 1 else {}
    if len(heads) == 1 and len(weights) == 1:
        return ModelChoice(head, weights[0], {}, {})
    if _too_few_labelled(labels, n_classes):
        return ModelChoice(
            "prototype" if head == "auto" else head, 1.0, head_nan, weight_nan
        )
    if head == "auto" and _a_class_barely_named(labels, n_classes):
        heads = heads[:1]
    elif head == "auto" and (
        np.unique(labels.rows).size < MLP_MIN_ITEMS_PER_CLASS * n_classes
    ):
        heads = tuple(h for h in heads if h != "mlp")
    calibrated, weight_of, means, log_proba = {}, {}, {}, {}
    em_params = dict(em_params)
    n_items = len(U)
    U, triplets, em_params["weight"] = _check_sample(
        U, labels, seed, em_params.pop("weight", None)
    )
    for name in heads:
        S, log_proba[name] = held_out_label_score(
            U,
            triplets,
            n_classes,
            weights,
            n_folds=N_FOLDS,
            random_state=seed,
            return_log_proba=True,
            head=name,
            head_penalty=head_penalty,
            **em_params,
        )
        means[name] = S.mean(axis=0)
        best = int(np.argmax(means[name]))  # the calibrated temperature
        calibrated[name] = S[:, best]
        candidates = {weights[0]: S[:, 0], weights[best]: S[:, best]}
        weight_of[name] = choose_representation(candidates, weights[0], min_z=MIN_Z)
    chosen = choose_representation(calibrated, heads[0], min_z=MIN_Z)
    head_scores = (
        {h: float(v.mean()) for h, v in calibrated.items()} if head == "auto" else {}
    )
    weight_scores = keyed(means[chosen]) if len(weights) > 1 else {}
    weight = float(weight_of[chosen])
    # out-of-fold predictions: an item's own label does not inflate the
    # confidence of the features' prediction that is weighed against it
    held_out = log_proba[chosen] if weight < 1 and len(U) == n_items else None
    return ModelChoice(chosen, weight, head_scores, weight_scores, held_out)
