"""Simulated annotators: confusion-matrix generators and noisy labelling."""
# SPDX-License-Identifier: BSD-3-Clause

from __future__ import annotations

import numbers

import numpy as np
from sklearn.utils import check_random_state

#: Annotator types of the paper (expert, hammer, spammer; spec 4.2) and of its
#: appendix I.4 (pair-wise flipper, class-wise spammer).
ANNOTATOR_TYPES = (
    "expert",
    "hammer",
    "spammer",
    "pairwise_flipper",
    "classwise_spammer",
)

#: The paper's mixture of pseudo-annotators (Sec. 4.1): 10 % experts, 70 %
#: hammers, 20 % spammers; the default of every simulator in the package.
PAPER_MIXTURE = (0.1, 0.7, 0.2)
#: Expert and hammer accuracies are drawn from these ranges (ours; the paper's
#: appendix with its recipe was not available).
EXPERT_ACCURACY, HAMMER_ACCURACY = (0.9, 1.0), (0.5, 0.9)


def as_generator(random_state) -> np.random.Generator:
    """A :class:`numpy.random.Generator` from an int, RandomState, Generator or None.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_metaannot.crowd._annotators import as_generator
    >>> rng = as_generator(0)
    >>> isinstance(rng, np.random.Generator), as_generator(rng) is rng
    (True, True)
    """
    if isinstance(random_state, np.random.Generator):
        return random_state
    if random_state is None or isinstance(random_state, numbers.Integral):
        return np.random.default_rng(random_state)
    return np.random.default_rng(check_random_state(random_state).randint(2**31 - 1))


def _check_range(value, name):
    if isinstance(value, numbers.Real):
        value = (float(value), float(value))
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise TypeError(
            f"{name} must be a float or a (low, high) pair in [0, 1], got {value!r}"
        ) from None
    if not 0.0 <= lo <= hi <= 1.0:
        raise ValueError(f"{name} must satisfy 0 <= low <= high <= 1, got {value!r}")
    return lo, hi


def check_mixture(mixture) -> dict:
    """Validate an annotator mixture and return it as a normalised dict.

    Parameters
    ----------
    mixture : dict or sequence of 3 floats
        Probabilities of the annotator types. A sequence is read as
        (expert, hammer, spammer), the paper's order. A dict maps any of
        :data:`ANNOTATOR_TYPES` to a non-negative weight.

    Returns
    -------
    dict
        Type name to probability, summing to one.

    Examples
    --------
    >>> check_mixture((0.1, 0.7, 0.2))
    {'expert': 0.1, 'hammer': 0.7, 'spammer': 0.2}
    """
    if isinstance(mixture, dict):
        items = dict(mixture)
    else:
        try:
            values = [float(v) for v in mixture]
        except (TypeError, ValueError):
            raise TypeError(
                "annotator_mixture must be a dict {type: weight} or a sequence of 3 "
                f"weights (expert, hammer, spammer), got {mixture!r}"
            ) from None
        if len(values) != 3:
            raise ValueError(
                "annotator_mixture given as a sequence must have 3 weights "
                f"(expert, hammer, spammer), got {len(values)}"
            )
        items = dict(zip(("expert", "hammer", "spammer"), values))
    unknown = set(items) - set(ANNOTATOR_TYPES)
    if unknown:
        raise ValueError(
            f"annotator_mixture has unknown annotator types {sorted(unknown)}; "
            f"expected some of {list(ANNOTATOR_TYPES)}"
        )
    weights = np.array([float(v) for v in items.values()])
    if np.any(~np.isfinite(weights)) or np.any(weights < 0) or weights.sum() <= 0:
        raise ValueError(
            "annotator_mixture weights must be finite, non-negative and not all zero, "
            f"got {mixture!r}"
        )
    total = weights.sum()
    return {k: float(v / total) for k, v in items.items()}


class AnnotatorSimulator:
    """Draws annotators of given types and lets them label examples.

    Confusion matrices are returned with rows indexed by the true class and
    columns by the given label: ``A[k, l] = p(y = l | t = k)``.

    The paper does not give the confusion matrices of its annotator types;
    the accuracy ranges below are ours (spec 4.2) and are all parameters.

    Parameters
    ----------
    mixture : dict or sequence of 3 floats, default=(0.1, 0.7, 0.2)
        Probabilities of the annotator types, see :func:`check_mixture`.
    expert_accuracy : float or (float, float), default=(0.9, 1.0)
        Range of the diagonal of an expert's confusion matrix (uniform draw).
    hammer_accuracy : float or (float, float), default=(0.5, 0.9)
        Range of the diagonal of a hammer's confusion matrix.
    flipper_accuracy : float or (float, float), default=(0.5, 0.9)
        Probability that a pair-wise flipper gives the true label; otherwise it
        gives the label of the next class, ``(k + 1) mod K``.
    classwise_spam_fraction : float, default=0.5
        Fraction of classes on which a class-wise spammer answers uniformly at
        random (it is correct on the others).
    annotation_rate : float, default=1.0
        Probability that an annotator labels a given example (1.0: everyone labels
        everything, as in the paper's synthetic settings).

    See Also
    --------
    simulate_annotators : Simulate a crowd in one call.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_metaannot import AnnotatorSimulator
    >>> sim = AnnotatorSimulator({"expert": 1, "spammer": 1})
    >>> rng = np.random.default_rng(0)
    >>> types, confusions = sim.sample_confusions(4, 3, rng)
    >>> types
    ['spammer', 'expert', 'expert', 'expert']
    >>> confusions[0]  # a spammer answers uniformly at random
    array([[0.33333333, 0.33333333, 0.33333333],
           [0.33333333, 0.33333333, 0.33333333],
           [0.33333333, 0.33333333, 0.33333333]])
    >>> codes = sim.annotate_codes(np.array([0, 1, 2, 2]), confusions, rng)
    >>> codes.shape  # (n_samples, n_annotators)
    (4, 4)
    """

    def __init__(
        self,
        mixture=PAPER_MIXTURE,
        *,
        expert_accuracy=EXPERT_ACCURACY,
        hammer_accuracy=HAMMER_ACCURACY,
        flipper_accuracy=(0.5, 0.9),
        classwise_spam_fraction=0.5,
        annotation_rate=1.0,
    ):
        self.mixture = check_mixture(mixture)
        self.expert_accuracy = _check_range(expert_accuracy, "expert_accuracy")
        self.hammer_accuracy = _check_range(hammer_accuracy, "hammer_accuracy")
        self.flipper_accuracy = _check_range(flipper_accuracy, "flipper_accuracy")
        if not 0.0 <= classwise_spam_fraction <= 1.0:
            raise ValueError(
                "classwise_spam_fraction must be in [0, 1], "
                f"got {classwise_spam_fraction!r}"
            )
        self.classwise_spam_fraction = float(classwise_spam_fraction)
        if not 0.0 < annotation_rate <= 1.0:
            raise ValueError(
                f"annotation_rate must be in (0, 1], got {annotation_rate!r}"
            )
        self.annotation_rate = float(annotation_rate)
        self._types = list(self.mixture)
        self._probs = np.array([self.mixture[t] for t in self._types])

    def sample_types(self, n_annotators, rng):
        """Draw ``n_annotators`` annotator types from the mixture.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn_metaannot import AnnotatorSimulator
        >>> AnnotatorSimulator((0, 1, 0)).sample_types(2, np.random.default_rng(0))
        ['hammer', 'hammer']
        """
        idx = rng.choice(len(self._types), size=n_annotators, p=self._probs)
        return [self._types[i] for i in idx]

    def confusion_matrix(self, kind, n_classes, rng):
        """Confusion matrix (n_classes, n_classes) of one annotator of type ``kind``.

        Rows are the true classes: ``A[k, l] = p(y = l | t = k)``.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn_metaannot import AnnotatorSimulator
        >>> sim = AnnotatorSimulator(flipper_accuracy=0.8)
        >>> sim.confusion_matrix("pairwise_flipper", 3, np.random.default_rng(0))
        array([[0.8, 0.2, 0. ],
               [0. , 0.8, 0.2],
               [0.2, 0. , 0.8]])
        """
        K = n_classes
        if kind in ("expert", "hammer"):
            lo, hi = self.expert_accuracy if kind == "expert" else self.hammer_accuracy
            a = rng.uniform(lo, hi)
            off = (1.0 - a) / (K - 1) if K > 1 else 0.0
            return np.full((K, K), off) + (a - off) * np.eye(K)
        if kind == "spammer":
            return np.full((K, K), 1.0 / K)
        if kind == "pairwise_flipper":
            a = rng.uniform(*self.flipper_accuracy)
            A = a * np.eye(K)
            A[np.arange(K), (np.arange(K) + 1) % K] += 1.0 - a
            return A
        if kind == "classwise_spammer":
            A = np.eye(K)
            n_spam = int(round(self.classwise_spam_fraction * K))
            spam = rng.choice(K, size=n_spam, replace=False)
            A[spam] = 1.0 / K
            return A
        raise ValueError(f"unknown annotator type {kind!r}; expected {ANNOTATOR_TYPES}")

    def sample_confusions(self, n_annotators, n_classes, rng):
        """Draw annotators; returns (types, confusions of shape (R, K, K)).

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn_metaannot import AnnotatorSimulator
        >>> types, conf = AnnotatorSimulator().sample_confusions(
        ...     5, 4, np.random.default_rng(0))
        >>> len(types), conf.shape, np.allclose(conf.sum(axis=2), 1.0)
        (5, (5, 4, 4), True)
        """
        types = self.sample_types(n_annotators, rng)
        conf = np.stack([self.confusion_matrix(t, n_classes, rng) for t in types])
        return types, conf

    def annotate_codes(self, y, confusions, rng):
        """Noisy label codes (n, R) for true codes ``y``; ``-1`` marks no label.

        Every example keeps at least one label when ``annotation_rate < 1``.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn_metaannot import AnnotatorSimulator
        >>> sim = AnnotatorSimulator(annotation_rate=0.5)
        >>> rng = np.random.default_rng(0)
        >>> confusions = np.stack([np.eye(2)] * 3)  # three perfect annotators
        >>> codes = sim.annotate_codes(np.array([0, 1, 1, 0]), confusions, rng)
        >>> codes.shape, bool(((codes >= 0).sum(axis=1) >= 1).all())
        ((4, 3), True)
        >>> set(codes[codes >= 0].tolist()) <= {0, 1}
        True
        """
        y = np.asarray(y)
        n = y.shape[0]
        R, K, _ = confusions.shape
        # inverse-CDF sampling of y^r ~ Cat(A_r[t_n, :]) for all (n, r) at once
        cdf = np.cumsum(confusions[:, y, :], axis=-1)  # (R, n, K)
        u = rng.random((R, n, 1))
        codes = np.minimum((u > cdf).sum(axis=-1), K - 1).T  # (n, R)
        if self.annotation_rate < 1.0:
            keep = rng.random((n, R)) < self.annotation_rate
            nobody = ~keep.any(axis=1)
            keep[nobody, rng.integers(0, R, size=nobody.sum())] = True
            codes = np.where(keep, codes, -1)
        return codes.astype(np.int64)


def simulate_annotators(
    y,
    n_annotators=5,
    *,
    mixture=PAPER_MIXTURE,
    expert_accuracy=EXPERT_ACCURACY,
    hammer_accuracy=HAMMER_ACCURACY,
    flipper_accuracy=(0.5, 0.9),
    classwise_spam_fraction=0.5,
    annotation_rate=1.0,
    classes=None,
    random_state=None,
):
    """Simulate a crowd labelling examples whose true labels are ``y``.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        True labels.
    n_annotators : int, default=5
        Number of annotators R.
    mixture : dict or sequence of 3 floats, default=(0.1, 0.7, 0.2)
        Probabilities of the annotator types (expert, hammer, spammer) or a dict
        over :data:`ANNOTATOR_TYPES`.
    expert_accuracy, hammer_accuracy, flipper_accuracy, classwise_spam_fraction, \
annotation_rate
        See :class:`AnnotatorSimulator`.
    classes : array-like, optional
        Label set; defaults to the sorted unique values of ``y``.
    random_state : int, RandomState instance or None, default=None
        Seed of the simulation.

    Returns
    -------
    Y : ndarray of shape (n_samples, n_annotators)
        Noisy labels; float with ``np.nan`` for missing labels when the labels
        are numeric, object with ``None`` otherwise.
    confusions : ndarray of shape (n_annotators, n_classes, n_classes)
        True confusion matrices, ``confusions[r, k, l] = p(y^r = l | t = k)``.
    types : list of str
        Type of each annotator.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_metaannot import simulate_annotators
    >>> Y, conf, types = simulate_annotators(np.array([0, 1, 2, 1]), 3, random_state=0)
    >>> Y.shape, conf.shape
    ((4, 3), (3, 3, 3))
    """
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D true labels, got shape {y.shape}")
    if not isinstance(n_annotators, numbers.Integral) or n_annotators < 1:
        raise ValueError(f"n_annotators must be a positive int, got {n_annotators!r}")
    classes = np.unique(y) if classes is None else np.asarray(classes)
    codes_true = np.searchsorted(classes, y)
    if np.any(codes_true >= len(classes)) or np.any(classes[codes_true] != y):
        raise ValueError("y has labels that are not in classes")
    rng = as_generator(random_state)
    sim = AnnotatorSimulator(
        mixture,
        expert_accuracy=expert_accuracy,
        hammer_accuracy=hammer_accuracy,
        flipper_accuracy=flipper_accuracy,
        classwise_spam_fraction=classwise_spam_fraction,
        annotation_rate=annotation_rate,
    )
    types, conf = sim.sample_confusions(n_annotators, len(classes), rng)
    codes = sim.annotate_codes(codes_true, conf, rng)
    missing = codes < 0
    if classes.dtype.kind in "iufb":
        Y = classes[codes.clip(0)].astype(float)
        Y[missing] = np.nan
    else:
        Y = classes[codes.clip(0)].astype(object)
        Y[missing] = None
    return Y, conf, types
