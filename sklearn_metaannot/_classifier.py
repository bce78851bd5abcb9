"""The MetaAnnotatorClassifier estimator (orchestration only; the math is in _em)."""
# SPDX-License-Identifier: BSD-3-Clause

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from .adapt import _representation, _unlabelled
from .adapt._representation import INPUT_SPACES
from .crowd._labels import CrowdLabelMatrix, _is_dataframe
from .crowd._validation import (
    check_prior_c,
    check_task,
    flatten_samples,
    warn_user,
)
from .em._heads import HEADS, fit_task, head_log_proba
from .em._proba import LogProbaClassifierMixin
from .em._steps import DEFAULT_EM_PARAMS
from .meta._episodic import torch_threads
from .meta._learner import MetaEncoder, MetaLearner

#: The classifier's fitted-looking meta attributes of earlier versions, read
#: from its ``meta_encoder`` (name on the classifier -> name on the MetaEncoder).
_META_VIEWS = {
    "meta_history_": "history",
    "meta_selected_": "selected",
    "meta_val_scores_": "val_scores",
    "meta_input_scores_": "input_scores",
    "meta_input_candidates_": "input_candidates",
    "meta_val_accuracy_": "val_accuracy",
    "no_meta_val_accuracy_": "no_meta_val_accuracy",
    "meta_best_epoch_": "best_epoch",
    "meta_world_size_": "world_size",
}


#: The fitted residual layer of the MLP head: ``V relu(G u + g)``.
_HIDDEN = ("hidden_coef_", "hidden_intercept_", "hidden_out_")


def _fit_task(U, labels, n_classes, n_annotators, gold=None, prior_counts=None, **kw):
    """:func:`~sklearn_metaannot.em._heads.fit_task` on numpy inputs (float64, CPU).

    ``labels`` are the (row, column, code) triplets; ``gold`` the mask and
    one-hot rows of the gold items; ``prior_counts`` the annotators' history
    pseudo-counts; ``kw`` the head and EM settings.
    """
    U = torch.from_numpy(np.ascontiguousarray(U, dtype=np.float64))
    # copies: the arrays of a CrowdLabelMatrix are read-only
    rows, cols, codes = (torch.tensor(np.asarray(a), dtype=torch.int64) for a in labels)
    if gold is not None:
        gold = tuple(torch.from_numpy(np.asarray(a)) for a in gold)
    if prior_counts is not None:
        prior_counts = torch.from_numpy(np.asarray(prior_counts))
    return fit_task(
        U,
        rows,
        cols,
        codes,
        n_classes,
        n_annotators,
        gold=gold,
        prior_counts=prior_counts,
        **kw,
    )


class MissingClassWarning(UserWarning):
    """A crowd-labelled task names fewer classes than the meta-training episodes.

    :meth:`MetaAnnotatorClassifier.fit` emits it after ``meta_fit`` when no
    ``classes`` are given and the annotators used fewer distinct labels than
    ``n_way``: a class that no annotator named cannot be predicted. Pass
    ``fit(X, Y, classes=...)`` to keep it.

    Examples
    --------
    >>> import warnings
    >>> import numpy as np
    >>> from sklearn_metaannot import MetaAnnotatorClassifier, MissingClassWarning
    >>> rng = np.random.default_rng(0)
    >>> X, y = rng.normal(size=(160, 4)), np.repeat(np.arange(8), 20)
    >>> from sklearn_metaannot import MetaLearner
    >>> learner = MetaLearner(n_way=3, n_episodes=4, episodes_per_epoch=4,
    ...                       validation_classes=0)
    >>> clf = MetaAnnotatorClassifier(meta_learner=learner, random_state=0)
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     clf = clf.meta_fit(X, y)
    >>> Y = [[0, 0], [1, 1], [1, 0]]  # a 3-way task in which nobody said 2
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     _ = clf.fit(X[:3], Y)
    >>> any(issubclass(w.category, MissingClassWarning) for w in caught)
    True
    >>> clf.fit(X[:3], Y, classes=[0, 1, 2]).classes_
    array([0, 1, 2])
    """


class MetaAnnotatorClassifier(LogProbaClassifierMixin, ClassifierMixin, BaseEstimator):
    """Classifier learned from several noisy annotators in a meta-learned latent space.

    ``meta_fit`` meta-learns an encoder on source data with clean labels (with
    the :class:`MetaLearner` of ``meta_learner``) and stores it, frozen, as the
    ``meta_encoder`` parameter. ``fit`` then adapts to a crowd-labelled target
    task by MAP-EM in the latent space: class prototypes, class prior and one
    confusion matrix per annotator (Kumagai et al., 2025). Without an encoder,
    ``fit`` runs the same EM in an input space (the "no meta-learning" mode).
    ``clone`` (hence ``GridSearchCV``) keeps the frozen encoder, since it is a
    parameter: a search over ``n_em_iter``, ``tau``, ``b``, ``c`` or
    ``representation`` never meta-trains again.

    Parameters
    ----------
    meta_learner : MetaLearner, default=None
        The meta-training recipe of :meth:`meta_fit` (episodes, encoder
        architecture, optimiser, device...); None: ``MetaLearner()``. Its
        ``random_state``, when None, is this estimator's.
    meta_encoder : MetaEncoder, default=None
        A frozen meta-learned encoder: what :meth:`meta_fit` sets, or the
        ``meta_encoder_`` of a fitted :class:`MetaLearner`. None: ``fit``
        uses the input spaces only.
    n_em_iter : int, default=3
        EM iterations J, in meta-training and in ``fit``.
    tau : float, default=0.0
        Precision of the Gaussian prior shrinking prototypes to zero.
    b : float, default=10.0
        Dirichlet concentration of the class prior (>= 1; larger pushes the class
        prior to uniform).
    c : float or (float, float), default=(2.0, 1.0)
        Dirichlet concentration of the rows of the confusion matrices: a scalar,
        or (diagonal, off-diagonal); values >= 1. The paper's value is not known.
    history_weight : float, default=1.0
        Weight of the annotator history given to ``fit(...,
        annotator_prior=...)``: an annotator seen before gets the Dirichlet
        concentration ``c + history_weight * counts``, where ``counts`` are the
        expected confusion counts of the earlier task(s). 1 counts an earlier
        label as much as one of this task (the sequential Bayesian update);
        smaller values discount old tasks, e.g. when annotators drift; 0
        ignores the history.
    representation : {"auto", "meta", "input", "scaled", "normalized"}, \
default="auto"
        Latent space used by ``fit``: "meta" the meta-learned encoder, "input"
        input features standardised per feature, "scaled" input features scaled
        by one global mean and standard deviation, "normalized" every item
        scaled to unit Euclidean norm, then globally scaled (EM on directions,
        the geometry of CNN features); "auto" chooses per task: the
        space ``meta_fit`` found best on validation tasks ("input" without
        validation or without ``meta_fit``), unless the task's held-out crowd
        labels clearly prefer another (see the user guide; no gold labels).
    head : {"prototype", "linear", "mlp", "auto"}, default="auto"
        The class-probability model fitted with the annotators' confusion
        matrices: "prototype", the paper's isotropic class prototypes (Eqs.
        6-8); "linear", a softmax head on the latent space, fitted by EM on
        the posterior-weighted items, started at the prototype solution and
        pulled back to it by ``head_penalty`` (ours: a model that grows with
        the data, for features that are not a good metric; see the user
        guide); "mlp", the linear head plus a residual hidden layer (64 ReLU
        units, output weights started at zero, L2 penalty 1 per item), for
        classes that no linear rule separates; "auto", per task, the model
        whose features best predict the task's held-out crowd labels (a
        proper score, each model at its best feature weight,
        ``feature_weight_``; no gold labels) when it clearly beats the
        prototypes, else the prototypes, which also stay below 2 labelled
        items per class. A named head is fitted as it is, its features'
        prediction untempered (``feature_weight_`` is 1). The latent space is
        chosen with the prototype model either way. The default was chosen on
        validation tasks (``benchmarks/head_validation.py``).
    head_penalty : float, default=10.0
        Strength of the linear (and MLP) head's pull towards the prototype
        solution of the task, ``head_penalty / 2`` times the squared distance
        of its weights and biases from it; the data term is a sum over the
        items, so the pull weakens as items are added.
    unlabelled_weight : "auto" or float in [0, 1], default="auto"
        How much the unlabelled items of ``fit`` (``X_unlabelled``, and rows of
        ``Y`` without any label) count in the EM's prototypes and class prior:
        0 leaves them out (they only get a posterior), 1 counts them like a
        labelled item (semi-supervised EM, the behaviour before this
        parameter). "auto" decides per task from the crowd labels alone: the
        unlabelled items count (all at weight 1, or each weighed by a
        distractor mask) only when the held-out crowd agreement of the
        labelled items is clearly higher with them than without (as for
        ``representation="auto"``), and are left out otherwise (see the user
        guide; ``unlabelled_choice_``). Except with a positive number, the
        latent space and the head are chosen on the labelled items.
    random_state : int, RandomState instance or None, default=None
        Seeds the held-out folds of ``representation="auto"`` (None: folds in
        turn, deterministic) and, when ``meta_learner`` has none, meta-training.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    prototypes_ : ndarray of shape (n_classes, M)
        Class prototypes in the latent space.
    class_prior_ : ndarray of shape (n_classes,)
        Estimated class prior.
    head_ : str
        The class-probability model of this fit ("prototype", "linear" or
        "mlp").
    head_scores_ : dict
        With ``head="auto"``: each candidate's mean held-out score of the crowd
        labels at its feature weight (minus a Brier score; NaN when the task
        was too small to check; empty otherwise).
    feature_weight_ : float in (0, 1]
        The temperature of the features' prediction in this fit, chosen per
        task with ``head="auto"`` (1 with a named head): ``predict_proba`` is
        proportional to ``p(t | x) ** feature_weight_`` (the same predicted
        class), and below 1 the
        posteriors of the training items (``sample_posterior_``) and the
        confusion matrices are re-estimated with it, the class-probability
        model unchanged; 1 is the paper's model. It is the weight under which
        the features best predict held-out crowd labels (through the
        annotators' confusion matrices; no gold labels) when it clearly beats
        1, else 1 (and 1 below 2 labelled items per class). Features that are
        not a good metric make a unit-variance prototype model overconfident,
        so that it overrules the annotators in the posteriors; a smaller
        weight lets the labels speak (towards Dawid-Skene on the labels
        alone).
    feature_weight_scores_ : dict
        With ``head="auto"``: each candidate weight's mean held-out score of
        an item's crowd labels (minus their Brier score under the tempered
        features' prediction), keyed by the weight with 4 significant digits
        (NaN when the task was too small to check; empty otherwise).
    hidden_coef_, hidden_intercept_, hidden_out_ : ndarray of shape \
(n_hidden, M), (n_hidden,) and (n_classes, n_hidden)
        The residual layer of the MLP head (``head_`` "mlp" only), added to the
        linear head's logits: ``hidden_out_ @ relu(hidden_coef_ @ u(x) +
        hidden_intercept_)``.
    coef_, intercept_ : ndarray of shape (n_classes, M) and (n_classes,)
        The linear head (``head_`` "linear" or "mlp"):
        ``p(t = k | x) = softmax_k(coef_[k] . u(x) + intercept_[k])``.
    annotator_confusion_ : ndarray of shape (n_annotators, n_classes, n_classes)
        Estimated confusion matrices, ``[r, k, l] = p(annotator r says l | true
        class k)``.
    sample_posterior_ : ndarray of shape (n_samples, n_classes)
        Inferred true-label distribution of each training example (the rows
        of ``X``, not those of ``X_unlabelled``).
    unlabelled_choice_ : UnlabelledChoice
        How much the unlabelled items counted and why: ``weight`` (their mean
        weight), ``candidate``, ``reason``, ``scores`` (mean held-out
        agreement per candidate) and ``n_unlabelled``.
    n_annotators_ : int
        Number of annotators (columns of ``Y``).
    annotators_ : ndarray of shape (n_annotators,)
        Annotator ids: the ``annotator_ids`` of a :class:`CrowdLabelMatrix`,
        the column names of a DataFrame, else ``0 .. n_annotators - 1``.
    annotator_n_labels_ : ndarray of shape (n_annotators,)
        Number of labels each annotator gave in ``fit``.
    annotator_accuracy_ : ndarray of shape (n_annotators,)
        Estimated fraction of each annotator's labels that are right: the mean
        posterior probability (``sample_posterior_``) of the labels given (NaN
        for an annotator without labels). See :meth:`annotator_report`.
    annotator_counts_ : ndarray of shape (n_annotators, n_classes, n_classes)
        Expected confusion counts of this task, ``[r, k, l] = sum_n
        sample_posterior_[n, k] * [annotator r said l for example n]``: the
        sufficient statistics of the confusion matrices, which a later task's
        ``fit(..., annotator_prior=this_model)`` adds to its Dirichlet prior.
    annotator_prior_counts_ : ndarray of shape (n_annotators, n_classes, n_classes)
        The history pseudo-counts that entered this fit
        (``history_weight`` times the counts from ``annotator_prior``; zero
        without history).
    annotator_has_history_ : ndarray of shape (n_annotators,) of bool
        Which annotators were found in ``annotator_prior``.
    n_features_in_ : int
        Number of features of ``X``.
    representation_ : str
        Latent space used by ``fit`` ("meta", "input", "scaled" or "normalized").
    representation_scores_ : dict
        With ``representation="auto"``: each candidate's held-out agreement
        with the crowd labels, averaged per item, then over the labelled items
        (NaN when the task was too small to
        check; empty for a forced representation).
    input_scaling_ : dict
        Offset and scale of the input spaces ("input", "scaled",
        "normalized"), from the labelled items of ``X`` (from all items,
        ``X_unlabelled`` included, when ``unlabelled_weight`` is a positive
        number).
    representation_choice_ : RepresentationChoice
        Which space ``fit`` used and why: ``space``, ``default``, ``reason``,
        ``scores`` and ``candidates``.
    encoder_ : MetaEncoder or None
        The encoder this ``fit`` used: ``meta_encoder``, or, when
        ``meta_learner`` has been given other meta-training parameters since
        ``meta_fit`` (``GridSearchCV`` over ``meta_learner__lr``...), an encoder
        meta-trained again with them on the source data of ``meta_encoder``.
    meta_encoder_ : MetaEncoder
        ``encoder_`` after ``fit``, ``meta_encoder`` before (read-only view,
        kept for compatibility); the views ``meta_history_``, ``meta_selected_``,
        ``meta_val_scores_``, ``meta_input_scores_``, ``meta_input_candidates_``,
        ``meta_val_accuracy_``, ``no_meta_val_accuracy_``, ``meta_best_epoch_``
        and ``meta_world_size_`` read its ``history``, ``selected``,
        ``val_scores``, ``input_scores``, ``input_candidates``,
        ``val_accuracy``, ``no_meta_val_accuracy``, ``best_epoch`` and
        ``world_size`` (each raises AttributeError without an encoder).

    See Also
    --------
    CrowdLabelMatrix : Sparse annotator labels.
    sklearn_metaannot.aggregation.DawidSkene : Label aggregation without features.

    References
    ----------
    .. [1] A. Kumagai, T. Iwata, T. Nishiyama, Y. Ida, Y. Fujiwara. "Meta-learning
       Representations for Learning from Multiple Annotators", arXiv:2506.10259, 2025.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_metaannot import MetaAnnotatorClassifier, simulate_annotators
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([0, 1, 2], 20)
    >>> X = rng.normal(size=(60, 5)) + 3 * np.eye(5)[y]
    >>> Y, _, _ = simulate_annotators(y, 5, random_state=0)
    >>> clf = MetaAnnotatorClassifier().fit(X, Y)
    >>> clf.annotator_confusion_.shape
    (5, 3, 3)
    >>> float(clf.score(X, y)) > 0.9
    True
    """

    _parameter_constraints: dict = {
        "meta_learner": [HasMethods(["fit", "get_params"]), None],
        "meta_encoder": [MetaEncoder, None],
        "n_em_iter": [Interval(Integral, 0, None, closed="left")],
        "tau": [Interval(Real, 0, None, closed="left")],
        "b": [Interval(Real, 1, None, closed="left")],
        "c": [Interval(Real, 1, None, closed="left"), "array-like"],
        "history_weight": [Interval(Real, 0, None, closed="left")],
        "representation": [StrOptions({"auto", "meta", *INPUT_SPACES})],
        "head": [StrOptions({*HEADS, "auto"})],
        "head_penalty": [Interval(Real, 0, None, closed="neither")],
        "unlabelled_weight": [
            StrOptions({"auto"}),
            Interval(Real, 0, 1, closed="both"),
        ],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        *,
        meta_learner=None,
        meta_encoder=None,
        n_em_iter=DEFAULT_EM_PARAMS["n_iter"],
        tau=DEFAULT_EM_PARAMS["tau"],
        b=DEFAULT_EM_PARAMS["b"],
        c=DEFAULT_EM_PARAMS["c"],
        history_weight=1.0,
        representation="auto",
        head="auto",
        head_penalty=10.0,
        unlabelled_weight="auto",
        random_state=None,
    ):
        self.meta_learner = meta_learner
        self.meta_encoder = meta_encoder
        self.n_em_iter = n_em_iter
        self.tau = tau
        self.b = b
        self.c = c
        self.history_weight = history_weight
        self.representation = representation
        self.head = head
        self.head_penalty = head_penalty
        self.unlabelled_weight = unlabelled_weight
        self.random_state = random_state

    # -- scikit-learn protocol -------------------------------------------------

    def __sklearn_is_fitted__(self):
        return hasattr(self, "classes_")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.target_tags.required = True
        return tags

    # -- helpers ---------------------------------------------------------------

    @property
    def meta_encoder_(self):
        encoder = vars(self).get("encoder_", self.meta_encoder)
        if encoder is None:
            raise AttributeError("no meta-learned encoder: call meta_fit first")
        return encoder

    def _learner(self):
        """A fresh unfitted ``meta_learner``, seeded by this estimator if unseeded.

        Built from its parameters as given, not cloned: skorch callbacks must
        reach meta-training as the user passed them (they record there).
        """
        template = MetaLearner() if self.meta_learner is None else self.meta_learner
        learner = type(template)(**template.get_params(deep=False))
        if learner.get_params().get("random_state") is None:
            learner.set_params(random_state=self.random_state)
        return learner

    def _encoder_for_fit(self):
        """``meta_encoder``, or an encoder meta-trained again on its source data
        when ``meta_learner`` now has another recipe (a search over it)."""
        encoder = self.meta_encoder
        if encoder is None or self.meta_learner is None or encoder.recipe is None:
            return encoder
        # the recipe as given: an unseeded learner takes this estimator's seed,
        # which is no reason to meta-train again
        if self.meta_learner.recipe() == encoder.recipe:
            return encoder
        learner = self._learner()
        if encoder.source is None:
            raise ValueError(
                "meta_learner's parameters differ from those that meta-trained "
                "meta_encoder, and its source data is not kept (a loaded or "
                "unpickled model): call meta_fit again"
            )
        X_source, y_source, X_val, y_val = encoder.source
        learner.fit(
            X_source, y_source, X_val=X_val, y_val=y_val, em_params=self._em_params()
        )
        return learner.meta_encoder_

    def _em_params(self):
        """The EM settings of ``fit``, of meta-training and of the per-task check."""
        return {
            "n_iter": self.n_em_iter,
            "tau": self.tau,
            "b": self.b,
            "c": check_prior_c(self.c),
        }

    def _warn_missing_classes(self, classes):
        n_way = None if self.meta_encoder is None else self.meta_encoder.n_way
        if n_way is not None and len(classes) < n_way:
            warn_user(
                f"the annotators named {len(classes)} classes "
                f"({np.asarray(classes).tolist()[:10]}) but meta-training episodes "
                f"had n_way={n_way}; a class that nobody named cannot be "
                "predicted. Pass fit(X, Y, classes=[...]) to keep every class",
                MissingClassWarning,
            )

    def _check_X(self, X, *, reset):
        X, _ = flatten_samples(X)
        return validate_data(self, X, reset=reset, dtype=[np.float64, np.float32])

    def _check_X_unlabelled(self, X_unlabelled, X):
        """``X_unlabelled`` as an array like ``X`` (empty when None)."""
        if X_unlabelled is None:
            return X[:0]
        try:
            X_unlabelled = check_array(
                flatten_samples(X_unlabelled)[0],
                dtype=[np.float64, np.float32],
                input_name="X_unlabelled",
            )
        except ValueError as exc:
            raise ValueError(f"X_unlabelled: {exc}") from None
        if X_unlabelled.shape[1] != X.shape[1]:
            raise ValueError(
                f"X_unlabelled has {X_unlabelled.shape[1]} features, but X has "
                f"{X.shape[1]}: the unlabelled items must be described by the "
                "same features"
            )
        return X_unlabelled.astype(X.dtype, copy=False)

    def _embed(self, X, representation=None):
        return _representation.embed(
            X,
            representation or self.representation_,
            meta_encoder=self.encoder_,
            scalings=self.input_scaling_,
        )

    def _held_out_seed(self):
        """Seed of the held-out folds; None (folds in turn) without random_state.

        Drawn once per task, so that every candidate space gets the same folds.
        """
        if self.random_state is None:
            return None  # fit stays deterministic without random_state
        return check_random_state(self.random_state).randint(2**31 - 1)

    # -- meta-training -----------------------------------------------------------

    def meta_fit(self, X_source, y_source, *, X_val=None, y_val=None):
        """Meta-learn the encoder on source tasks with clean labels.

        Fits a clone of ``meta_learner`` (see :meth:`MetaLearner.fit`) through
        this estimator's EM settings and stores its frozen encoder as the
        ``meta_encoder`` parameter, which ``clone`` keeps.

        Parameters
        ----------
        X_source : array-like of shape (n_samples, n_features) or (n_samples, C, H, W)
            Source examples.
        y_source : array-like of shape (n_samples,)
            Clean source labels; classes should differ from the target task's.
        X_val, y_val : array-like, optional
            Validation data of other classes (see :meth:`MetaLearner.fit`).

        Returns
        -------
        self : MetaAnnotatorClassifier
            With ``meta_encoder`` set.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn_metaannot import MetaAnnotatorClassifier, MetaLearner
        >>> rng = np.random.default_rng(0)
        >>> y_source = np.repeat(np.arange(12), 20)  # 12 source classes
        >>> X_source = rng.normal(size=(240, 6)) + np.eye(12, 6)[y_source]
        >>> clf = MetaAnnotatorClassifier(
        ...     meta_learner=MetaLearner(n_way=3, n_episodes=20, episodes_per_epoch=10,
        ...                              n_val_episodes=5),
        ...     random_state=0)
        >>> clf = clf.meta_fit(X_source, y_source)
        >>> len(clf.meta_history_), clf.meta_selected_ != "auto"
        (2, True)
        """
        self._validate_params()
        learner = self._learner()
        learner.fit(
            X_source, y_source, X_val=X_val, y_val=y_val, em_params=self._em_params()
        )
        self.meta_encoder = learner.meta_encoder_
        if self.meta_learner is not None:
            # the recipe as given (see _encoder_for_fit)
            self.meta_encoder.recipe = self.meta_learner.recipe()
        return self

    # -- adaptation and prediction --------------------------------------------

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(
        self, X, Y, classes=None, y_gold=None, annotator_prior=None, X_unlabelled=None
    ):
        """Adapt to a crowd-labelled task by EM in the latent space.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, C, H, W)
            Training examples.
        Y : array-like of shape (n_samples, n_annotators) or (n_samples,), \
sparse matrix or CrowdLabelMatrix
            Labels of each annotator, ``np.nan`` (or ``None``) where an annotator
            gave none. A 1-D array is one annotator.
        classes : array-like of shape (n_classes,), default=None
            All class labels of the task, in the order of ``classes_`` and of the
            columns of ``predict_proba``. A class that no annotator named still
            gets a prototype (from the EM and the priors) and can be predicted;
            a label of ``Y`` outside ``classes`` raises a ValueError. By default
            the sorted labels found in ``Y`` (with a :class:`MissingClassWarning`
            after ``meta_fit`` when they are fewer than ``n_way``).
        y_gold : array-like of shape (n_samples,), default=None
            Known true labels of some examples (``np.nan`` or ``None``
            elsewhere), e.g. a few gold items checked by an expert. Their class
            posteriors are fixed to their labels in every EM step, which pins
            the prototypes and the confusion matrices. Labels must be among the
            crowd's classes.
        annotator_prior : MetaAnnotatorClassifier or mapping, default=None
            Annotator history from earlier tasks, matched by annotator id
            (``annotators_``): an annotator found there gets the Dirichlet
            concentration ``c + history_weight * counts`` for its confusion
            matrix, the others the ordinary ``c``. Either a model fitted on an
            earlier task, whose pseudo-counts ``annotator_counts_ +
            annotator_prior_counts_`` are matched to this task's classes by
            label value (classes missing on either side get no history), or a
            mapping ``{annotator id: (n_classes, n_classes) array}`` of
            non-negative pseudo-counts in the order of ``classes_`` (rows: true
            class, columns: label given). Annotator ids of plain arrays are
            column positions: use a DataFrame or a :class:`CrowdLabelMatrix`
            with worker ids. ``representation="auto"`` chooses the latent
            space without the history.
        X_unlabelled : array-like of shape (n_unlabelled, n_features), default=None
            Items without any label, e.g. the rest of the data set. Like the
            rows of ``Y`` without a label, they enter the EM with the weight
            of ``unlabelled_weight`` ("auto": only where the task's held-out
            crowd labels clearly gain from them). They get no row in
            ``sample_posterior_``.

        Returns
        -------
        self : MetaAnnotatorClassifier
            Fitted estimator.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn_metaannot import MetaAnnotatorClassifier
        >>> X = np.array([[0.0, 0.1], [0.2, 0.0], [3.0, 3.1], [3.2, 2.9]])
        >>> Y = np.array([[0, 0, 1], [0, np.nan, 0], [1, 1, 1], [1, 0, np.nan]])
        >>> clf = MetaAnnotatorClassifier().fit(X, Y)  # no meta_fit: input features
        >>> clf.representation_, clf.classes_, clf.annotator_confusion_.shape
        ('input', array([0, 1]), (3, 2, 2))
        >>> clf.sample_posterior_.argmax(axis=1)
        array([0, 0, 1, 1])

        Annotator history: the next task's annotators start from what this one
        learnt about them (here annotator 2 of the first task is annotator 0).

        >>> Y_next = np.array([[0, 0], [0, 0], [1, 1], [1, np.nan]])
        >>> ids = {0: 2, 1: 0}  # column of Y_next -> annotator id
        >>> import pandas as pd
        >>> nxt = MetaAnnotatorClassifier().fit(
        ...     X, pd.DataFrame(Y_next).rename(columns=ids), annotator_prior=clf)
        >>> nxt.annotators_.tolist(), nxt.annotator_has_history_.tolist()
        ([2, 0], [True, True])
        >>> np.allclose(nxt.annotator_prior_counts_[0], clf.annotator_counts_[2])
        True
        """
        task_ids = X.index.to_numpy() if _is_dataframe(X) else None
        X = self._check_X(X, reset=True)
        X_extra = self._check_X_unlabelled(X_unlabelled, X)
        task = check_task(
            Y,
            X.shape[0],
            classes=classes,
            y_gold=y_gold,
            annotator_prior=annotator_prior,
            sample_ids=task_ids,
        )
        if classes is None:
            self._warn_missing_classes(task.classes)
        labels, classes, gold = task.labels, task.classes, task.gold
        history, has_history = task.history, task.has_history
        annotators = np.asarray(labels.annotator_ids)
        if history is not None:
            history = float(self.history_weight) * history
        self.encoder_ = self._encoder_for_fit()
        items = _unlabelled.arrange(labels, gold, len(X_extra))
        X_all = np.concatenate([X, X_extra])[items.order]
        # the space and the head are chosen with the unlabelled items only when
        # their weight is forced (the guard then decides in the chosen space)
        mode = self.unlabelled_weight
        forced = mode != "auto" and mode > 0
        X_used = X_all if forced else X_all[: items.n_labelled]
        em_params = self._em_params()
        weight = items.weights(mode) if forced else None
        check_params = {**em_params, "weight": weight}
        self.input_scaling_ = _representation.input_scalings(X_used)
        seed = self._held_out_seed()  # the same folds for every per-task check
        with torch_threads(1):
            choice = _representation.decide(
                self.representation,
                X_used,
                items.labels,
                len(classes),
                meta_encoder=self.encoder_,
                scalings=self.input_scaling_,
                em_params=check_params,
                seed=seed,
            )
            self.representation_choice_ = choice
            self.representation_ = choice.space
            self.representation_scores_ = choice.scores
            U = self._embed(X_all)
            model_choice = _representation.decide_model(
                self.head,
                "auto" if self.head == "auto" else 1.0,
                U[: len(X_used)],
                items.labels,
                len(classes),
                head_penalty=self.head_penalty,
                em_params=check_params,
                seed=seed,
            )
            self.head_ = model_choice.head
            self.feature_weight_ = model_choice.feature_weight
            self.head_scores_ = model_choice.head_scores
            self.feature_weight_scores_ = model_choice.weight_scores
            model = {"head": self.head_, "head_penalty": self.head_penalty}
            self.unlabelled_choice_, weights = _unlabelled.decide_weight(
                mode, U, items, len(classes), em_params=em_params, seed=seed, **model
            )
            labels = items.labels
            res = _fit_task(
                U,
                (labels.rows, labels.cols, labels.codes),
                len(classes),
                labels.n_annotators,
                gold=items.gold,
                prior_counts=history,
                feature_weight=self.feature_weight_,
                held_out_log_proba=model_choice.held_out_log_proba,
                weight=weights,
                **model,
                **em_params,
            )
        self.classes_ = classes
        self.prototypes_ = res.mu.numpy()
        self.class_prior_ = res.log_pi.exp().numpy()
        self.annotator_confusion_ = res.log_A.exp().numpy()
        self.sample_posterior_ = items.restore(res.lam.numpy(), len(X))
        names = ("coef_", "intercept_", *_HIDDEN)
        for name in names:  # from an earlier fit with another head
            vars(self).pop(name, None)
        if res.coef is not None:
            self.coef_, self.intercept_ = res.coef.numpy(), res.intercept.numpy()
        if res.hidden is not None:
            for name, value in zip(_HIDDEN, res.hidden):
                setattr(self, name, value.numpy())
        self.n_annotators_ = labels.n_annotators
        self.annotators_ = annotators
        self.annotator_n_labels_, self.annotator_accuracy_ = labels.label_accuracy(
            res.lam.numpy()
        )
        self.annotator_counts_ = labels.expected_counts(res.lam.numpy())
        K = len(classes)
        self.annotator_prior_counts_ = (
            np.zeros((labels.n_annotators, K, K)) if history is None else history
        )
        self.annotator_has_history_ = (
            np.zeros(labels.n_annotators, dtype=bool)
            if has_history is None
            else has_history
        )
        return self

    def annotator_report(self):
        """One row per annotator: estimated accuracy, label count, per-class recall.

        Returns
        -------
        pandas.DataFrame of shape (n_annotators, 3 + n_classes)
            Indexed by annotator id (``annotators_``), with the columns

            - ``accuracy``: estimated fraction of the annotator's labels in
              ``fit`` that are right (``annotator_accuracy_``: the mean, over
              the examples the annotator labelled, of the posterior probability
              of the label given; NaN for an annotator without labels);
            - ``prior_weighted_accuracy``: the probability that the annotator is
              right on a new example drawn from the estimated class prior,
              ``sum_k class_prior_[k] * annotator_confusion_[r, k, k]``. Rows of
              classes the annotator never labelled stay near the Dirichlet prior
              ``c``, so with few labels this is shrunk towards it;
            - ``n_labels``: labels the annotator gave in ``fit``;
            - ``recall_<class>`` for each class: the diagonal of the annotator's
              confusion matrix, ``p(says k | true class k)``.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn_metaannot import MetaAnnotatorClassifier
        >>> X = np.array([[0.0], [0.2], [3.0], [3.2], [0.1], [3.1]])
        >>> Y = [["cat", "cat"], ["cat", "dog"], ["dog", "dog"], ["dog", None],
        ...      ["cat", "dog"], ["dog", "cat"]]
        >>> report = MetaAnnotatorClassifier().fit(X, Y).annotator_report()
        >>> list(report.columns)  # doctest: +NORMALIZE_WHITESPACE
        ['accuracy', 'prior_weighted_accuracy', 'n_labels', 'recall_cat',
         'recall_dog']
        >>> report["n_labels"].tolist()
        [6, 5]
        >>> bool(report.loc[0, "accuracy"] > report.loc[1, "accuracy"])
        True
        """
        check_is_fitted(self)
        try:
            import pandas as pd
        except ImportError as exc:  # pragma: no cover - pandas is a dependency
            raise ImportError(
                "annotator_report needs pandas: pip install pandas"
            ) from exc
        diagonal = np.diagonal(self.annotator_confusion_, axis1=1, axis2=2)
        columns = {
            "accuracy": self.annotator_accuracy_,
            "prior_weighted_accuracy": diagonal @ self.class_prior_,
            "n_labels": self.annotator_n_labels_,
        }
        for k, label in enumerate(self.classes_):
            columns[f"recall_{label}"] = diagonal[:, k]
        index = pd.Index(self.annotators_, name="annotator")
        return pd.DataFrame(columns, index=index)

    def embed(self, X):
        """The items in the latent space of this fit (``representation_``).

        The features that EM ran on: the meta-learned encoder's embedding, or
        an input space with the scaling of ``fit``'s ``X`` (``input_scaling_``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, M)

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn_metaannot import MetaAnnotatorClassifier
        >>> X = np.array([[0.0], [0.2], [3.0], [3.2]])
        >>> clf = MetaAnnotatorClassifier().fit(X, [[0, 0], [0, 1], [1, 1], [1, 1]])
        >>> clf.representation_, clf.embed([[1.6]]).round(3)
        ('input', array([[0.]]))
        """
        check_is_fitted(self)
        return self._embed(self._check_X(X, reset=False))

    def predict_log_proba(self, X):
        """Log class probabilities (paper Eq. 8).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_classes)

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn_metaannot import MetaAnnotatorClassifier
        >>> X = np.array([[0.0], [0.2], [3.0], [3.2]])
        >>> clf = MetaAnnotatorClassifier().fit(X, [[0, 0], [0, 1], [1, 1], [1, 1]])
        >>> clf.predict_log_proba([[0.1]]).shape
        (1, 2)
        """
        check_is_fitted(self)
        X = self._check_X(X, reset=False)
        coef, intercept = (getattr(self, n, None) for n in ("coef_", "intercept_"))
        hidden = None
        if hasattr(self, _HIDDEN[0]):
            hidden = tuple(torch.from_numpy(getattr(self, n)) for n in _HIDDEN)
        with torch_threads(1):
            log_proba = head_log_proba(
                torch.from_numpy(np.ascontiguousarray(self._embed(X))),
                torch.from_numpy(self.prototypes_),
                torch.from_numpy(np.log(self.class_prior_)),
                None if coef is None else torch.from_numpy(coef),
                None if intercept is None else torch.from_numpy(intercept),
                getattr(self, "feature_weight_", 1.0),
                hidden,
            )
        return log_proba.numpy()

    def score(self, X, y, sample_weight=None):
        """Accuracy against true labels, or against the majority vote of a crowd.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_annotators), or \
CrowdLabelMatrix
            True labels (1-D), or annotations whose majority vote (ties broken
            by the first class) serves as the reference; examples nobody
            labelled are left out. As in scikit-learn, a label that is not one
            of ``classes_`` counts as an error. This is what ``GridSearchCV`` and
            ``cross_val_score`` use on crowd-labelled data without gold labels.
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        float

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn_metaannot import MetaAnnotatorClassifier
        >>> X = np.array([[0.0], [0.2], [3.0], [3.2]])
        >>> Y = np.array([[0, 0], [0, 1], [1, 1], [1, np.nan]])
        >>> clf = MetaAnnotatorClassifier().fit(X, Y)
        >>> float(clf.score(X, [0, 0, 1, 1]))  # true labels
        1.0
        >>> float(clf.score(X, Y))  # the annotators' majority vote as reference
        1.0
        >>> float(clf.score(X, [0, 0, 1, 2]))  # class 2 was never seen: an error
        0.75
        """
        check_is_fitted(self)
        from sklearn.metrics import accuracy_score

        y_arr = y if isinstance(y, CrowdLabelMatrix) else np.asarray(y, dtype=object)
        if sample_weight is not None:
            sample_weight = _check_score_weights(sample_weight, len(y_arr))
        if isinstance(y, CrowdLabelMatrix) or y_arr.ndim == 2:
            labels = CrowdLabelMatrix.from_any(y)
            counts = labels.vote_counts()
            keep = counts.sum(axis=1) > 0
            reference = np.asarray(labels.classes)[np.argmax(counts[keep], axis=1)]
            X = np.asarray(flatten_samples(X)[0])[keep]
            if sample_weight is not None:
                sample_weight = np.asarray(sample_weight)[keep]
        else:
            reference = np.asarray(y)
        # labels unseen in fit count as errors (scikit-learn's convention): they
        # get code -1, which no prediction has
        lookup = {v: i for i, v in enumerate(self.classes_.tolist())}
        ref_codes = np.fromiter(
            (lookup.get(v, -1) for v in np.asarray(reference, dtype=object).tolist()),
            dtype=np.int64,
            count=len(reference),
        )
        pred_codes = np.argmax(self.predict_log_proba(X), axis=1)
        return accuracy_score(ref_codes, pred_codes, sample_weight=sample_weight)


def _check_score_weights(sample_weight, n_samples):
    """``sample_weight`` of :meth:`MetaAnnotatorClassifier.score` as a checked array."""
    try:
        w = np.asarray(sample_weight, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError("sample_weight must be an array of numbers") from None
    if w.shape != (n_samples,):
        raise ValueError(
            f"sample_weight must have shape ({n_samples},), one weight per "
            f"sample of y, got shape {w.shape}"
        )
    if not np.all(np.isfinite(w)) or np.any(w < 0) or not np.any(w > 0):
        raise ValueError("sample_weight must be finite, non-negative and not all zero")
    return w


def _meta_view(attr):
    return property(
        lambda self: getattr(self.meta_encoder_, attr),
        doc=f"``meta_encoder.{attr}`` (AttributeError without an encoder).",
    )


for _name, _attr in _META_VIEWS.items():
    setattr(MetaAnnotatorClassifier, _name, _meta_view(_attr))
