"""Episode sampling: N-way K-shot tasks with simulated annotators on the support set."""
# SPDX-License-Identifier: BSD-3-Clause

from __future__ import annotations

import numbers
from typing import NamedTuple

import numpy as np

from .crowd._annotators import AnnotatorSimulator, as_generator


class Episode(NamedTuple):
    """One few-shot task.

    Attributes
    ----------
    support_X : ndarray of shape (n_support, ...)
        The ``n_way * n_shot`` labelled examples, then the unlabelled ones
        (``n_unlabelled`` of each of the episode's classes and of each
        distractor class; none by default).
    support_y : ndarray of shape (n_support,)
        True class codes in ``[0, n_way)`` (hidden from the model at
        adaptation); ``-1`` for the examples of distractor classes.
    support_codes : ndarray of shape (n_support, n_annotators)
        Noisy label codes given by the simulated annotators, ``-1`` when missing
        (every column of an unlabelled example).
    query_X : ndarray of shape (n_way * n_query, ...)
    query_y : ndarray of shape (n_way * n_query,)
        True class codes of the query examples.
    classes : ndarray of shape (n_way,)
        The original labels of the episode's classes (code k is ``classes[k]``).
    confusions : ndarray of shape (n_annotators, n_way, n_way)
        Confusion matrices of the annotators, rows indexed by the true class.
    types : list of str
        Annotator types.

    See Also
    --------
    EpisodeSampler : Draws episodes from labelled data.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_metaannot import EpisodeSampler
    >>> X, y = np.arange(60.0).reshape(30, 2), np.repeat(["a", "b", "c"], 10)
    >>> episode = EpisodeSampler(X, y, n_way=2, n_shot=3, n_query=2,
    ...                          n_annotators=4, random_state=0).sample()
    >>> episode.support_codes.shape, episode.query_y.tolist()
    ((6, 4), [0, 0, 1, 1])
    >>> episode.classes.shape, len(episode.types)
    ((2,), 4)
    """

    support_X: np.ndarray
    support_y: np.ndarray
    support_codes: np.ndarray
    query_X: np.ndarray
    query_y: np.ndarray
    classes: np.ndarray
    confusions: np.ndarray
    types: list


def _check_int_or_range(value, name):
    """``(low, high)`` inclusive bounds of an int or an int range parameter."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        lo = hi = int(value)
    else:
        try:
            lo, hi = (int(v) for v in value)
        except (TypeError, ValueError):
            raise TypeError(
                f"{name} must be an int or a (low, high) pair of ints, got {value!r}"
            ) from None
    if not 1 <= lo <= hi:
        raise ValueError(f"{name} must be >= 1 with low <= high, got {value!r}")
    return lo, hi


class EpisodeSampler:
    """Sample N-way K-shot episodes with a simulated crowd from labelled data.

    Each episode draws ``n_way`` classes, ``n_shot`` support and ``n_query``
    query examples per class, draws ``n_annotators`` annotators from
    ``simulator`` and lets each of them label the support set (spec 4.2).

    With ``n_unlabelled``, the support also holds that many unlabelled examples
    of each of the episode's classes and of ``n_distractor_classes`` further
    classes, which the query never contains: the semi-supervised episodes of
    Ren et al. (2018, "Meta-learning for semi-supervised few-shot
    classification"), so that meta-training sees the unlabelled pools, clean or
    not, that ``fit(X, Y, X_unlabelled=...)`` meets.

    Parameters
    ----------
    X : ndarray of shape (n_samples, ...)
        Examples.
    y : array-like of shape (n_samples,)
        Clean labels.
    n_way : int, default=5
        Classes per episode.
    n_shot : int or (int, int), default=1
        Support examples per class, or an inclusive range to draw from per episode.
    n_query : int, default=10
        Query examples per class.
    n_annotators : int or (int, int), default=5
        Annotators per episode, or an inclusive range.
    simulator : AnnotatorSimulator, optional
        Annotator generator; the paper's (0.1, 0.7, 0.2) mixture by default.
    pseudo_annotation : bool, default=True
        If False, the support carries one annotator who always gives the true
        label (the clean episodes of the "w/o PA" ablation).
    n_unlabelled : int, default=0
        Unlabelled support examples per class (episode and distractor classes).
    n_distractor_classes : int, default=0
        Classes outside the episode's ``n_way`` whose examples join the
        unlabelled part of the support (needs ``n_unlabelled > 0``).
    random_state : int, Generator or None, default=None
        Seed of the sampler.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_metaannot.episodes import EpisodeSampler
    >>> rng = np.random.default_rng(0)
    >>> X, y = rng.normal(size=(120, 4)), np.repeat(np.arange(6), 20)
    >>> sampler = EpisodeSampler(X, y, n_way=3, n_shot=2, n_query=5,
    ...                          n_annotators=4, random_state=0)
    >>> ep = sampler.sample()
    >>> ep.support_X.shape, ep.support_codes.shape, ep.query_X.shape
    ((6, 4), (6, 4), (15, 4))

    Two unlabelled examples of each of the 3 classes and of 1 distractor class:

    >>> sampler = EpisodeSampler(X, y, n_way=3, n_shot=2, n_query=5,
    ...                          n_annotators=4, n_unlabelled=2,
    ...                          n_distractor_classes=1, random_state=0)
    >>> ep = sampler.sample()
    >>> ep.support_codes.shape, (ep.support_codes[6:] == -1).all()
    ((14, 4), np.True_)
    >>> ep.support_y[6:].tolist()  # true classes; -1: a distractor class
    [0, 0, 1, 1, 2, 2, -1, -1]
    """

    def __init__(
        self,
        X,
        y,
        *,
        n_way=5,
        n_shot=1,
        n_query=10,
        n_annotators=5,
        simulator=None,
        pseudo_annotation=True,
        n_unlabelled=0,
        n_distractor_classes=0,
        random_state=None,
    ):
        self.X = X
        self.y = np.asarray(y)
        if len(self.y) != len(X):
            raise ValueError(
                f"X and y have different numbers of samples: {len(X)} != {len(self.y)}"
            )
        self.n_way = int(n_way)
        self.shot_range = _check_int_or_range(n_shot, "n_shot")
        self.annotator_range = _check_int_or_range(n_annotators, "n_annotators")
        if not isinstance(n_query, numbers.Integral) or n_query < 1:
            raise ValueError(f"n_query must be a positive int, got {n_query!r}")
        self.n_query = int(n_query)
        self.simulator = AnnotatorSimulator() if simulator is None else simulator
        self.pseudo_annotation = bool(pseudo_annotation)
        for name, value in (
            ("n_unlabelled", n_unlabelled),
            ("n_distractor_classes", n_distractor_classes),
        ):
            if not isinstance(value, numbers.Integral) or value < 0:
                raise ValueError(f"{name} must be a non-negative int, got {value!r}")
        if n_distractor_classes and not n_unlabelled:
            raise ValueError(
                f"n_distractor_classes={n_distractor_classes} needs n_unlabelled > 0: "
                "distractor classes only contribute unlabelled examples"
            )
        self.n_unlabelled = int(n_unlabelled)
        self.n_distractor_classes = int(n_distractor_classes)
        self.rng = as_generator(random_state)

        self.classes, inverse = np.unique(self.y, return_inverse=True)
        if self.n_way < 2 or self.n_way > len(self.classes):
            raise ValueError(
                f"n_way={n_way} must be between 2 and the number of source classes "
                f"({len(self.classes)})"
            )
        if self.n_way + self.n_distractor_classes > len(self.classes):
            raise ValueError(
                f"n_way + n_distractor_classes = {self.n_way} + "
                f"{self.n_distractor_classes} exceeds the number of source classes "
                f"({len(self.classes)})"
            )
        self.class_indices = [
            np.flatnonzero(inverse == k) for k in range(len(self.classes))
        ]
        need = self.shot_range[1] + self.n_query + self.n_unlabelled
        terms = "n_shot + n_query" + (" + n_unlabelled" if self.n_unlabelled else "")
        small = [
            (c, len(idx))
            for c, idx in zip(np.asarray(self.classes).tolist(), self.class_indices)
            if len(idx) < need
        ]
        if small:
            raise ValueError(
                f"every source class needs at least {terms} = {need} examples; "
                f"classes with fewer (class, count): {small[:10]}"
            )

    @property
    def max_support_size(self):
        """Support size of an episode with the largest ``n_shot``.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn_metaannot import EpisodeSampler
        >>> X, y = np.zeros((80, 2)), np.repeat(np.arange(4), 20)
        >>> EpisodeSampler(X, y, n_way=3, n_shot=(1, 5), n_query=2).max_support_size
        15
        """
        n_unlabelled = (self.n_way + self.n_distractor_classes) * self.n_unlabelled
        return self.n_way * self.shot_range[1] + n_unlabelled

    @property
    def max_annotators(self):
        """Largest number of annotators of an episode.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn_metaannot import EpisodeSampler
        >>> X, y = np.zeros((80, 2)), np.repeat(np.arange(4), 20)
        >>> EpisodeSampler(X, y, n_way=3, n_annotators=(3, 7)).max_annotators
        7
        """
        return self.annotator_range[1] if self.pseudo_annotation else 1

    def sample(self, rng=None) -> Episode:
        """Draw one episode (from ``rng`` if given, else from the sampler's own).

        Parameters
        ----------
        rng : numpy.random.Generator, default=None
            Random generator; the sampler's own by default.

        Returns
        -------
        Episode

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn_metaannot import EpisodeSampler
        >>> X, y = np.zeros((80, 2)), np.repeat(np.arange(4), 20)
        >>> sampler = EpisodeSampler(X, y, n_way=2, n_shot=1, n_annotators=3)
        >>> a = sampler.sample(np.random.default_rng(1))
        >>> b = sampler.sample(np.random.default_rng(1))
        >>> bool((a.classes == b.classes).all())  # the same generator state
        True
        """
        rng = self.rng if rng is None else rng
        n_shot = int(rng.integers(self.shot_range[0], self.shot_range[1] + 1))
        n_drawn = self.n_way + self.n_distractor_classes
        chosen = rng.choice(len(self.classes), size=n_drawn, replace=False)
        chosen, distractors = chosen[: self.n_way], chosen[self.n_way :]
        support, query, unlabelled = [], [], []
        for k in chosen:
            n = n_shot + self.n_query + self.n_unlabelled
            idx = rng.choice(self.class_indices[k], size=n, replace=False)
            support.append(idx[:n_shot])
            query.append(idx[n_shot : n_shot + self.n_query])
            unlabelled.append(idx[n_shot + self.n_query :])
        for k in distractors:
            idx = self.class_indices[k]
            unlabelled.append(rng.choice(idx, size=self.n_unlabelled, replace=False))
        support_y = np.repeat(np.arange(self.n_way), n_shot)
        query_y = np.repeat(np.arange(self.n_way), self.n_query)
        if self.pseudo_annotation:
            R = int(rng.integers(self.annotator_range[0], self.annotator_range[1] + 1))
            types, conf = self.simulator.sample_confusions(R, self.n_way, rng)
            codes = self.simulator.annotate_codes(support_y, conf, rng)
        else:
            types, conf = ["oracle"], np.eye(self.n_way)[None]
            codes = support_y[:, None].copy()
        if self.n_unlabelled:
            truth = np.r_[np.arange(self.n_way), np.full(len(distractors), -1)]
            support_y = np.r_[support_y, np.repeat(truth, self.n_unlabelled)]
            missing = np.full((len(support_y) - len(codes), codes.shape[1]), -1)
            codes = np.concatenate([codes, missing.astype(codes.dtype)])
            support.extend(unlabelled)
        return Episode(
            support_X=self.X[np.concatenate(support)],
            support_y=support_y,
            support_codes=codes,
            query_X=self.X[np.concatenate(query)],
            query_y=query_y,
            classes=self.classes[chosen],
            confusions=conf,
            types=types,
        )

    def __iter__(self):
        while True:
            yield self.sample()


def pad_episode(episode: Episode, n_support: int, n_annotators: int) -> dict:
    """Pad an episode to fixed sizes so that episodes stack into a batch.

    Returns a dict with ``support_X`` (n_support, ...) float32, ``support_codes``
    (n_support, n_annotators) int64 (``-1`` for padding), ``support_mask``
    (n_support,) float32, ``query_X`` float32 and ``n_classes`` (the episode's
    number of classes, int64).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_metaannot import EpisodeSampler
    >>> from sklearn_metaannot.episodes import pad_episode
    >>> X, y = np.zeros((80, 2)), np.repeat(np.arange(4), 20)
    >>> episode = EpisodeSampler(X, y, n_way=2, n_shot=1, n_annotators=3,
    ...                          random_state=0).sample()
    >>> padded = pad_episode(episode, n_support=4, n_annotators=5)
    >>> padded["support_codes"].shape, padded["support_mask"].tolist()
    ((4, 5), [1.0, 1.0, 0.0, 0.0])
    """
    n, R = episode.support_codes.shape
    X = np.zeros((n_support, *episode.support_X.shape[1:]), dtype=np.float32)
    X[:n] = episode.support_X
    codes = np.full((n_support, n_annotators), -1, dtype=np.int64)
    codes[:n, :R] = episode.support_codes
    mask = np.zeros(n_support, dtype=np.float32)
    mask[:n] = 1.0
    return {
        "support_X": X,
        "support_codes": codes,
        "support_mask": mask,
        "query_X": np.asarray(episode.query_X, dtype=np.float32),
        "n_classes": np.int64(len(episode.classes)),
    }


def collate_episodes(items):
    """Stack ``(padded episode, query_y)`` pairs into a batch of tensors.

    The same batch as ``torch.utils.data.default_collate`` (a list of the dict
    of stacked arrays and the stacked query labels) with one ``np.stack`` per
    key instead of one tensor per episode and key.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_metaannot import EpisodeSampler
    >>> from sklearn_metaannot.episodes import collate_episodes, pad_episode
    >>> X, y = np.zeros((80, 2)), np.repeat(np.arange(4), 20)
    >>> sampler = EpisodeSampler(X, y, n_way=2, n_shot=1, n_annotators=3,
    ...                          random_state=0)
    >>> items = [(pad_episode(ep, 2, 3), ep.query_y)
    ...          for ep in (sampler.sample(), sampler.sample())]
    >>> X_batch, y_batch = collate_episodes(items)
    >>> tuple(X_batch["support_codes"].shape), tuple(y_batch.shape)
    ((2, 2, 3), (2, 20))
    """
    import torch

    keys = items[0][0].keys()
    X = {k: torch.from_numpy(np.stack([item[0][k] for item in items])) for k in keys}
    return [X, torch.from_numpy(np.stack([item[1] for item in items]))]
