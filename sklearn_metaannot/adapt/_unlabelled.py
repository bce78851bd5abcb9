"""Unlabelled items in ``fit``: which they are, and how much they count (the guard).

Items that no annotator labelled (rows of ``Y`` without a label and without a
gold label, and the rows of ``X_unlabelled``) enter the EM of a task with a
weight in its M-steps (:func:`~sklearn_metaannot.em._steps.m_step_sparse`): at 1 they
pull the prototypes like any item (semi-supervised EM), at 0 they count for
nothing and only receive a posterior. They help when they belong to the task's
classes and the features cluster by class; they hurt when they do not (items of
other classes, clusters that are not the classes).

With ``unlabelled_weight="auto"`` ``fit`` decides per task, from the crowd
labels alone, with the package's per-task check (:mod:`._representation`): the
held-out crowd agreement of the labelled items (same folds, ``MIN_Z`` and
chance floor as the choice of the latent space) when the unlabelled items
count, all of them at weight 1 or each by a distractor mask
(:func:`distractor_mask`), against when they do not. Leaving them out is the
default; a candidate replaces it only when the held-out labels clearly prefer
it. With few labelled items that check has little power: the guard then rather
leaves useful items out than lets harmful ones in.
"""
# SPDX-License-Identifier: BSD-3-Clause

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..crowd._labels import CrowdLabelMatrix
from ..em._steps import run_em_sparse
from ._representation import _clear_winner, _task_agreement

#: The candidates of the guard: the unlabelled items left out, all counted
#: (weight 1), or each weighed by its distractor mask.
CANDIDATES = ("none", "all", "masked")
#: The masked candidate needs the task's classes to hold at least this share
#: of the unlabelled items' mass (their mean mask): on LabelMe validation
#: tasks, pools of other classes only held 0.1 to 0.6 of it and, when the
#: held-out check let them in, cost 2 points; pools of the task's classes 0.5
#: to 0.9.
MIN_MASKED_MASS = 0.6
#: Distractor clusters per class of the mask.
DISTRACTORS_PER_CLASS = 2
#: Rounds of the masked soft k-means.
MASK_ITERATIONS = 5
#: Labelled items per class below which the guard does not check and leaves
#: the unlabelled items out.
MIN_ITEMS_PER_CLASS = 2


@dataclass(frozen=True)
class UnlabelledChoice:
    """How much the unlabelled items counted in ``fit``, and why
    (``unlabelled_choice_``).

    Attributes
    ----------
    weight : float
        The mean weight of the unlabelled items in the M-steps (0: left out,
        1: every one counted like a labelled item).
    candidate : str
        "none" (left out), "all" (every one at weight 1), "masked" (each
        weighed by its distractor mask, :func:`distractor_mask`) or "uniform"
        (the forced ``unlabelled_weight``).
    reason : str
        "no unlabelled items", "forced" (``unlabelled_weight`` is a number),
        "too few labelled items" (fewer than ``MIN_ITEMS_PER_CLASS`` labelled
        items per class: left out), "default held" (no candidate clearly beat
        leaving them out) or "held-out crowd labels" (one did, and was above
        chance).
    scores : dict of str to float
        Mean held-out agreement of the labelled items with each candidate,
        "none", "all" and "masked" (NaN where not computed: "masked" when the
        mask gave the task's classes less than ``MIN_MASKED_MASS`` of the
        items; empty unless the guard ran).
    n_unlabelled : int
        Number of unlabelled items (rows of ``Y`` without any label or gold
        label, plus the rows of ``X_unlabelled``).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_metaannot import MetaAnnotatorClassifier
    >>> X = np.array([[0.0], [0.2], [3.0], [3.2]])
    >>> Y = [[0, 0], [0, 1], [1, 1], [1, 1]]
    >>> clf = MetaAnnotatorClassifier().fit(X, Y, X_unlabelled=[[0.1], [3.1]])
    >>> choice = clf.unlabelled_choice_
    >>> choice.weight, choice.candidate, choice.reason, choice.n_unlabelled
    (0.0, 'none', 'default held', 2)
    >>> clf.sample_posterior_.shape  # the rows of X only
    (4, 2)
    """

    weight: float
    candidate: str
    reason: str
    scores: dict = field(default_factory=dict)
    n_unlabelled: int = 0


@dataclass(frozen=True)
class TaskItems:
    """The items of a task, labelled first.

    Attributes
    ----------
    order : ndarray of shape (n_items,)
        Row of ``vstack([X, X_unlabelled])`` of each item: the labelled items
        (a crowd label or a gold label), then the unlabelled ones, each in their
        order.
    n_labelled : int
    labels : CrowdLabelMatrix
        The crowd labels, rows in that order.
    gold : (ndarray, ndarray) or None
        The gold mask and one-hot rows in that order.
    """

    order: np.ndarray
    n_labelled: int
    labels: CrowdLabelMatrix
    gold: tuple | None

    @property
    def n_unlabelled(self):
        return len(self.order) - self.n_labelled

    def weights(self, weight):
        """One weight per item (1 for the labelled ones), or None when all are 1."""
        if weight == 1.0 or self.n_unlabelled == 0:
            return None
        w = np.ones(len(self.order))
        w[self.n_labelled :] = weight
        return w

    def restore(self, values, n_samples):
        """``values`` (one row per item, in ``order``) back in the rows of ``X``."""
        out = np.empty_like(values)
        out[self.order] = values
        return out[:n_samples]


def arrange(labels, gold, n_extra=0):
    """The :class:`TaskItems` of a task: ``labels`` over the rows of ``X``,
    ``gold`` (mask, one-hot) or None, and ``n_extra`` rows of ``X_unlabelled``
    after them."""
    n_samples = labels.n_samples
    labelled = np.zeros(n_samples + n_extra, dtype=bool)
    labelled[np.asarray(labels.rows)] = True
    if gold is not None:
        labelled[:n_samples] |= np.asarray(gold[0], dtype=bool)
    order = np.concatenate([np.flatnonzero(labelled), np.flatnonzero(~labelled)])
    position = np.empty_like(order)
    position[order] = np.arange(len(order))
    relabelled = CrowdLabelMatrix(
        position[np.asarray(labels.rows)],
        labels.cols,
        labels.codes,
        sample_ids=np.arange(len(order)),
        annotator_ids=labels.annotator_ids,
        classes=labels.classes,
    )
    if gold is not None:
        mask, one_hot = (np.asarray(a) for a in gold)
        pad = len(order) - n_samples
        mask = np.concatenate([mask, np.zeros(pad, dtype=bool)])[order]
        one_hot = np.concatenate([one_hot, np.zeros((pad, one_hot.shape[1]))])
        gold = (mask, one_hot[order].astype(np.asarray(gold[1]).dtype))
    return TaskItems(order, int(labelled.sum()), relabelled, gold)


def distractor_mask(U, items, n_classes, em_params, *, n_iter=MASK_ITERATIONS):
    """How surely each unlabelled item belongs to one of the task's classes.

    A masked soft k-means with distractor clusters (after Ren et al., 2018,
    "Meta-learning for semi-supervised few-shot classification"): the class
    prototypes of the labelled items' EM and ``DISTRACTORS_PER_CLASS * K``
    distractor prototypes, started at the unlabelled items farthest from
    every prototype, share the unlabelled items by the model's unit-variance
    Gaussians; the class prototypes keep their labelled items (with their EM
    posteriors), the distractors have none. Items of other classes gather in
    the distractors instead of pulling a class prototype.

    Returns
    -------
    ndarray of shape (n_unlabelled,)
        Each unlabelled item's posterior mass on the task's classes.
    """
    U = np.asarray(U, dtype=np.float64)
    n_lab, K = items.n_labelled, n_classes
    labels = items.labels
    res = run_em_sparse(
        torch.from_numpy(U[:n_lab]),
        *(
            torch.tensor(np.asarray(a), dtype=torch.int64)
            for a in (labels.rows, labels.cols, labels.codes)
        ),
        K,
        labels.n_annotators,
        **em_params,
    )
    lam, mu = res.lam.numpy(), res.mu.numpy()
    pool = U[n_lab:]
    sq_pool = (pool * pool).sum(axis=1)

    def sq_dist(P):
        return np.maximum(sq_pool[:, None] - 2 * pool @ P.T + (P * P).sum(axis=1), 0)

    # farthest-point starts: each distractor at the item farthest from the
    # prototypes and the distractors before it
    nearest = sq_dist(mu).min(axis=1)
    starts = []
    for _ in range(min(DISTRACTORS_PER_CLASS * K, len(pool))):
        j = int(np.argmax(nearest))
        starts.append(j)
        nearest = np.minimum(nearest, sq_dist(pool[j : j + 1])[:, 0])
    P = np.vstack([mu, pool[starts]])
    fixed_sum, fixed_n = lam.T @ U[:n_lab], lam.sum(axis=0)
    for _ in range(n_iter):
        logits = -0.5 * sq_dist(P)
        r = np.exp(logits - logits.max(axis=1, keepdims=True))
        r /= r.sum(axis=1, keepdims=True)
        total = r.T @ pool
        count = r.sum(axis=0)
        total[:K] += fixed_sum
        count[:K] += fixed_n
        P = np.where(
            count[:, None] > 1e-12, total / np.maximum(count, 1e-12)[:, None], P
        )
    return r[:, :K].sum(axis=1)


def decide_weight(mode, U, items, n_classes, *, em_params, seed, **model):
    """The weights of the unlabelled items of a task: the guard.

    Parameters
    ----------
    mode : "auto" or float
        The ``unlabelled_weight`` parameter; a number is used as given.
    U : ndarray of shape (n_items, M)
        Embeddings of the items in ``items.order``.
    items : TaskItems
    n_classes : int
    em_params : dict
        ``n_iter``, ``tau``, ``b``, ``c`` of the EM.
    seed : int or None
        Seed of the held-out folds (the same for every candidate).
    **model
        ``head`` and ``head_penalty`` of the fits that the check compares.

    Returns
    -------
    choice : UnlabelledChoice
    weights : ndarray of shape (n_items,) or None
        The weight of every item in the EM (None: all 1).
    """
    n = items.n_unlabelled
    if mode != "auto":
        weight = float(mode)
        reason = "forced" if n else "no unlabelled items"
        return UnlabelledChoice(weight, "uniform", reason, {}, n), items.weights(weight)
    if n == 0:
        return UnlabelledChoice(0.0, "none", "no unlabelled items", {}, 0), None
    labels = items.labels
    if np.unique(labels.rows).size < MIN_ITEMS_PER_CLASS * n_classes:
        means = dict.fromkeys(CANDIDATES, float("nan"))
        choice = UnlabelledChoice(0.0, "none", "too few labelled items", means, n)
        return choice, items.weights(0.0)
    masked = np.ones(len(items.order))
    masked[items.n_labelled :] = distractor_mask(U, items, n_classes, em_params)
    weights = {"none": items.weights(0.0), "all": None, "masked": masked}
    if masked[items.n_labelled :].mean() < MIN_MASKED_MASS:
        del weights["masked"]
    scores = {
        "none": _task_agreement(
            U[: items.n_labelled], labels, n_classes, seed, em_params, **model
        )
    }
    for name in ("all", "masked"):
        if name in weights:
            params = {**em_params, "weight": weights[name]}
            scores[name] = _task_agreement(U, labels, n_classes, seed, params, **model)
    chosen = _clear_winner(scores, "none", n_classes)
    means = dict.fromkeys(CANDIDATES, float("nan"))
    means.update({name: float(np.mean(v)) for name, v in scores.items()})
    if chosen == "none":
        choice = UnlabelledChoice(0.0, "none", "default held", means, n)
        return choice, weights["none"]
    w = weights[chosen]
    weight = 1.0 if w is None else float(w[items.n_labelled :].mean())
    choice = UnlabelledChoice(weight, chosen, "held-out crowd labels", means, n)
    return choice, w
