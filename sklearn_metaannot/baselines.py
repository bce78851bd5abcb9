"""Baselines of the paper: aggregate-then-classify, prototypes and the crowd layer."""
# SPDX-License-Identifier: BSD-3-Clause

# The baselines of Kumagai et al. (2025), Sec. 5.3 / spec 5.3, as scikit-learn
# estimators that take a crowd label matrix ``Y`` (n_samples, n_annotators) in
# ``fit``, exactly as :class:`MetaAnnotatorClassifier` does:
#
# - LRMV, LRDS, RFMV, RFDS  = AggregateThenClassify(MajorityVote() or DawidSkene(),
#                             LogisticRegression / RandomForest on standardised pixels)
# - PrMV, PrDS              = PrototypeClassifier(encoder=<ProtoNet encoder>, ...)
# - CL                      = CrowdLayerClassifier(encoder=None)
# - MCL                     = CrowdLayerClassifier(encoder=<ProtoNet encoder>)

from __future__ import annotations

import copy
import numbers
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context, clone
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import nn

from .aggregation import MajorityVote
from .crowd._labels import CrowdLabelMatrix
from .crowd._validation import check_crowd_labels, flatten_samples
from .em._proba import LogProbaClassifierMixin

__all__ = ["AggregateThenClassify", "CrowdLayerClassifier", "PrototypeClassifier"]


# -- helpers shared by the baselines -------------------------------------------


def _check_X(estimator, X, *, reset):
    X, _ = flatten_samples(X)
    return validate_data(estimator, X, reset=reset, dtype=[np.float64, np.float32])


def _resolve_encoder(encoder):
    """The object whose ``transform`` embeds flat inputs, or None.

    Accepts None, a :class:`~sklearn_metaannot.FittedEncoder` (or any object with a
    ``transform`` method) or a meta-fitted :class:`MetaAnnotatorClassifier` (its
    ``meta_encoder_`` is used).
    """
    if encoder is None:
        return None
    if hasattr(encoder, "meta_encoder_"):
        return encoder.meta_encoder_
    if callable(getattr(encoder, "transform", None)):
        return encoder
    if hasattr(encoder, "meta_fit"):
        raise ValueError(
            "encoder is a MetaAnnotatorClassifier that was not meta-fitted: call "
            "meta_fit first, or pass its meta_encoder_"
        )
    raise TypeError(
        "encoder must be None, a FittedEncoder (any object with a transform method) "
        f"or a meta-fitted MetaAnnotatorClassifier, got {type(encoder).__name__}"
    )


def _check_encoder_features(encoder, n_features):
    expected = getattr(encoder, "n_features_in", None)
    if expected is not None and int(expected) != n_features:
        raise ValueError(
            f"X has {n_features} features, but the encoder expects {expected}"
        )


def _crowd_matrix(codes, n_classes):
    """A CrowdLabelMatrix whose classes are the codes ``0 .. n_classes - 1``."""
    dense = codes.astype(float)
    dense[codes < 0] = np.nan
    return CrowdLabelMatrix.from_dense(dense, classes=np.arange(n_classes))


def _aggregate(aggregator, codes, n_classes):
    """Fit a clone of ``aggregator``; its posteriors as an (n, n_classes) array."""
    agg = clone(aggregator).fit(_crowd_matrix(codes, n_classes))
    probas = np.asarray(agg.probas_, dtype=np.float64)
    agg_codes = np.asarray(agg.classes_).astype(np.int64)
    out = np.zeros((codes.shape[0], n_classes))
    out[:, agg_codes] = probas
    return agg, out


def _hard_labels(probas, rng):
    """Argmax of each row, ties broken at random (codes)."""
    scores = probas + 1e-12 * rng.random(probas.shape)
    best = probas.max(axis=1, keepdims=True)
    scores = np.where(np.isclose(probas, best, rtol=0, atol=1e-12), scores, -np.inf)
    return np.argmax(scores, axis=1)


def _seed_params(estimator, seed):
    """Set the None ``random_state`` parameters of ``estimator`` to ``seed``."""
    params = estimator.get_params(deep=True)
    fixed = {
        key: seed
        for key, value in params.items()
        if (key == "random_state" or key.endswith("__random_state")) and value is None
    }
    if fixed:
        estimator.set_params(**fixed)
    return estimator


def _standardise(X):
    mean = X.mean(axis=0)
    scale = X.std(axis=0)
    scale[scale == 0] = 1.0
    return mean, scale


# -- aggregate, then classify --------------------------------------------------


class AggregateThenClassify(ClassifierMixin, BaseEstimator):
    """Aggregate the annotators' labels, then train an ordinary classifier on them.

    The two-stage baselines of the paper (LRMV, LRDS, RFMV, RFDS): the labels of
    every training example are aggregated without the features (majority vote
    or Dawid-Skene), turned into one hard label per example, and any
    scikit-learn classifier is trained on ``(X, labels)``.

    Parameters
    ----------
    aggregator : estimator, default=None
        Label aggregator with ``fit(Y)``, ``probas_`` and ``classes_``, such as
        :class:`~sklearn_metaannot.MajorityVote` (the default) or
        :class:`~sklearn_metaannot.DawidSkene`. It is cloned.
    classifier : estimator, default=None
        Classifier trained on the aggregated labels; cloned. Defaults to
        ``make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))``.
    random_state : int, RandomState instance or None, default=None
        Breaks ties of the aggregated posteriors (e.g. a 2-2 vote), and seeds every
        ``random_state`` parameter of the classifier that is None.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Labels seen in ``Y``.
    aggregator_ : estimator
        The fitted aggregator.
    sample_posterior_ : ndarray of shape (n_samples, n_classes)
        Aggregated label distribution of each training example.
    labels_ : ndarray of shape (n_samples,)
        Aggregated hard label of each training example (the classifier's target).
    classifier_ : estimator or None
        The fitted classifier; None when every aggregated label is the same class
        (then that class is always predicted).
    n_features_in_ : int
        Number of features of ``X``.

    See Also
    --------
    PrototypeClassifier : Prototypes in a meta-learned space from aggregated labels.
    CrowdLayerClassifier : A network trained end to end on the raw annotations.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.ensemble import RandomForestClassifier
    >>> from sklearn_metaannot import DawidSkene, simulate_annotators
    >>> from sklearn_metaannot.baselines import AggregateThenClassify
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([0, 1, 2], 20)
    >>> X = rng.normal(size=(60, 5)) + 3 * np.eye(5)[y]
    >>> Y, _, _ = simulate_annotators(y, 5, random_state=0)
    >>> lrds = AggregateThenClassify(DawidSkene(), random_state=0).fit(X, Y)
    >>> float(lrds.score(X, y)) > 0.9
    True
    >>> rfmv = AggregateThenClassify(classifier=RandomForestClassifier(n_estimators=20),
    ...                              random_state=0).fit(X, Y)
    >>> rfmv.predict_proba(X[:2]).shape
    (2, 3)
    """

    _parameter_constraints: dict = {
        "aggregator": [HasMethods(["fit"]), None],
        "classifier": [HasMethods(["fit", "predict"]), None],
        "random_state": ["random_state"],
    }

    def __init__(self, aggregator=None, classifier=None, *, random_state=None):
        self.aggregator = aggregator
        self.classifier = classifier
        self.random_state = random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        return tags

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, Y):
        """Aggregate ``Y``, then fit the classifier on the aggregated labels.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, C, H, W)
            Training examples.
        Y : array-like of shape (n_samples, n_annotators) or (n_samples,), \
sparse matrix or CrowdLabelMatrix
            Labels of each annotator, ``np.nan`` (or ``None``) where missing.

        Returns
        -------
        self : AggregateThenClassify
            Fitted estimator.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn_metaannot.baselines import AggregateThenClassify
        >>> X = np.array([[0.0, 0.1], [0.2, 0.0], [3.0, 3.1], [3.2, 2.9]])
        >>> Y = np.array([[0, 0, 1], [0, np.nan, 0], [1, 1, 1], [1, 0, np.nan]])
        >>> clf = AggregateThenClassify(random_state=0).fit(X, Y)  # MV + LR
        >>> clf.labels_
        array([0, 0, 1, 1])
        """
        X = _check_X(self, X, reset=True)
        codes, classes = check_crowd_labels(Y, X.shape[0])
        rng = check_random_state(self.random_state)
        aggregator = MajorityVote() if self.aggregator is None else self.aggregator
        self.aggregator_, probas = _aggregate(aggregator, codes, len(classes))
        label_codes = _hard_labels(probas, rng)
        self.classes_ = classes
        self.sample_posterior_ = probas
        self.labels_ = classes[label_codes]
        present = np.unique(label_codes)
        if len(present) < 2:
            self.classifier_ = None
            self.constant_code_ = int(present[0])
        else:
            classifier = (
                make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
                if self.classifier is None
                else self.classifier
            )
            classifier = _seed_params(clone(classifier), rng.randint(2**31 - 1))
            self.classifier_ = classifier.fit(X, label_codes)
        return self

    def predict_proba(self, X):
        """Class probabilities of the classifier, over all classes of ``Y``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Classes that no aggregated label named get probability 0.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn_metaannot.baselines import AggregateThenClassify
        >>> X = np.array([[0.0, 0.1], [0.2, 0.0], [3.0, 3.1], [3.2, 2.9]])
        >>> Y = np.array([[0, 0, 1], [0, np.nan, 0], [1, 1, 1], [1, 0, np.nan]])
        >>> clf = AggregateThenClassify(random_state=0).fit(X, Y)
        >>> clf.predict_proba([[0.1, 0.0], [3.1, 3.0]]).argmax(axis=1)
        array([0, 1])
        """
        check_is_fitted(self)
        X = _check_X(self, X, reset=False)
        proba = np.zeros((X.shape[0], len(self.classes_)))
        if self.classifier_ is None:
            proba[:, self.constant_code_] = 1.0
            return proba
        if hasattr(self.classifier_, "predict_proba"):
            proba[:, self.classifier_.classes_] = self.classifier_.predict_proba(X)
        else:
            proba[np.arange(X.shape[0]), self.classifier_.predict(X)] = 1.0
        return proba

    def predict(self, X):
        """Most probable class of each example.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn_metaannot.baselines import AggregateThenClassify
        >>> X = np.array([[0.0, 0.1], [0.2, 0.0], [3.0, 3.1], [3.2, 2.9]])
        >>> Y = np.array([[0, 0, 1], [0, np.nan, 0], [1, 1, 1], [1, 0, np.nan]])
        >>> AggregateThenClassify(random_state=0).fit(X, Y).predict([[3.1, 3.0]])
        array([1])
        """
        check_is_fitted(self)
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


# -- prototypes from aggregated labels -------------------------------------------


class PrototypeClassifier(LogProbaClassifierMixin, ClassifierMixin, BaseEstimator):
    """Class prototypes from aggregated crowd labels in a (meta-learned) latent space.

    The PrMV and PrDS baselines of the paper: a prototypical network
    meta-trained on clean source tasks, whose target prototypes are the means of
    the embedded support examples weighted by labels aggregated by majority vote
    (MV) or Dawid-Skene (DS). ``soft=True`` (the default) weights each example by
    its aggregated posterior, e.g. vote fractions for MV; ``soft=False`` uses the
    hard aggregated label. Queries are classified by
    ``softmax_k(-||f(x) - mu_k||^2 / 2)``, with a uniform class prior (the same
    rule as :class:`MetaAnnotatorClassifier`'s Eq. 8).

    Parameters
    ----------
    encoder : FittedEncoder, MetaAnnotatorClassifier or None, default=None
        Latent space: a :class:`~sklearn_metaannot.FittedEncoder` (any object
        with ``transform(X_flat) -> embeddings``), the ``meta_encoder_`` of a
        meta-fitted :class:`MetaAnnotatorClassifier` (passing the estimator
        itself works), or None for the features of ``X`` standardised with the
        training set's statistics. For PrMV/PrDS use the encoder of a model
        meta-trained with ``pseudo_annotation=False`` (a prototypical network).
    aggregator : estimator, default=None
        Label aggregator with ``fit(Y)``, ``probas_`` and ``classes_``;
        :class:`~sklearn_metaannot.MajorityVote` by default. It is cloned.
    soft : bool, default=True
        Weight examples by their aggregated posteriors (True) or use hard labels.
    random_state : int, RandomState instance or None, default=None
        Breaks ties of the hard labels when ``soft=False``.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Labels seen in ``Y``.
    prototypes_ : ndarray of shape (n_classes, M)
        Class prototypes; NaN for a class that got no weight.
    aggregator_ : estimator
        The fitted aggregator.
    sample_posterior_ : ndarray of shape (n_samples, n_classes)
        Weights of each training example in the prototypes.
    n_features_in_ : int
        Number of features of ``X``.

    See Also
    --------
    MetaAnnotatorClassifier : Learns the prototypes and the annotators jointly by EM.

    References
    ----------
    .. [1] J. Snell, K. Swersky, R. Zemel. "Prototypical Networks for Few-shot
       Learning", NeurIPS 2017.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_metaannot import DawidSkene, simulate_annotators
    >>> from sklearn_metaannot.baselines import PrototypeClassifier
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([0, 1, 2], 20)
    >>> X = rng.normal(size=(60, 5)) + 3 * np.eye(5)[y]
    >>> Y, _, _ = simulate_annotators(y, 5, random_state=0)
    >>> prds = PrototypeClassifier(aggregator=DawidSkene()).fit(X, Y)
    >>> prds.prototypes_.shape
    (3, 5)
    >>> float(prds.score(X, y)) > 0.9
    True
    """

    _parameter_constraints: dict = {
        "encoder": [HasMethods(["transform"]), HasMethods(["meta_fit"]), None],
        "aggregator": [HasMethods(["fit"]), None],
        "soft": ["boolean"],
        "random_state": ["random_state"],
    }

    def __init__(self, encoder=None, aggregator=None, *, soft=True, random_state=None):
        self.encoder = encoder
        self.aggregator = aggregator
        self.soft = soft
        self.random_state = random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.non_deterministic = False
        return tags

    def _embed(self, X):
        if self.encoder_ is None:
            return (X.astype(np.float64) - self.input_mean_) / self.input_scale_
        return np.asarray(self.encoder_.transform(X), dtype=np.float64)

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, Y):
        """Aggregate ``Y`` and compute the weighted class means of the embeddings.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, C, H, W)
            Training examples.
        Y : array-like of shape (n_samples, n_annotators) or (n_samples,), \
sparse matrix or CrowdLabelMatrix
            Labels of each annotator, ``np.nan`` (or ``None``) where missing.

        Returns
        -------
        self : PrototypeClassifier
            Fitted estimator.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn_metaannot.baselines import PrototypeClassifier
        >>> X = np.array([[0.0, 0.1], [0.2, 0.0], [3.0, 3.1], [3.2, 2.9]])
        >>> Y = np.array([[0, 0, 1], [0, np.nan, 0], [1, 1, 1], [1, 0, np.nan]])
        >>> clf = PrototypeClassifier(soft=False, random_state=0).fit(X, Y)
        >>> clf.prototypes_.round(2)  # means of the standardised inputs
        array([[-1., -1.],
               [ 1.,  1.]])
        """
        X = _check_X(self, X, reset=True)
        codes, classes = check_crowd_labels(Y, X.shape[0])
        self.encoder_ = _resolve_encoder(self.encoder)
        if self.encoder_ is None:
            self.input_mean_, self.input_scale_ = _standardise(X.astype(np.float64))
        else:
            _check_encoder_features(self.encoder_, X.shape[1])
        aggregator = MajorityVote() if self.aggregator is None else self.aggregator
        self.aggregator_, probas = _aggregate(aggregator, codes, len(classes))
        if not self.soft:
            rng = check_random_state(self.random_state)
            probas = np.eye(len(classes))[_hard_labels(probas, rng)]
        U = self._embed(X)
        mass = probas.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            self.prototypes_ = (probas.T @ U) / mass[:, None]
        self.prototypes_[mass <= 0] = np.nan
        self.classes_ = classes
        self.sample_posterior_ = probas
        return self

    def predict_log_proba(self, X):
        """Log class probabilities ``log softmax_k(-||f(x) - mu_k||^2 / 2)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            ``-inf`` for classes without a prototype.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn_metaannot.baselines import PrototypeClassifier
        >>> X = np.array([[0.0, 0.1], [0.2, 0.0], [3.0, 3.1], [3.2, 2.9]])
        >>> Y = np.array([[0, 0, 1], [0, np.nan, 0], [1, 1, 1], [1, 0, np.nan]])
        >>> clf = PrototypeClassifier().fit(X, Y)
        >>> clf.predict_log_proba([[0.1, 0.0], [3.1, 3.0]]).argmax(axis=1)
        array([0, 1])
        """
        check_is_fitted(self)
        X = _check_X(self, X, reset=False)
        U = self._embed(X)
        empty = np.isnan(self.prototypes_).any(axis=1)
        mu = np.where(empty[:, None], 0.0, self.prototypes_)
        d2 = (U * U).sum(1)[:, None] - 2 * U @ mu.T + (mu * mu).sum(1)[None, :]
        logits = np.where(empty[None, :], -np.inf, -0.5 * d2)
        logits -= logits.max(axis=1, keepdims=True)
        return logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))


# -- crowd layer -----------------------------------------------------------------


class _CrowdLayerNet(nn.Module):
    """Base network, then one K x K "MW" crowd layer per annotator.

    ``forward`` returns the base network's class logits (B, K) and the
    annotators' log label distributions (B, R, K):
    ``log softmax(W_r softmax(base(x)))`` with ``W_r`` initialised to the identity.
    """

    def __init__(self, base, n_annotators, n_classes):
        super().__init__()
        self.base = base
        eye = torch.eye(n_classes, dtype=torch.float32)
        self.weight = nn.Parameter(eye.repeat(n_annotators, 1, 1))  # (R, K, K)

    def forward(self, x):
        logits = self.base(x)
        p = torch.softmax(logits, dim=-1)  # (B, K)
        a = torch.einsum("bk,rlk->brl", p, self.weight)  # a_r = W_r p
        return logits, torch.log_softmax(a, dim=-1)


def _mlp(n_in, hidden_layer_sizes, n_out):
    layers, width = [], n_in
    for h in hidden_layer_sizes:
        layers += [nn.Linear(width, int(h)), nn.ReLU()]
        width = int(h)
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


class _Scaled(nn.Module):
    """``module((x - offset) / scale)`` for fine-tuning a FittedEncoder's module."""

    def __init__(self, module, offset, scale):
        super().__init__()
        self.module = module
        self.register_buffer("offset", torch.as_tensor(offset, dtype=torch.float32))
        self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.float32))

    def forward(self, x):
        return self.module((x - self.offset) / self.scale)


class CrowdLayerClassifier(LogProbaClassifierMixin, ClassifierMixin, BaseEstimator):
    """A network with per-annotator crowd layers, trained on the raw annotations.

    The crowd layer of Rodrigues & Pereira (2018), "MW" variant: a base network
    gives class probabilities ``p(x)``; annotator ``r`` is modelled by
    ``softmax(W_r p(x))`` with a K x K matrix ``W_r`` initialised to the identity.
    Everything is trained jointly (full-batch Adam) by cross-entropy on each
    annotator's observed labels; predictions use the base network only.

    - ``encoder=None`` (the paper's CL): the base network is an MLP with
      ``hidden_layer_sizes`` on features standardised with the training set's
      statistics, trained on the target support only.
    - ``encoder=<meta-learned encoder>`` (the paper's MCL): the base network is
      the encoder followed by an MLP head (a linear head with
      ``hidden_layer_sizes=()``) on its embeddings, standardised by one global
      mean and scale. With ``fine_tune=False`` the encoder is frozen and only the
      head and the crowd layers are trained (fast: embeddings are computed once);
      with ``fine_tune=True`` the encoder's weights are trained too (its batch
      norm statistics stay frozen: the module is kept in eval mode).

    Parameters
    ----------
    encoder : FittedEncoder, MetaAnnotatorClassifier or None, default=None
        Pre-trained encoder, see :class:`PrototypeClassifier`. Fine-tuning needs a
        :class:`~sklearn_metaannot.FittedEncoder` (it has the torch ``module``).
    fine_tune : bool, default=False
        Train the encoder's weights too.
    hidden_layer_sizes : tuple of int, default=(64,)
        Hidden layers (ReLU) between the input (or embedding) and the class logits.
    n_epochs : int, default=200
        Full-batch gradient steps.
    lr : float, default=0.01
        Adam learning rate.
    weight_decay : float, default=1e-4
        L2 penalty (Adam's ``weight_decay``) on the base network's weights (not on
        the crowd layers).
    random_state : int, RandomState instance or None, default=None
        Seeds the weight initialisation.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Labels seen in ``Y``.
    crowd_weights_ : ndarray of shape (n_annotators, n_classes, n_classes)
        The learned crowd layers ``W_r``.
    annotator_confusion_ : ndarray of shape (n_annotators, n_classes, n_classes)
        Effective confusion matrices of the crowd layers on the training set,
        ``[r, k, l] = sum_n p_k(x_n) q_rl(x_n) / sum_n p_k(x_n)``, where ``p`` is
        the base network's class distribution and ``q_r = softmax(W_r p)`` annotator
        ``r``'s modelled label distribution. (``softmax(W_r e_k)`` would depend on
        how confident the base network is; this average does not.)
    loss_curve_ : list of float
        Training loss after every step.
    n_annotators_ : int
        Number of annotators (columns of ``Y``).
    n_features_in_ : int
        Number of features of ``X``.

    See Also
    --------
    AggregateThenClassify : Aggregate first, then train any classifier.

    References
    ----------
    .. [1] F. Rodrigues, F. Pereira. "Deep learning from crowds", AAAI 2018.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_metaannot import simulate_annotators
    >>> from sklearn_metaannot.baselines import CrowdLayerClassifier
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([0, 1, 2], 20)
    >>> X = rng.normal(size=(60, 5)) + 3 * np.eye(5)[y]
    >>> Y, _, _ = simulate_annotators(y, 5, random_state=0)
    >>> cl = CrowdLayerClassifier(random_state=0).fit(X, Y)
    >>> cl.annotator_confusion_.shape
    (5, 3, 3)
    >>> float(cl.score(X, y)) > 0.9
    True
    """

    _parameter_constraints: dict = {
        "encoder": [HasMethods(["transform"]), HasMethods(["meta_fit"]), None],
        "fine_tune": ["boolean"],
        "hidden_layer_sizes": ["array-like"],
        "n_epochs": [Interval(Integral, 1, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        encoder=None,
        *,
        fine_tune=False,
        hidden_layer_sizes=(64,),
        n_epochs=200,
        lr=0.01,
        weight_decay=1e-4,
        random_state=None,
    ):
        self.encoder = encoder
        self.fine_tune = fine_tune
        self.hidden_layer_sizes = hidden_layer_sizes
        self.n_epochs = n_epochs
        self.lr = lr
        self.weight_decay = weight_decay
        self.random_state = random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        return tags

    def _hidden(self):
        sizes = self.hidden_layer_sizes
        if isinstance(sizes, numbers.Integral):
            sizes = (sizes,)
        try:
            sizes = tuple(int(h) for h in sizes)
        except (TypeError, ValueError):
            raise TypeError(
                f"hidden_layer_sizes must be a tuple of ints, got {sizes!r}"
            ) from None
        if any(h < 1 for h in sizes):
            raise ValueError(f"hidden_layer_sizes must be positive, got {sizes!r}")
        return sizes

    def _features(self, X):
        """Inputs of the trainable part: standardised X or frozen embeddings."""
        if self.encoder_ is None:
            Z = (X.astype(np.float64) - self.input_mean_) / self.input_scale_
        elif self.fine_tune:
            return torch.as_tensor(np.asarray(X, dtype=np.float32))
        else:
            Z = np.asarray(self.encoder_.transform(X), dtype=np.float64)
            Z = (Z - self.input_mean_) / self.input_scale_
        return torch.as_tensor(Z, dtype=torch.float32)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, Y):
        """Train the base network and the crowd layers on the annotations.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, C, H, W)
            Training examples.
        Y : array-like of shape (n_samples, n_annotators) or (n_samples,), \
sparse matrix or CrowdLabelMatrix
            Labels of each annotator, ``np.nan`` (or ``None``) where missing.

        Returns
        -------
        self : CrowdLayerClassifier
            Fitted estimator.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn_metaannot.baselines import CrowdLayerClassifier
        >>> X = np.array([[0.0, 0.1], [0.2, 0.0], [3.0, 3.1], [3.2, 2.9]])
        >>> Y = np.array([[0, 0, 1], [0, np.nan, 0], [1, 1, 1], [1, 0, np.nan]])
        >>> clf = CrowdLayerClassifier(random_state=0).fit(X, Y)
        >>> clf.n_annotators_, clf.annotator_confusion_.shape
        (3, (3, 2, 2))
        """
        X = _check_X(self, X, reset=True)
        codes, classes = check_crowd_labels(Y, X.shape[0])
        hidden = self._hidden()
        self.encoder_ = _resolve_encoder(self.encoder)
        K, R = len(classes), codes.shape[1]
        if self.encoder_ is None:
            if self.fine_tune:
                raise ValueError("fine_tune=True needs an encoder to fine-tune")
            self.input_mean_, self.input_scale_ = _standardise(X.astype(np.float64))
        else:
            _check_encoder_features(self.encoder_, X.shape[1])
            if self.fine_tune and not isinstance(
                getattr(self.encoder_, "module", None), nn.Module
            ):
                raise TypeError(
                    "fine_tune=True needs a FittedEncoder (an encoder with a torch "
                    "`module` and `scale_inputs`), got "
                    f"{type(self.encoder_).__name__}"
                )
            if not self.fine_tune:
                Z = np.asarray(self.encoder_.transform(X), dtype=np.float64)
                self.input_mean_ = Z.mean()
                self.input_scale_ = Z.std() or 1.0
        features = self._features(X)

        seed = int(check_random_state(self.random_state).randint(2**31 - 1))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            if self.encoder_ is not None and self.fine_tune:
                module = copy.deepcopy(self.encoder_.module).float()
                module.eval()
                for p in module.parameters():
                    p.requires_grad_(True)
                encoder = _Scaled(module, self.encoder_.offset, self.encoder_.scale)
                with torch.no_grad():
                    Z = encoder(features[:2])
                head = _mlp(Z.shape[1], hidden, K)
                base = nn.Sequential(encoder, head)
            else:
                base = _mlp(features.shape[1], hidden, K)
            net = _CrowdLayerNet(base, R, K)
            optimizer = torch.optim.Adam(
                [
                    {
                        "params": net.base.parameters(),
                        "weight_decay": self.weight_decay,
                    },
                    {"params": [net.weight], "weight_decay": 0.0},
                ],
                lr=self.lr,
            )
            target = torch.as_tensor(codes)
            observed = target >= 0
            target = target.clamp_min(0)
            n_obs = observed.sum()
            self.loss_curve_ = []
            for _ in range(self.n_epochs):
                optimizer.zero_grad()
                _, log_q = net(features)  # (n, R, K)
                nll = -log_q.gather(-1, target.unsqueeze(-1)).squeeze(-1)
                loss = (nll * observed).sum() / n_obs
                loss.backward()
                optimizer.step()
                self.loss_curve_.append(float(loss.detach()))
            net.eval()
            for param in net.parameters():
                param.requires_grad_(False)
            with torch.no_grad():
                logits, log_q = net(features)
        self.net_ = net
        self.crowd_weights_ = net.weight.detach().double().numpy()
        # effective confusion on the training set: the annotators' modelled label
        # distributions, averaged over the examples in proportion to p(t = k | x)
        p = torch.softmax(logits.double(), dim=-1)  # (n, K)
        q = log_q.double().exp()  # (n, R, K)
        self.annotator_confusion_ = (
            torch.einsum("nk,nrl->rkl", p, q) / p.sum(dim=0)[None, :, None]
        ).numpy()
        self.classes_ = classes
        self.n_annotators_ = R
        return self

    def predict_log_proba(self, X):
        """Log class probabilities of the base network.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_classes)

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn_metaannot.baselines import CrowdLayerClassifier
        >>> X = np.array([[0.0, 0.1], [0.2, 0.0], [3.0, 3.1], [3.2, 2.9]])
        >>> Y = np.array([[0, 0, 1], [0, np.nan, 0], [1, 1, 1], [1, 0, np.nan]])
        >>> clf = CrowdLayerClassifier(random_state=0).fit(X, Y)
        >>> clf.predict_log_proba(X).shape
        (4, 2)
        """
        check_is_fitted(self)
        X = _check_X(self, X, reset=False)
        with torch.no_grad():
            logits = self.net_.base(self._features(X))
            return torch.log_softmax(logits.double(), dim=-1).numpy()
