"""Label aggregation without features: majority vote and Dawid-Skene EM."""
# SPDX-License-Identifier: BSD-3-Clause

from __future__ import annotations

import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from .crowd._labels import CrowdLabelMatrix, _argmax_tie_break, _decode, _lookup

__all__ = ["DawidSkene", "MajorityVote"]

# Floor of the probabilities whose logarithm is taken (smoothing=0 may give zeros).
_TINY = np.finfo(np.float64).tiny


def _row_max(a):
    """Maximum of each row of a 2-D array, shape (n, 1).

    numpy reduces over a short last axis one row at a time; a loop over the
    few columns is tens of times faster for (n_samples, n_classes) arrays.
    """
    out = a[:, 0].copy()
    for j in range(1, a.shape[1]):
        np.maximum(out, a[:, j], out=out)
    return out[:, None]


def _row_sum(a):
    """Sum of each row of a 2-D array, shape (n, 1) (a matrix-vector product)."""
    return (a @ np.ones(a.shape[1]))[:, None]


def _check_labels(Y):
    labels = CrowdLabelMatrix.from_any(Y)
    if labels.n_classes == 0:
        raise ValueError(
            "Y holds no label at all (and no classes were declared); nothing to "
            "aggregate"
        )
    return labels


def _vote_fractions(counts):
    """Rows of ``counts`` normalised to sum to 1; uniform for all-zero rows."""
    totals = _row_sum(counts)
    out = np.full_like(counts, 1.0 / counts.shape[1])
    np.divide(counts, totals, out=out, where=totals > 0)
    return out


class MajorityVote(BaseEstimator):
    """Aggregate crowd labels by majority vote.

    Parameters
    ----------
    tie_break : {"random", "first"}, default="random"
        Among classes tied for the most votes, pick one uniformly at random or
        the first in ``classes_`` order.
    random_state : int, RandomState instance or None, default=None
        Seed of the random tie-breaking.

    Attributes
    ----------
    labels_ : ndarray of shape (n_samples,)
        Voted label of each sample. Samples without labels get NaN (numeric
        classes) or None (other classes).
    probas_ : ndarray of shape (n_samples, n_classes)
        Vote fractions; uniform for samples without labels.
    classes_ : ndarray of shape (n_classes,)
        Label values, the columns of ``probas_``.

    See Also
    --------
    DawidSkene : Weighs annotators by their estimated confusion matrices.
    CrowdLabelMatrix.majority_vote : The same vote, without an estimator.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_metaannot.aggregation import MajorityVote
    >>> Y = np.array([[0, 1, 1], [2, 2, np.nan], [np.nan, 0, np.nan]])
    >>> mv = MajorityVote().fit(Y)
    >>> mv.labels_
    array([1., 2., 0.])
    >>> mv.probas_.round(2)
    array([[0.33, 0.67, 0.  ],
           [0.  , 0.  , 1.  ],
           [1.  , 0.  , 0.  ]])
    """

    _parameter_constraints: dict = {
        "tie_break": [StrOptions({"random", "first"})],
        "random_state": ["random_state"],
    }

    def __init__(self, tie_break="random", random_state=None):
        self.tie_break = tie_break
        self.random_state = random_state

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, Y, y=None):
        """Vote.

        Parameters
        ----------
        Y : CrowdLabelMatrix, array-like of shape (n_samples, n_annotators), \
sparse matrix or pandas DataFrame
            Annotations, anything :meth:`CrowdLabelMatrix.from_any` accepts.
        y : None
            Ignored.

        Returns
        -------
        self : MajorityVote

        Examples
        --------
        >>> import pandas as pd
        >>> from sklearn_metaannot.aggregation import MajorityVote
        >>> df = pd.DataFrame({"task": ["t1", "t1", "t1", "t2", "t2"],
        ...                    "worker": ["w1", "w2", "w3", "w1", "w3"],
        ...                    "label": ["cat", "dog", "cat", "dog", "dog"]})
        >>> mv = MajorityVote().fit(df)  # crowd-kit's long format
        >>> mv.labels_
        array(['cat', 'dog'], dtype=object)
        >>> mv.probas_.round(2)  # vote fractions over classes_ ('cat', 'dog')
        array([[0.67, 0.33],
               [0.  , 1.  ]])
        """
        labels = _check_labels(Y)
        counts = labels.vote_counts()
        codes = _argmax_tie_break(counts, self.tie_break, self.random_state)
        codes[_row_sum(counts)[:, 0] == 0] = -1
        self.classes_ = labels.classes
        self.probas_ = _vote_fractions(counts)
        self.labels_ = _decode(codes, labels.classes)
        return self

    def fit_predict(self, Y, y=None):
        """Vote and return the voted labels.

        Parameters
        ----------
        Y : CrowdLabelMatrix, array-like, sparse matrix or pandas DataFrame
            Annotations.
        y : None
            Ignored.

        Returns
        -------
        ndarray of shape (n_samples,)
            ``labels_``.

        Examples
        --------
        >>> from sklearn_metaannot.aggregation import MajorityVote
        >>> MajorityVote().fit_predict([["a", "b", "b"], ["c", "c", None]])
        array(['b', 'c'], dtype=object)
        """
        return self.fit(Y).labels_

    def predict_proba(self, Y):
        """Vote fractions of ``Y``, without changing the fitted state.

        Majority vote is transductive: this only aligns the columns with
        ``classes_`` when the estimator is fitted (labels of ``Y`` outside
        ``classes_`` raise a ValueError); unfitted, the columns are the classes
        of ``Y``.

        Parameters
        ----------
        Y : CrowdLabelMatrix, array-like, sparse matrix or pandas DataFrame
            Annotations.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Vote fractions; uniform for samples without labels.

        Examples
        --------
        >>> from sklearn_metaannot.aggregation import MajorityVote
        >>> mv = MajorityVote().fit([[0, 1], [2, 2]])
        >>> mv.predict_proba([[1, 1], [0, None]])
        array([[0., 1., 0.],
               [1., 0., 0.]])
        """
        labels = _check_labels(Y)
        if not hasattr(self, "classes_"):
            return _vote_fractions(labels.vote_counts())
        remap = _lookup(labels.classes, self.classes_, "Y", "classes_")
        k = len(self.classes_)
        counts = np.bincount(
            labels.rows * k + remap[labels.codes], minlength=labels.n_samples * k
        ).reshape(labels.n_samples, k)
        return _vote_fractions(counts.astype(np.float64))


class DawidSkene(BaseEstimator):
    """Dawid-Skene aggregation: EM over true labels and annotator confusions.

    Every annotator ``j`` has a confusion matrix ``confusions_[j, k, l]``, the
    probability of answering ``l`` when the true class is ``k``; true classes
    follow ``priors_``. EM alternates posteriors of the true labels (E-step)
    and maximum a posteriori confusions and priors (M-step), vectorised over
    the annotations with sparse products, so it scales to millions of labels.

    Parameters
    ----------
    n_iter : int, default=100
        Maximum number of EM iterations.
    tol : float, default=1e-5
        Stop when the log-likelihood per annotation improves by ``tol`` or less
        (``tol=0``: as soon as it stops increasing).
    smoothing : float, default=0.01
        Pseudo-count added to every confusion-matrix cell and every class count
        in the M-step (a symmetric Dirichlet prior): keeps the probabilities
        positive for annotators with few labels. 0 gives plain maximum
        likelihood.
    init : "majority_vote" or array-like of shape (n_samples, n_classes), \
default="majority_vote"
        Initial posteriors: the vote fractions, or given (row-normalised)
        values, e.g. a classifier's probabilities.
    tie_break : {"random", "first"}, default="random"
        How ``labels_`` breaks ties between equally probable classes.
    random_state : int, RandomState instance or None, default=None
        Seed of the random tie-breaking.

    Attributes
    ----------
    labels_ : ndarray of shape (n_samples,)
        Most probable label of each sample. Samples without labels get NaN
        (numeric classes) or None (other classes), as with
        :class:`MajorityVote`.
    probas_ : ndarray of shape (n_samples, n_classes)
        Posterior of the true labels; the class prior for samples without
        labels.
    priors_ : ndarray of shape (n_classes,)
        Class prior, estimated on the labelled samples.
    confusions_ : ndarray of shape (n_annotators, n_classes, n_classes)
        ``confusions_[j, k, l] = P(annotator j answers classes_[l] | true class
        classes_[k])``; rows (true class) sum to 1. Annotators without labels
        get uniform rows.
    classes_ : ndarray of shape (n_classes,)
        Label values.
    annotator_ids_ : ndarray of shape (n_annotators,)
        Annotator of each confusion matrix.
    n_iter_ : int
        Number of EM iterations run.
    log_likelihood_ : float
        Log-likelihood of the annotations per annotation at the last E-step.

    See Also
    --------
    MajorityVote : The unweighted vote used as initialisation.

    Notes
    -----
    A. P. Dawid and A. M. Skene, "Maximum likelihood estimation of observer
    error-rates using the EM algorithm", Applied Statistics 28(1), 1979.
    With ``smoothing=0`` the updates match crowd-kit's ``DawidSkene``, whose
    ``errors_.loc[(worker, observed), true]`` is ``confusions_[j, true,
    observed]``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_metaannot.aggregation import DawidSkene
    >>> Y = np.array([[0, 0, 1], [1, 1, 0], [0, 0, 1], [1, 1, 0], [0, 1, 1]])
    >>> ds = DawidSkene(random_state=0).fit(Y)
    >>> ds.labels_  # in the last row the flipper's 1 outweighs the 0-1 split
    array([0, 1, 0, 1, 0])
    >>> ds.confusions_.shape
    (3, 2, 2)
    >>> ds.confusions_[2].round(2)  # the third annotator flips labels
    array([[0., 1.],
           [1., 0.]])
    """

    _parameter_constraints: dict = {
        "n_iter": [Interval(Integral, 0, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "smoothing": [Interval(Real, 0, None, closed="left")],
        "init": [StrOptions({"majority_vote"}), "array-like"],
        "tie_break": [StrOptions({"random", "first"})],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        n_iter=100,
        tol=1e-5,
        smoothing=0.01,
        init="majority_vote",
        tie_break="random",
        random_state=None,
    ):
        self.n_iter = n_iter
        self.tol = tol
        self.smoothing = smoothing
        self.init = init
        self.tie_break = tie_break
        self.random_state = random_state

    def _initial_posteriors(self, labels):
        shape = (labels.n_samples, labels.n_classes)
        if isinstance(self.init, str):
            return _vote_fractions(labels.vote_counts())
        init = np.asarray(self.init, dtype=np.float64)
        if init.shape != shape:
            raise ValueError(
                f"init must have shape (n_samples, n_classes) = {shape}, got "
                f"{init.shape}"
            )
        if not np.all(np.isfinite(init)) or (init < 0).any():
            raise ValueError("init must hold finite non-negative probabilities")
        return _vote_fractions(init)

    def _m_step(self, post, labels, labelled):
        """Priors and confusions from posteriors ``post`` (n_samples, K).

        ``labelled`` is 1.0 for the samples with at least one label, else 0.0.
        """
        k = post.shape[1]
        a = self.smoothing
        priors = labelled @ post + a  # class totals over the labelled samples
        priors /= priors.sum()
        confusions = labels.expected_counts(post) + a  # [j, true k, observed l]
        totals = confusions.sum(axis=2, keepdims=True)
        np.divide(confusions, totals, out=confusions, where=totals > 0)
        confusions[np.broadcast_to(totals == 0, confusions.shape)] = 1.0 / k
        return priors, confusions

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, Y, y=None):
        """Run EM.

        Parameters
        ----------
        Y : CrowdLabelMatrix, array-like of shape (n_samples, n_annotators), \
sparse matrix or pandas DataFrame
            Annotations, anything :meth:`CrowdLabelMatrix.from_any` accepts.
        y : None
            Ignored.

        Returns
        -------
        self : DawidSkene

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn_metaannot.aggregation import DawidSkene
        >>> Y = np.array([[0, 0, 1], [1, 1, 0], [0, 0, 0], [1, 1, np.nan]])
        >>> ds = DawidSkene().fit(Y)
        >>> ds.labels_, ds.n_iter_ < ds.n_iter
        (array([0., 1., 0., 1.]), True)
        >>> ds.confusions_.shape  # (annotators, true class, given label)
        (3, 2, 2)
        """
        labels = _check_labels(Y)
        n, m, k = labels.n_samples, labels.n_annotators, labels.n_classes
        n_labels = max(labels.n_labels, 1)
        # votes[(j, l), i] = 1 when annotator j answered l on sample i: every
        # M-step sum over annotations is votes @ post and every E-step sum is
        # votes.T @ log-confusions (sparse products, no loop over items/workers)
        votes_t = labels.vote_matrix().T.tocsr()
        labelled = np.bincount(labels.rows, minlength=n) > 0
        labelled_weight = labelled.astype(np.float64)

        post = self._initial_posteriors(labels)
        priors, confusions = self._m_step(post, labels, labelled_weight)
        log_lik = -np.inf
        converged = self.n_iter == 0
        n_done = 0
        for n_done in range(1, self.n_iter + 1):
            if n_done > 1:
                priors, confusions = self._m_step(post, labels, labelled_weight)
            # E-step in log space: a product of many probabilities underflows,
            # so sum logs and subtract the row max before exponentiating
            log_conf = np.log(np.maximum(confusions, _TINY))
            log_conf = log_conf.transpose(0, 2, 1).reshape(m * k, k)  # [(j, l), k]
            log_post = np.log(np.maximum(priors, _TINY)) + votes_t @ log_conf
            row_max = _row_max(log_post)
            post = np.exp(log_post - row_max)
            row_sum = _row_sum(post)
            post /= row_sum
            log_norm = (row_max + np.log(row_sum))[:, 0]
            new_log_lik = float(labelled_weight @ log_norm / n_labels)
            if new_log_lik - log_lik <= self.tol:
                log_lik = new_log_lik
                converged = True
                break
            log_lik = new_log_lik
        if not converged:
            warnings.warn(
                f"DawidSkene did not converge in n_iter={self.n_iter} iterations "
                f"(tol={self.tol}); increase n_iter",
                ConvergenceWarning,
                stacklevel=3,  # past the _fit_context wrapper, to the caller
            )
        codes = _argmax_tie_break(post, self.tie_break, self.random_state)
        codes[~labelled] = -1
        self.classes_ = labels.classes
        self.annotator_ids_ = labels.annotator_ids
        self.probas_ = post
        self.priors_ = priors
        self.confusions_ = confusions
        self.labels_ = _decode(codes, labels.classes)
        self.n_iter_ = n_done
        self.log_likelihood_ = log_lik
        return self

    def fit_predict(self, Y, y=None):
        """Run EM and return the most probable labels.

        Parameters
        ----------
        Y : CrowdLabelMatrix, array-like, sparse matrix or pandas DataFrame
            Annotations.
        y : None
            Ignored.

        Returns
        -------
        ndarray of shape (n_samples,)
            ``labels_``.

        Examples
        --------
        >>> from sklearn_metaannot.aggregation import DawidSkene
        >>> DawidSkene(random_state=0).fit_predict([["a", "a"], ["b", "b"]])
        array(['a', 'b'], dtype='<U1')
        """
        return self.fit(Y).labels_

    def predict_proba(self, Y):
        """Posteriors of the true labels of ``Y`` under the fitted model.

        One E-step with the fitted ``priors_`` and ``confusions_``; ``Y`` must
        have the annotators of the fitted data, in the same order, and labels
        in ``classes_``.

        Parameters
        ----------
        Y : CrowdLabelMatrix, array-like, sparse matrix or pandas DataFrame
            Annotations of (possibly new) samples.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn_metaannot.aggregation import DawidSkene
        >>> Y = np.array([[0, 0, 1], [1, 1, 0], [0, 0, 1], [1, 1, 0]])
        >>> ds = DawidSkene(random_state=0).fit(Y)
        >>> ds.predict_proba([[np.nan, np.nan, 1]]).round(2)  # the flipper says 1
        array([[1., 0.]])
        """
        check_is_fitted(self)
        labels = CrowdLabelMatrix.from_any(Y)
        m, k = self.confusions_.shape[:2]
        if labels.n_annotators != m:
            raise ValueError(
                f"Y has {labels.n_annotators} annotators but DawidSkene was fitted "
                f"on {m}"
            )
        remap = _lookup(labels.classes, self.classes_, "Y", "classes_")
        log_conf = np.log(np.maximum(self.confusions_, _TINY))
        # log-space sum of the annotations' log-probabilities (see fit)
        log_post = np.log(np.maximum(self.priors_, _TINY)) + np.zeros(
            (labels.n_samples, k)
        )
        np.add.at(log_post, labels.rows, log_conf[labels.cols, :, remap[labels.codes]])
        log_post -= _row_max(log_post)
        post = np.exp(log_post)
        return post / _row_sum(post)
