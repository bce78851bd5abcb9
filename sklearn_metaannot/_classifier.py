"""The MetaAnnotatorClassifier estimator (orchestration only; the math is in _em)."""
# SPDX-License-Identifier: BSD-3-Clause

from __future__ import annotations

import copy
import math
import os
import warnings
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, Options, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from . import _em, _selection
from ._annotators import AnnotatorSimulator
from ._checkpoint import config_fingerprint, fit_or_resume
from ._crowd_labels import CrowdLabelMatrix
from ._distributed import (
    ShardedEpisodeDataset,
    SynchronizeProcesses,
    adopt_main_result,
    check_divisible,
    process_group,
)
from ._encoders import build_encoder
from ._meta import (
    INPUT_SPACES,
    EpisodeDataset,
    EpisodicEM,
    FittedEncoder,
    check_callbacks,
    input_space_scaling,
    make_net,
    no_meta_accuracy,
    to_input_space,
    torch_threads,
)
from ._throughput import check_mixed_precision, validation_batch_size
from ._validation import (
    annotator_ids,
    check_annotator_prior,
    check_crowd_labels,
    check_gold_labels,
    flatten_samples,
)
from .episodes import EpisodeSampler

# Fitted state of meta_fit that clone() carries to new estimators (see
# __sklearn_clone__): GridSearchCV must not silently drop the meta-learned encoder.
_META_ATTRIBUTES = (
    "meta_encoder_",
    "meta_history_",
    "meta_selected_",
    "meta_val_scores_",
    "meta_input_scores_",
    "meta_input_candidates_",
    "meta_val_accuracy_",
    "no_meta_val_accuracy_",
    "meta_best_epoch_",
    "meta_world_size_",
)


def _expected_counts(labels, posterior):
    """Expected confusion counts ``sum_n lam_nk [y_n^r = l]`` of shape (R, K, K).

    The sufficient statistics of the M-step of the confusion matrices (spec
    3.2, paper Eq. 7) at the responsibilities ``posterior``; rows: true class.
    """
    R, K = labels.n_annotators, posterior.shape[1]
    counts = np.zeros((R * K, K))
    np.add.at(counts, labels.cols * K + labels.codes, posterior[labels.rows])
    return counts.reshape(R, K, K).transpose(0, 2, 1).copy()


def _label_accuracy(labels, posterior):
    """Label counts and mean posterior probability of the labels, per annotator."""
    R = labels.n_annotators
    n_labels = np.bincount(labels.cols, minlength=R)
    right = np.bincount(
        labels.cols, weights=posterior[labels.rows, labels.codes], minlength=R
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.where(n_labels > 0, right / np.maximum(n_labels, 1), np.nan)
    return n_labels, accuracy


def _fit_em(
    U, labels, n_classes, n_annotators, gold=None, prior_counts=None, **em_params
):
    """MAP-EM of a target task on its observed labels (float64, on the CPU).

    Parameters
    ----------
    U : ndarray of shape (n_samples, n_dims)
        Embeddings (or standardised features) of the examples.
    labels : tuple of three int arrays of shape (n_labels,)
        Row (example), column (annotator) and class code of each annotation.
    n_classes, n_annotators : int
        Number of classes and of annotators (columns, labelled or not).
    gold : (ndarray of shape (n_samples,), ndarray of shape (n_samples, K)), optional
        Mask and one-hot labels of the examples with a known true label.
    prior_counts : ndarray of shape (n_annotators, K, K), optional
        Per-annotator history pseudo-counts added to the Dirichlet prior ``c``.
    **em_params
        ``n_iter``, ``tau``, ``b`` and ``c`` of :func:`_em.run_em_sparse`.

    Returns
    -------
    EMResult
        ``mu`` (K, M), ``log_pi`` (K,), ``log_A`` (R, K, K), ``lam`` (N, K).
    """
    U = torch.from_numpy(np.ascontiguousarray(U, dtype=np.float64))
    # copies: the arrays of a CrowdLabelMatrix are read-only
    rows, cols, codes = (torch.tensor(np.asarray(a), dtype=torch.int64) for a in labels)
    if gold is not None:
        gold = tuple(torch.from_numpy(np.asarray(a)) for a in gold)
    if prior_counts is not None:
        em_params["prior_counts"] = torch.from_numpy(np.asarray(prior_counts))
    return _em.run_em_sparse(
        U, rows, cols, codes, n_classes, n_annotators, gold=gold, **em_params
    )


class MetaLearningWarning(UserWarning):
    """Meta-learning did not help, or could not be checked, on validation tasks.

    :meth:`MetaAnnotatorClassifier.meta_fit` emits it when the best meta-learned
    encoder is less accurate on the validation tasks than EM on standardised
    input features (``fit`` then uses the features when
    ``representation="auto"``), and when there are too few source classes to
    hold some out for validation.

    Examples
    --------
    >>> import warnings
    >>> import numpy as np
    >>> from sklearn_metaannot import MetaAnnotatorClassifier, MetaLearningWarning
    >>> rng = np.random.default_rng(0)
    >>> X, y = rng.normal(size=(90, 4)), np.repeat(np.arange(3), 30)
    >>> clf = MetaAnnotatorClassifier(n_way=3, n_episodes=4, episodes_per_epoch=4,
    ...                               random_state=0)
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     _ = clf.meta_fit(X, y)  # 3 classes: none left for validation
    >>> any(issubclass(w.category, MetaLearningWarning) for w in caught)
    True
    """


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
    >>> clf = MetaAnnotatorClassifier(n_way=3, n_episodes=4, episodes_per_epoch=4,
    ...                               validation_classes=0, random_state=0)
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


class MetaAnnotatorClassifier(ClassifierMixin, BaseEstimator):
    """Classifier learned from several noisy annotators in a meta-learned latent space.

    ``meta_fit`` meta-learns an encoder on source data with clean labels
    (episodes with simulated annotators, EM on the support set, cross-entropy
    on the query set, back-propagated through EM). ``fit`` then adapts to a
    crowd-labelled target task by MAP-EM in the latent space: class prototypes,
    class prior and one confusion matrix per annotator (Kumagai et al., 2025).
    Without ``meta_fit``, ``fit`` runs the same EM on standardised input
    features (the "no meta-learning" mode).

    Parameters
    ----------
    encoder : {"mlp", "residual_mlp", "feature_weights", "low_rank", "conv4"} \
or torch.nn.Module, default="mlp"
        Encoder architecture: an MLP for tabular data; "residual_mlp", the
        identity plus an MLP correction that starts at zero (ours: meta-learning
        starts from the input space, latent dimension = number of features,
        ``embedding_dim`` ignored); "feature_weights", a per-feature
        re-weighting that starts at the identity, and "low_rank", the identity
        plus a rank-``rank`` linear map that starts at zero (ours: low-capacity
        metrics for small sources); the four-block
        convolutional network of prototypical networks for images (given as
        (n, C, H, W), (n, H, W), or flat with ``image_shape``), or a module
        mapping (batch, n_features) float tensors to (batch, M) (deep-copied).
        Inputs are standardised with the source data's statistics: per feature
        for "mlp", with one global mean and standard deviation for the others
        (this keeps the geometry of the input space); a user module gets them
        as given.
    embedding_dim : int, default=64
        Latent dimension M.
    hidden_layer_sizes : tuple of int, default=(256,)
        Hidden layers of the "mlp" and "residual_mlp" encoders.
    image_shape : tuple of int, default=None
        (C, H, W) of flat image inputs for ``encoder="conv4"``.
    rank : int, default=8
        Rank of the correction of ``encoder="low_rank"``.
    encoder_alpha : float, default=1e-3
        Weight, in the meta-training loss, of the encoder's squared distance
        from the identity map (``"feature_weights"`` and ``"low_rank"``).
    n_way : int, default=5
        Classes per meta-training episode.
    n_shot : int or (int, int), default=(1, 5)
        Support examples per class in an episode, or an inclusive range drawn per
        episode (one model then serves several support sizes).
    n_query : int, default=10
        Query examples per class in an episode (the paper uses 10).
    n_annotators : int or (int, int), default=(3, 7)
        Simulated annotators per episode, or an inclusive range. Not specified
        by the paper; the range covers its R in {3, 5, 7}.
    annotator_mixture : dict or sequence of 3 floats, default=(0.1, 0.7, 0.2)
        Probabilities of (expert, hammer, spammer) pseudo-annotators (paper,
        Sec. 4.1), or a dict over the types of :class:`AnnotatorSimulator`.
    annotation_rate : float, default=1.0
        Probability that a pseudo-annotator labels a support example (ours; 1.0
        as in the paper).
    pseudo_annotation : bool, default=False
        Simulate annotators on the support sets of the meta-training episodes
        (the paper's method, Sec. 3.3). False meta-trains on clean supports
        (the paper's "w/o PA" ablation, a prototypical network trained through
        the EM steps); validation episodes are pseudo-annotated either way.
        The default is False because clean episodes won on the validation
        tasks of the benchmarks (see :ref:`pseudo-annotation-default`).
    n_episodes : int, default=2000
        Meta-training episodes in total.
    episodes_per_epoch : int, default=200
        Episodes between two validations (one skorch epoch).
    meta_batch_size : int, default=4
        Episodes per gradient step. Under ``accelerate launch --num_processes
        N`` this is the global meta-batch, the sum over the processes: each
        draws ``meta_batch_size // N`` episodes of every step (a multiple of N
        is required, and so is ``episodes_per_epoch``; ``n_episodes`` and
        ``episodes_per_epoch`` count global episodes too). See
        :doc:`/distributed`.
    validation_classes : float, default=0.2
        Fraction of the source classes held out for validation tasks when
        ``X_val`` is not given (at least ``n_way`` classes); 0 disables validation.
    n_val_episodes : int, default=100
        Number of (fixed) validation tasks.
    patience : int or None, default=None
        Early stopping: epochs without a better validation accuracy.
    checkpoint_dir : str or path-like, default=None
        If given, ``meta_fit`` saves its whole state there at every epoch end
        (``meta_fit_resume.pt``), and a later ``meta_fit`` with the same
        parameters and data resumes from it: an interrupted run ends as an
        uninterrupted one would, a finished run is not repeated. The encoder
        of the best epoch is also saved there with skorch's ``Checkpoint``
        (``params.pt``) when there are validation tasks.
    lr : float, default=1e-3
        Adam learning rate (not specified by the paper).
    max_grad_norm : float or None, default=1.0
        Clip the L2 norm of each meta-gradient to this value (skorch's
        ``GradientNormClipping``); None disables clipping (the paper's setting,
        which does not mention clipping). Back-propagation through EM on noisy
        supports yields rare gradients orders of magnitude above the typical
        one; the norms before clipping are in ``meta_history_``.
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
    device : str or torch.device, default="cpu"
        Device of meta-training ("cuda" for a GPU). ``fit`` and ``predict`` run on
        the CPU in float64.
    n_threads : int or None, default=None
        Torch intra-op threads during ``meta_fit`` on the CPU; None keeps torch's
        setting. Episodes are small: 1 is often fastest for MLP encoders, and
        always on a busy machine. ``fit`` and ``predict`` always use 1.
    num_workers : int, default=0
        ``DataLoader`` worker processes that sample and collate the training
        episodes of ``meta_fit`` while the main process trains (0: in the main
        process). Episode i of epoch e is seeded by (random_state, e, i), so the
        encoder does not depend on ``num_workers``. Workers are started at
        every epoch; they pay off when the encoder step is slower than
        sampling, e.g. on a GPU. The fixed validation tasks are sampled and
        collated once, in the main process.
    pin_memory : bool, default=False
        Page-locked host memory for the training batches, for faster copies to
        a CUDA ``device`` (ignored on the CPU).
    mixed_precision : {False, "bf16", "fp16"}, default=False
        Run the encoder of ``meta_fit`` under ``torch.autocast`` in bfloat16 or
        float16 (on the CPU as on CUDA); the embeddings are cast to float32
        before the EM, which stays in float32 log space. "fp16" adds loss
        scaling (``torch.amp.GradScaler``); bfloat16 needs none. Meant for
        GPUs with tensor cores; on the CPU it works but is not benchmarked as
        a speed-up. ``fit`` and ``predict`` always run in float64.
    compile_em : bool, default=False
        Run the EM steps of the training batches of ``meta_fit`` through
        ``torch.compile``, which fuses their many small operations (on the CPU
        the EM then costs about a quarter of its eager time, see the throughput
        benchmark). The first meta-batch of each shape compiles for tens of
        seconds, once per process, so it pays off for long runs; it needs a
        C++ compiler on the CPU and Triton on CUDA, and where compilation
        fails ``meta_fit`` warns and runs the EM eagerly. The results equal the
        eager ones up to floating-point rounding. ``fit`` is not compiled.
    random_state : int, RandomState instance or None, default=None
        Seeds episode sampling, annotator simulation and weight initialisation.
    callbacks : list of skorch callbacks or (str, callback) pairs, default=None
        Extra skorch callbacks of ``meta_fit``, e.g.
        ``skorch.callbacks.TensorBoard`` or an MLflow logger. They run after the
        package's own callbacks, so at ``on_epoch_end`` the history row holds
        ``train_loss``, ``valid_loss``, ``valid_acc`` and ``grad_norm_max``.
        They are passed to the skorch net as given, not copied: what a callback
        records stays on your object, and skorch re-initialises it at every
        ``meta_fit``. ``clone`` (hence ``GridSearchCV``) deep-copies them, as
        every parameter.
    verbose : int, default=0
        What ``meta_fit`` prints: 0 nothing; 1 one progress bar over the
        episodes, with the validation accuracy of the last epoch; 2 skorch's
        per-batch progress bar and a table of every epoch.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    prototypes_ : ndarray of shape (n_classes, M)
        Class prototypes in the latent space.
    class_prior_ : ndarray of shape (n_classes,)
        Estimated class prior.
    annotator_confusion_ : ndarray of shape (n_annotators, n_classes, n_classes)
        Estimated confusion matrices, ``[r, k, l] = p(annotator r says l | true
        class k)``.
    sample_posterior_ : ndarray of shape (n_samples, n_classes)
        Inferred true-label distribution of each training example.
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
        "normalized"), from ``X``.
    meta_encoder_ : FittedEncoder
        The meta-learned encoder (after ``meta_fit``; kept by ``clone``).
    meta_history_ : skorch.callbacks.History
        Per-epoch ``train_loss``, ``valid_loss``, ``valid_acc`` and
        ``grad_norm_max`` (per batch: ``grad_norm``, before clipping) of ``meta_fit``,
        with the references ``valid_acc_initial`` (the encoder before training)
        and ``valid_acc_no_meta``, ``valid_acc_scaled`` and
        ``valid_acc_normalized`` (EM in the input spaces).
    meta_selected_ : {"meta", "input", "scaled", "normalized"}
        The representation that was best on validation tasks (the best input
        space of ``meta_input_scores_`` when the validation tasks are fewer-way
        than ``n_way`` or absent).
    meta_val_scores_ : dict
        Validation-task accuracy of "meta" and of the input spaces (empty
        without validation tasks).
    meta_input_scores_ : dict
        Accuracy of EM in the input spaces on ``n_way``-way noisy
        episodes: the validation tasks when they are ``n_way``-way, otherwise
        episodes of all source classes (the input spaces learn nothing from the
        source, so its classes can validate them). Without ``n_way``-way
        validation tasks, ``meta_selected_`` is the best of them.
    meta_input_candidates_ : tuple of str
        The input spaces that ``fit(representation="auto")`` may switch to: those
        not clearly worse than the best of ``meta_input_scores_`` on the same
        episodes (paired over episodes, by less than ``MIN_Z`` standard errors).
    meta_val_accuracy_, no_meta_val_accuracy_ : float
        Validation-task accuracy of the best meta-learned encoder and of EM on
        standardised inputs (NaN without validation tasks).
    meta_best_epoch_ : int or None
        Epoch of the kept encoder; 0 means the encoder before training was
        never beaten on validation tasks.
    meta_world_size_ : int
        Number of processes that ran ``meta_fit`` data-parallel (1 without a
        launcher such as ``accelerate launch``); they all end with the same
        fitted attributes.

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

    #: Meta-training's episode module and episode datasets (private hooks for
    #: ablations that change them, e.g. ``benchmarks/omniglot_variants.py``).
    _episodic_em = EpisodicEM
    _episode_dataset = EpisodeDataset

    _parameter_constraints: dict = {
        "encoder": [
            StrOptions({"mlp", "residual_mlp", "feature_weights", "low_rank", "conv4"}),
            HasMethods(["forward", "parameters"]),
        ],
        "embedding_dim": [Interval(Integral, 1, None, closed="left")],
        "hidden_layer_sizes": ["array-like"],
        "image_shape": ["array-like", None],
        "rank": [Interval(Integral, 1, None, closed="left")],
        "encoder_alpha": [Interval(Real, 0, None, closed="left")],
        "n_way": [Interval(Integral, 2, None, closed="left")],
        "n_shot": [Interval(Integral, 1, None, closed="left"), "array-like"],
        "n_query": [Interval(Integral, 1, None, closed="left")],
        "n_annotators": [Interval(Integral, 1, None, closed="left"), "array-like"],
        "annotator_mixture": [dict, "array-like"],
        "annotation_rate": [Interval(Real, 0, 1, closed="right")],
        "pseudo_annotation": ["boolean"],
        "n_episodes": [Interval(Integral, 1, None, closed="left")],
        "episodes_per_epoch": [Interval(Integral, 1, None, closed="left")],
        "meta_batch_size": [Interval(Integral, 1, None, closed="left")],
        "validation_classes": [Interval(Real, 0, 1, closed="left")],
        "n_val_episodes": [Interval(Integral, 1, None, closed="left")],
        "patience": [Interval(Integral, 1, None, closed="left"), None],
        "checkpoint_dir": [str, os.PathLike, None],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "max_grad_norm": [Interval(Real, 0, None, closed="neither"), None],
        "n_em_iter": [Interval(Integral, 0, None, closed="left")],
        "tau": [Interval(Real, 0, None, closed="left")],
        "b": [Interval(Real, 1, None, closed="left")],
        "c": [Interval(Real, 1, None, closed="left"), "array-like"],
        "history_weight": [Interval(Real, 0, None, closed="left")],
        "representation": [StrOptions({"auto", "meta", *INPUT_SPACES})],
        "device": [str, torch.device],
        "n_threads": [Interval(Integral, 1, None, closed="left"), None],
        "num_workers": [Interval(Integral, 0, None, closed="left")],
        "pin_memory": ["boolean"],
        "mixed_precision": [StrOptions({"bf16", "fp16"}), Options(bool, {False})],
        "compile_em": ["boolean"],
        "random_state": ["random_state"],
        "callbacks": [list, None],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        *,
        encoder="mlp",
        embedding_dim=64,
        hidden_layer_sizes=(256,),
        image_shape=None,
        rank=8,
        encoder_alpha=1e-3,
        n_way=5,
        n_shot=(1, 5),
        n_query=10,
        n_annotators=(3, 7),
        annotator_mixture=(0.1, 0.7, 0.2),
        annotation_rate=1.0,
        pseudo_annotation=False,
        n_episodes=2000,
        episodes_per_epoch=200,
        meta_batch_size=4,
        validation_classes=0.2,
        n_val_episodes=100,
        patience=None,
        checkpoint_dir=None,
        lr=1e-3,
        max_grad_norm=1.0,
        n_em_iter=3,
        tau=0.0,
        b=10.0,
        c=(2.0, 1.0),
        history_weight=1.0,
        representation="auto",
        device="cpu",
        n_threads=None,
        num_workers=0,
        pin_memory=False,
        mixed_precision=False,
        compile_em=False,
        random_state=None,
        callbacks=None,
        verbose=0,
    ):
        self.encoder = encoder
        self.embedding_dim = embedding_dim
        self.hidden_layer_sizes = hidden_layer_sizes
        self.image_shape = image_shape
        self.rank = rank
        self.encoder_alpha = encoder_alpha
        self.n_way = n_way
        self.n_shot = n_shot
        self.n_query = n_query
        self.n_annotators = n_annotators
        self.annotator_mixture = annotator_mixture
        self.annotation_rate = annotation_rate
        self.pseudo_annotation = pseudo_annotation
        self.n_episodes = n_episodes
        self.episodes_per_epoch = episodes_per_epoch
        self.meta_batch_size = meta_batch_size
        self.validation_classes = validation_classes
        self.n_val_episodes = n_val_episodes
        self.patience = patience
        self.checkpoint_dir = checkpoint_dir
        self.lr = lr
        self.max_grad_norm = max_grad_norm
        self.n_em_iter = n_em_iter
        self.tau = tau
        self.b = b
        self.c = c
        self.history_weight = history_weight
        self.representation = representation
        self.device = device
        self.n_threads = n_threads
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.mixed_precision = mixed_precision
        self.compile_em = compile_em
        self.random_state = random_state
        self.callbacks = callbacks
        self.verbose = verbose

    # -- scikit-learn protocol -------------------------------------------------

    def __sklearn_clone__(self):
        new = super().__sklearn_clone__()
        for name in _META_ATTRIBUTES:
            if hasattr(self, name):
                setattr(new, name, getattr(self, name))
        return new

    def __sklearn_is_fitted__(self):
        return hasattr(self, "classes_")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.target_tags.required = True
        return tags

    # -- helpers ---------------------------------------------------------------

    def _em_prior_c(self):
        c = self.c
        if isinstance(c, Real):
            return float(c)
        try:
            pair = tuple(float(v) for v in c)
        except (TypeError, ValueError):
            raise TypeError(
                f"c must be a float or a (diagonal, off-diagonal) pair, got {c!r}"
            ) from None
        if len(pair) != 2 or min(pair) < 1:
            raise ValueError(
                f"c must be a float >= 1 or a (diagonal, off-diagonal) pair of floats "
                f">= 1, got {c!r}"
            )
        return pair

    def _meta_fingerprint(self, *arrays):
        """Identifies a meta_fit run: a checkpoint resumes only the same one."""
        if self.checkpoint_dir is None:
            return None
        skip = {
            "checkpoint_dir",
            "verbose",
            "n_threads",
            "representation",
            "history_weight",
            "num_workers",
            "pin_memory",
            "compile_em",
        }
        params = {k: v for k, v in self.get_params().items() if k not in skip}
        if isinstance(self.encoder, torch.nn.Module):
            params["encoder"] = f"{type(self.encoder).__name__}: {self.encoder!r}"
        return config_fingerprint(params, arrays)

    def _new_encoder(self, n_features, image_shape):
        """A fresh encoder module for the ``encoder`` parameter (also used by load)."""
        if isinstance(self.encoder, torch.nn.Module):
            return copy.deepcopy(self.encoder)
        return build_encoder(
            self.encoder,
            n_features,
            embedding_dim=self.embedding_dim,
            hidden_layer_sizes=self.hidden_layer_sizes,
            image_shape=image_shape,
            rank=self.rank,
        )

    def _warn_missing_classes(self, classes):
        if hasattr(self, "meta_encoder_") and len(classes) < self.n_way:
            warnings.warn(
                f"the annotators named {len(classes)} classes "
                f"({np.asarray(classes).tolist()[:10]}) but meta-training episodes "
                f"had n_way={self.n_way}; a class that nobody named cannot be "
                "predicted. Pass fit(X, Y, classes=[...]) to keep every class",
                MissingClassWarning,
                stacklevel=4,  # fit, its _fit_context wrapper, the caller
            )

    def _check_X(self, X, *, reset):
        X, _ = flatten_samples(X)
        return validate_data(self, X, reset=reset, dtype=[np.float64, np.float32])

    def _embed(self, X, representation=None):
        representation = representation or self.representation_
        if representation == "meta":
            return self.meta_encoder_.transform(X)
        offset, scale = self.input_scaling_[representation]
        return to_input_space(X, representation, offset, scale)

    def _check_meta_encoder(self, X):
        if not hasattr(self, "meta_encoder_"):
            raise ValueError(
                "representation='meta' needs a meta-learned encoder: call "
                "meta_fit first"
            )
        if self.meta_encoder_.n_features_in != X.shape[1]:
            raise ValueError(
                f"X has {X.shape[1]} features, but the meta-learned encoder "
                f"expects {self.meta_encoder_.n_features_in} (the features of "
                "X_source in meta_fit)"
            )

    def _set_input_scaling(self, X):
        """Offsets and scales of the input spaces (``INPUT_SPACES``), from X."""
        self.input_scaling_ = {s: input_space_scaling(X, s) for s in INPUT_SPACES}

    def _choose_representation(self, X, labels, n_classes):
        """``representation="auto"``: choose a latent space from the crowd labels.

        The default is what ``meta_fit`` found best on validation tasks
        ("input" without ``meta_fit``). When the task has at least
        ``MIN_ITEMS_PER_CLASS`` labelled items per class, held-out crowd labels
        (:func:`~sklearn_metaannot._selection.held_out_agreement`) may
        overrule it (:func:`~sklearn_metaannot._selection.choose_representation`)
        with a space whose agreement is also above chance, ``1 / K``.
        """
        default = getattr(self, "meta_selected_", "input")
        # input spaces clearly worse on meta_fit's source episodes stay out: how
        # well a space suits the features depends on their units, not classes
        plausible = getattr(self, "meta_input_candidates_", INPUT_SPACES)
        spaces = [*INPUT_SPACES, *(["meta"] if hasattr(self, "meta_encoder_") else [])]
        candidates = [s for s in spaces if s in plausible or s in (default, "meta")]
        n_labelled = int(np.unique(labels.rows).size)
        self.representation_scores_ = dict.fromkeys(spaces, float("nan"))
        if n_labelled < _selection.MIN_ITEMS_PER_CLASS * n_classes:
            return default
        seed = self._held_out_seed()
        scores = {}
        with torch_threads(1):
            for name in candidates:
                U = self._embed(X, name)
                scores[name] = self._held_out_scores(U, labels, n_classes, seed)
                self.representation_scores_[name] = float(np.mean(scores[name]))
        return _selection.choose_representation(
            scores, default, min_z=_selection.MIN_Z, chance=1.0 / n_classes
        )

    def _held_out_seed(self):
        """Seed of the held-out folds; None (folds in turn) without random_state.

        Drawn once per task, so that every candidate space gets the same folds.
        """
        if self.random_state is None:
            return None  # fit stays deterministic without random_state
        return check_random_state(self.random_state).randint(2**31 - 1)

    def _held_out_scores(
        self, U, labels, n_classes, seed, *, by_item=True, score="probability"
    ):
        """Held-out agreement of the crowd ``labels`` in the space ``U``, with the
        folds of ``seed`` and this model's EM settings (per item by default)."""
        return _selection.held_out_agreement(
            U,
            (labels.rows, labels.cols, labels.codes),
            n_classes,
            n_folds=_selection.N_FOLDS,
            random_state=seed,
            by_item=by_item,
            score=score,
            n_iter=self.n_em_iter,
            tau=self.tau,
            b=self.b,
            c=self._em_prior_c(),
        )

    # -- meta-training -----------------------------------------------------------

    def _input_scaling(self, X):
        """Offset and scale of the encoder input, from the source data."""
        if self.encoder == "mlp":
            offset, scale = X.mean(axis=0), X.std(axis=0)
            scale[scale == 0] = 1.0
        elif self.encoder in ("conv4", "residual_mlp", "feature_weights", "low_rank"):
            # one scalar offset and scale keep the geometry of the input space,
            # which the residual encoder starts from
            offset, scale = np.float32(X.mean()), np.float32(X.std() or 1.0)
        else:  # a user module sees the inputs as given
            offset, scale = np.float32(0.0), np.float32(1.0)
        return offset, scale

    def _check_device(self):
        """A clear error for a device that torch cannot use here."""
        try:
            device = torch.device(self.device)
        except (RuntimeError, TypeError) as exc:
            raise ValueError(
                f"device={self.device!r} is not a torch device; expected 'cpu', "
                f"'cuda' or 'cuda:N'"
            ) from exc
        if device.type == "cuda":
            n_gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
            if n_gpus == 0:
                raise ValueError(
                    f"device={self.device!r} was requested but torch sees no CUDA "
                    f"device (torch {torch.__version__}, "
                    f"torch.cuda.is_available() is False); use device='cpu'"
                )
            if device.index is not None and device.index >= n_gpus:
                raise ValueError(
                    f"device={self.device!r}: there are only {n_gpus} CUDA device(s)"
                )

    def _meta_random_state(self, group):
        """``check_random_state(random_state)``; rank 0's under a launcher.

        With ``random_state=None`` or a ``RandomState`` every process would
        draw differently; a copy of rank 0's generator gives them all its draws.
        """
        rng = check_random_state(self.random_state)
        return rng if group is None else group.broadcast(rng)

    def _split_validation(self, X, y, X_val, y_val, rng):
        if X_val is not None or y_val is not None:
            if X_val is None or y_val is None:
                raise ValueError("X_val and y_val must be given together")
            X_val, _ = flatten_samples(X_val)
            X_val = validate_data(self, X_val, reset=False, dtype=np.float32)
            y_val = np.asarray(y_val)
            if y_val.ndim != 1 or len(y_val) != len(X_val):
                raise ValueError(
                    f"y_val must be 1-D with one label per row of X_val, got shape "
                    f"{y_val.shape} for {len(X_val)} rows"
                )
            return X, y, X_val, y_val
        classes = np.unique(y)
        n_classes = len(classes)
        # as many held-out classes as validation_classes asks (at least 2), more
        # (up to n_way) while n_way classes remain for training
        n_val = max(2, math.ceil(self.validation_classes * n_classes))
        n_val = max(n_val, min(self.n_way, n_classes - self.n_way))
        if self.validation_classes == 0 or n_classes - n_val < 2:
            warnings.warn(
                f"meta_fit has no validation tasks (validation_classes="
                f"{self.validation_classes}, {n_classes} source classes, n_way="
                f"{self.n_way}): it cannot check that the meta-learned encoder beats "
                "the input features, so fit (representation='auto') uses the encoder "
                "only on tasks whose own crowd labels show it to be better; pass "
                "X_val, y_val or more classes",
                MetaLearningWarning,
                stacklevel=4,  # meta_fit, its _fit_context wrapper, the caller
            )
            return X, y, None, None
        if n_val < self.n_way or n_classes - n_val < self.n_way:
            warnings.warn(
                f"{n_classes} source classes are too few for {self.n_way}-way "
                f"training and validation episodes on disjoint classes: meta_fit "
                f"holds out {n_val} classes for {min(self.n_way, n_val)}-way "
                f"validation episodes and trains on "
                f"{min(self.n_way, n_classes - n_val)}-way episodes",
                MetaLearningWarning,
                stacklevel=4,
            )
        val_classes = rng.choice(classes, size=n_val, replace=False)
        is_val = np.isin(y, val_classes)
        return X[~is_val], y[~is_val], X[is_val], y[is_val]

    def _no_meta_scores(
        self, X, y, *, episodes, seed, c, spaces=INPUT_SPACES, return_episodes=False
    ):
        """Query accuracy of EM in the input spaces on episodes from ``(X, y)``.

        ``n_val_episodes`` noisy ``min(n_way, n_classes)``-way episodes, seeded
        by ``seed``, from the features as given (``fit`` scales them itself);
        ties go to "input", listed first. With ``return_episodes``, also each
        space's accuracy per episode (the same episodes for every space).
        """
        n_way = min(self.n_way, len(np.unique(y)))
        sampler = EpisodeSampler(X, y, n_way=n_way, pseudo_annotation=True, **episodes)
        dataset = EpisodeDataset(sampler, self.n_val_episodes, seed, fixed=True)
        em = {"n_em_iter": self.n_em_iter, "tau": self.tau, "b": self.b, "c": c}
        with torch_threads(1):
            results = {
                name: no_meta_accuracy(
                    dataset, scaling=name, return_episodes=True, **em
                )
                for name in spaces
            }
        scores = {name: r[0] for name, r in results.items()}
        if return_episodes:
            return scores, {name: r[1] for name, r in results.items()}
        return scores

    @_fit_context(prefer_skip_nested_validation=True)
    def meta_fit(self, X_source, y_source, *, X_val=None, y_val=None):
        """Meta-learn the encoder on source tasks with clean labels.

        Parameters
        ----------
        X_source : array-like of shape (n_samples, n_features) or (n_samples, C, H, W)
            Source examples.
        y_source : array-like of shape (n_samples,)
            Clean source labels; classes should differ from the target task's.
        X_val, y_val : array-like, optional
            Validation data of other classes. By default ``validation_classes`` of
            the source classes are held out. Validation data of classes of
            ``y_source`` chooses the epoch but not the latent space (with a
            :class:`MetaLearningWarning`): ``meta_selected_`` is then the better
            input space.

        Returns
        -------
        self : MetaAnnotatorClassifier
            With ``meta_encoder_``, ``meta_history_`` and ``meta_selected_`` set.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn_metaannot import MetaAnnotatorClassifier
        >>> rng = np.random.default_rng(0)
        >>> y_source = np.repeat(np.arange(12), 20)  # 12 source classes
        >>> X_source = rng.normal(size=(240, 6)) + np.eye(12, 6)[y_source]
        >>> clf = MetaAnnotatorClassifier(
        ...     n_way=3, n_episodes=20, episodes_per_epoch=10, n_val_episodes=5,
        ...     random_state=0)
        >>> clf = clf.meta_fit(X_source, y_source)
        >>> len(clf.meta_history_), clf.meta_selected_ != "auto"
        (2, True)
        """
        X_flat, sample_shape = flatten_samples(X_source)
        X = validate_data(self, X_flat, reset=True, dtype=np.float32)
        y = np.asarray(y_source)
        if y.ndim != 1:
            raise ValueError(
                f"y_source must be 1-D clean labels, got an array of shape {y.shape}"
            )
        if len(y) != len(X):
            raise ValueError(
                f"X_source and y_source have different numbers of samples: "
                f"{len(X)} != {len(y)}"
            )
        check_classification_targets(y)
        self._check_device()
        # data-parallel under a launcher (accelerate launch): None for one process
        group = process_group(self.device)
        world_size = 1 if group is None else group.world_size
        if group is not None:
            check_divisible(
                world_size,
                meta_batch_size=self.meta_batch_size,
                episodes_per_epoch=self.episodes_per_epoch,
            )
        image_shape = self.image_shape
        if image_shape is None and sample_shape is not None:
            image_shape = sample_shape if len(sample_shape) == 3 else (1, *sample_shape)
        simulator = AnnotatorSimulator(
            self.annotator_mixture, annotation_rate=self.annotation_rate
        )
        X_val_given = X_val is not None
        X_train, y_train, X_val, y_val = self._split_validation(
            X, y, X_val, y_val, self._meta_random_state(group)
        )
        offset, scale = self._input_scaling(X_train)
        n_classes_train = len(np.unique(y_train))
        if n_classes_train < 2:
            raise ValueError(
                f"meta_fit needs at least 2 source classes for training, got "
                f"{n_classes_train}"
            )
        # fewer source classes than n_way: smaller episodes
        train_way = min(self.n_way, n_classes_train)
        if train_way < self.n_way and (X_val_given or X_val is None):
            # (_split_validation has said so when it held classes out)
            warnings.warn(
                f"{n_classes_train} source classes for training: meta_fit uses "
                f"{train_way}-way training episodes instead of n_way={self.n_way}",
                MetaLearningWarning,
                stacklevel=3,
            )

        c = self._em_prior_c()
        extra_callbacks = check_callbacks(self.callbacks)
        episode_kw = {
            "n_shot": self.n_shot,
            "n_query": self.n_query,
            "n_annotators": self.n_annotators,
            "simulator": simulator,
        }
        rng = self._meta_random_state(group)
        seed_train, seed_val, seed_torch = rng.randint(2**31 - 1, size=3)
        sync = [] if group is None else [("distributed", SynchronizeProcesses(group))]
        scale_inputs = lambda A: ((A - offset) / scale).astype(np.float32)  # noqa: E731
        train_sampler = EpisodeSampler(
            scale_inputs(X_train),
            y_train,
            n_way=train_way,
            pseudo_annotation=self.pseudo_annotation,
            **episode_kw,
        )
        epochs = math.ceil(self.n_episodes / self.episodes_per_epoch)
        train_ds = self._episode_dataset(
            train_sampler, self.episodes_per_epoch, seed_train
        )
        if group is not None:
            train_ds = ShardedEpisodeDataset(
                train_ds, self.meta_batch_size, group.rank, world_size
            )
        val_ds = None
        if X_val is not None:
            # validation tasks always carry simulated annotators: they stand for
            # the noisy target tasks the user will meet
            val_sampler = EpisodeSampler(
                scale_inputs(X_val),
                y_val,
                n_way=min(self.n_way, len(np.unique(y_val))),
                pseudo_annotation=True,
                **episode_kw,
            )
            val_ds = self._episode_dataset(
                val_sampler, self.n_val_episodes, seed_val, fixed=True
            )

        threads = torch.get_num_threads() if self.n_threads is None else self.n_threads
        with torch.random.fork_rng(devices=[]), torch_threads(threads):
            torch.manual_seed(int(seed_torch))
            module = self._new_encoder(X.shape[1], image_shape)
            episodic = self._episodic_em(
                module,
                train_way,
                n_em_iter=self.n_em_iter,
                tau=self.tau,
                b=self.b,
                c=c,
                encoder_alpha=self.encoder_alpha,
                autocast_dtype=check_mixed_precision(self.mixed_precision),
                compile_em=self.compile_em,
            )
            net, keep_best = make_net(
                episodic,
                lr=self.lr,
                max_grad_norm=self.max_grad_norm,
                max_epochs=epochs,
                batch_size=self.meta_batch_size // world_size,
                valid_dataset=val_ds,
                patience=self.patience,
                checkpoint_dir=self.checkpoint_dir,
                device=self.device if group is None else group.device,
                verbose=self.verbose if group is None or group.is_main else 0,
                fingerprint=self._meta_fingerprint(X_train, y_train, X_val, y_val),
                n_train_episodes=epochs * self.episodes_per_epoch,
                extra_callbacks=extra_callbacks,
                first_callbacks=sync,
                main_process=group is None or group.is_main,
                num_workers=self.num_workers,
                pin_memory=self.pin_memory,
                valid_batch_size=validation_batch_size(
                    self.meta_batch_size, self.n_val_episodes
                ),
                grad_scaling=self.mixed_precision == "fp16",
            )
            fit_or_resume(net, train_ds, dict(net.callbacks).get("resume"))
            if group is not None:
                adopt_main_result(group, net, keep_best)

        history = net.history
        self.meta_best_epoch_ = keep_best.best_epoch_
        # The input spaces learn nothing from the source, so every source class
        # can validate them, at the target's n_way; the encoder needs held-out
        # classes. Their episodes are drawn from the raw features (as fit sees
        # them), with the validation tasks' seed: paired with them when the
        # classes are the same.
        no_meta_kw = {"episodes": episode_kw, "seed": seed_val, "c": c}
        val_full_way = X_val is not None and val_sampler.n_way == self.n_way
        if val_full_way:
            X_in, y_in = X_val, y_val
        else:
            X_in = X_train if X_val is None else np.concatenate([X_train, X_val])
            y_in = y_train if y_val is None else np.concatenate([y_train, y_val])
        input_scores, per_episode = self._no_meta_scores(
            X_in, y_in, return_episodes=True, **no_meta_kw
        )
        self.meta_input_scores_ = input_scores
        self.meta_input_candidates_ = _selection.plausible_spaces(
            input_scores, per_episode, min_z=_selection.MIN_Z
        )
        if val_ds is not None:
            module.load_state_dict(keep_best.best_state_)
            self.meta_val_accuracy_ = float(keep_best.best_score_)
            scores = {"meta": self.meta_val_accuracy_}
            if val_full_way:
                scores.update(input_scores)
            else:
                scores.update(self._no_meta_scores(X_val, y_val, **no_meta_kw))
            self.no_meta_val_accuracy_ = scores["input"]
            for row in history:
                row["valid_acc_no_meta"] = scores["input"]
                row["valid_acc_scaled"] = scores["scaled"]
                row["valid_acc_normalized"] = scores["normalized"]
            self.meta_val_scores_ = scores
            # ties go to the meta-learned encoder (listed first)
            self.meta_selected_ = max(scores, key=scores.get)
            seen = sorted(
                set(np.unique(y_val).tolist()) & set(np.unique(y_train).tolist()),
                key=str,
            )
            if seen and X_val_given:
                # Tasks of classes the encoder was trained on measure how well it
                # fits them, not how it transfers to new ones (on LabelMe, 0.83
                # against 0.50 for EM on the input features there, a tie on the
                # target tasks): they choose the epoch, not the latent space.
                self.meta_selected_ = max(input_scores, key=input_scores.get)
                warnings.warn(
                    f"X_val shares {len(seen)} classes with X_source (e.g. "
                    f"{seen[0]!r}): its tasks choose the epoch but cannot show that "
                    f"the encoder transfers to new classes (accuracy "
                    f"{scores['meta']:.3f} against {scores[self.meta_selected_]:.3f}"
                    f"); fit (representation='auto') uses representation="
                    f"{self.meta_selected_!r}, and the encoder only on tasks whose "
                    "own crowd labels show it to be better; pass X_val of other "
                    "classes to validate it",
                    MetaLearningWarning,
                    stacklevel=3,
                )
            elif val_sampler.n_way < self.n_way:
                # Smaller validation episodes than target tasks, over one or two
                # held-out classes, rated the encoder above the input spaces where
                # it was far below them on target tasks (small-source benchmark):
                # the encoder must prove itself on each task.
                self.meta_selected_ = max(input_scores, key=input_scores.get)
                warnings.warn(
                    f"the validation tasks are {val_sampler.n_way}-way, smaller than "
                    f"n_way={self.n_way}: they cannot validate the meta-learned "
                    f"encoder (accuracy {scores['meta']:.3f} against "
                    f"{scores[self.meta_selected_]:.3f}); fit (representation='auto') "
                    f"uses representation={self.meta_selected_!r}, the better input "
                    f"space on {self.n_way}-way episodes of all source classes, and "
                    "the encoder only on tasks whose own crowd labels show it to be "
                    "better",
                    MetaLearningWarning,
                    stacklevel=3,
                )
            elif self.meta_selected_ != "meta":
                warnings.warn(
                    "meta-learning did not help on the validation tasks: the best "
                    f"meta-learned encoder (epoch {self.meta_best_epoch_}) reached "
                    f"accuracy {scores['meta']:.3f}, EM on standardised input "
                    f"features {scores['input']:.3f}, on globally scaled features "
                    f"{scores['scaled']:.3f}, on unit-norm items "
                    f"{scores['normalized']:.3f}. fit will use "
                    f"representation={self.meta_selected_!r} unless a task's crowd "
                    "labels show the encoder to be better "
                    "(representation='auto'); set representation='meta' to use the "
                    "encoder anyway",
                    MetaLearningWarning,
                    stacklevel=3,  # past the _fit_context wrapper
                )
        else:
            # nothing validated the encoder: fit(representation="auto") uses it
            # only where a task's own crowd labels show it to be better
            self.meta_val_accuracy_ = self.no_meta_val_accuracy_ = float("nan")
            self.meta_val_scores_ = {}
            self.meta_selected_ = max(input_scores, key=input_scores.get)
        self.meta_encoder_ = FittedEncoder(module, offset, scale, X.shape[1])
        self.meta_history_ = history
        self.meta_world_size_ = world_size
        return self

    # -- adaptation and prediction --------------------------------------------

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, Y, classes=None, y_gold=None, annotator_prior=None):
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
        X = self._check_X(X, reset=True)
        Y_given = Y
        explicit = classes is not None
        labels, classes = check_crowd_labels(
            Y, X.shape[0], classes=classes, sparse=True
        )
        if not explicit:
            self._warn_missing_classes(classes)
        gold = check_gold_labels(y_gold, classes, X.shape[0])
        annotators = annotator_ids(Y_given, labels.n_annotators)
        history, has_history = check_annotator_prior(
            annotator_prior, annotators, classes
        )
        if history is not None:
            history = float(self.history_weight) * history
        mode = self.representation
        if mode == "meta" or (mode == "auto" and hasattr(self, "meta_encoder_")):
            self._check_meta_encoder(X)
        self._set_input_scaling(X)
        if mode == "auto":
            mode = self._choose_representation(X, labels, len(classes))
        else:
            self.representation_scores_ = {}
        self.representation_ = mode

        with torch_threads(1):
            res = _fit_em(
                self._embed(X),
                (labels.rows, labels.cols, labels.codes),
                len(classes),
                labels.n_annotators,
                n_iter=self.n_em_iter,
                tau=self.tau,
                b=self.b,
                c=self._em_prior_c(),
                gold=gold,
                prior_counts=history,
            )
        self.classes_ = classes
        self.prototypes_ = res.mu.numpy()
        self.class_prior_ = res.log_pi.exp().numpy()
        self.annotator_confusion_ = res.log_A.exp().numpy()
        self.sample_posterior_ = res.lam.numpy()
        self.n_annotators_ = labels.n_annotators
        self.annotators_ = annotators
        self.annotator_n_labels_, self.annotator_accuracy_ = _label_accuracy(
            labels, self.sample_posterior_
        )
        self.annotator_counts_ = _expected_counts(labels, self.sample_posterior_)
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
        with torch_threads(1):
            U = torch.from_numpy(np.ascontiguousarray(self._embed(X)))[None]
            log_proba = _em.predict_log_proba(
                U,
                torch.from_numpy(self.prototypes_)[None],
                torch.from_numpy(np.log(self.class_prior_))[None],
            )
        return log_proba[0].numpy()

    def predict_proba(self, X):
        """Class probabilities ``p(t = k | x)`` from the prototypes and class prior.

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
        >>> proba = clf.predict_proba([[0.1], [3.1]])
        >>> proba.argmax(axis=1), np.allclose(proba.sum(axis=1), 1.0)
        (array([0, 1]), True)
        """
        check_is_fitted(self)
        return np.exp(self.predict_log_proba(X))

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
        >>> from sklearn_metaannot import MetaAnnotatorClassifier
        >>> X = np.array([[0.0], [0.2], [3.0], [3.2]])
        >>> Y = [["cat", "cat"], ["cat", "dog"], ["dog", "dog"], ["dog", None]]
        >>> clf = MetaAnnotatorClassifier().fit(X, Y)
        >>> clf.predict([[0.1], [3.1]]).tolist()
        ['cat', 'dog']
        """
        check_is_fitted(self)
        return self.classes_[np.argmax(self.predict_log_proba(X), axis=1)]

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
