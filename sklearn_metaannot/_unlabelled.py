"""Unlabelled items in ``fit``: which they are, and how much they count (the guard).

Items that no annotator labelled (rows of ``Y`` without a label and without a
gold label, and the rows of ``X_unlabelled``) enter the EM of a task with a
weight in its M-steps (:func:`~sklearn_metaannot._em.m_step_sparse`): at 1 they
pull the prototypes like any item (semi-supervised EM), at 0 they count for
nothing and only receive a posterior. They help when they belong to the task's
classes and the features cluster by class; they hurt when they do not (items of
other classes, clusters that are not the classes).

With ``unlabelled_weight="auto"`` ``fit`` decides per task, from the crowd
labels alone, with the package's per-task check (:mod:`._representation`): the
held-out crowd agreement of the labelled items (same folds, ``MIN_Z`` and
chance floor as the choice of the latent space) when the unlabelled items
count at a candidate weight, against when they do not. Not using them is the
default; a weight replaces it only when the held-out labels clearly prefer it.
"""
# SPDX-License-Identifier: BSD-3-Clause

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ._crowd_labels import CrowdLabelMatrix
from ._representation import _clear_winner, _task_agreement, _too_few_labelled

#: The weights of the unlabelled items that the guard tries against 0.
CANDIDATE_WEIGHTS = (1.0,)


@dataclass(frozen=True)
class UnlabelledChoice:
    """How much the unlabelled items counted in ``fit``, and why
    (``unlabelled_choice_``).

    Attributes
    ----------
    weight : float
        The weight of every unlabelled item in the M-steps (0: left out).
    default : float
        The weight chosen without evidence: 0 with ``unlabelled_weight="auto"``,
        else the forced weight.
    reason : str
        "no unlabelled items", "forced" (``unlabelled_weight`` is a number),
        "too few labelled items" (fewer than two labelled items per class:
        the default), "default held" (no weight clearly beat it) or "held-out
        crowd labels" (a weight did, and was above chance).
    scores : dict of float to float
        Mean held-out agreement of the labelled items per weight (NaN where not
        computed; empty unless the guard checked or could not).
    n_unlabelled : int
        Number of unlabelled items (rows of ``Y`` without any label or gold
        label, plus the rows of ``X_unlabelled``).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_metaannot import MetaAnnotatorClassifier
    >>> X = np.array([[0.0], [0.2], [3.0], [3.2], [0.1]])
    >>> Y = [[0, 0], [0, 1], [1, 1], [1, 1], [np.nan, np.nan]]
    >>> choice = MetaAnnotatorClassifier().fit(X, Y).unlabelled_choice_
    >>> choice.weight, choice.reason, choice.n_unlabelled
    (0.0, 'too few labelled items', 1)
    """

    weight: float
    default: float
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


def decide_weight(mode, U, items, n_classes, *, em_params, seed, **model):
    """The weight of the unlabelled items of a task: the guard.

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
    UnlabelledChoice
    """
    n = items.n_unlabelled
    if mode != "auto":
        weight = float(mode)
        return UnlabelledChoice(
            weight, weight, "forced" if n else "no unlabelled items", {}, n
        )
    if n == 0:
        return UnlabelledChoice(0.0, 0.0, "no unlabelled items", {}, 0)
    weights = (0.0, *CANDIDATE_WEIGHTS)
    labels = items.labels
    # Below two labelled items per class a held-out item's class has no other
    # labelled item: without unlabelled items it cannot be predicted, which
    # favours any pool (on LabelMe validation tasks, checking at one item per
    # class let pools of other classes in and cost 1 point)
    if _too_few_labelled(labels, n_classes):
        means = dict.fromkeys(weights, float("nan"))
        return UnlabelledChoice(0.0, 0.0, "too few labelled items", means, n)
    scores = {
        0.0: _task_agreement(
            U[: items.n_labelled], labels, n_classes, seed, em_params, **model
        )
    }
    for w in CANDIDATE_WEIGHTS:
        params = {**em_params, "weight": items.weights(w)}
        scores[w] = _task_agreement(U, labels, n_classes, seed, params, **model)
    weight = float(_clear_winner(scores, 0.0, n_classes))
    reason = "default held" if weight == 0.0 else "held-out crowd labels"
    means = {w: float(np.mean(s)) for w, s in scores.items()}
    return UnlabelledChoice(weight, 0.0, reason, means, n)
