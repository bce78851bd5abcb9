"""Meta-training: the MetaLearner and the frozen encoder it produces."""
# SPDX-License-Identifier: BSD-3-Clause

from __future__ import annotations

import copy
import math
import os
from numbers import Integral, Real
from typing import NamedTuple

import numpy as np
import torch
from sklearn.base import BaseEstimator, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, Options, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import validate_data

from ..adapt import _representation
from ..adapt._representation import INPUT_SPACES, no_meta_accuracy
from ..crowd._annotators import PAPER_MIXTURE, AnnotatorSimulator
from ..crowd._validation import check_em_params, flatten_samples, warn_user
from ..episodes import EpisodeSampler
from ._checkpoint import config_fingerprint, fit_or_resume
from ._distributed import (
    ShardedEpisodeDataset,
    SynchronizeProcesses,
    adopt_main_result,
    check_divisible,
    process_group,
)
from ._encoders import build_encoder
from ._episodic import (
    EpisodeDataset,
    EpisodicEM,
    FittedEncoder,
    TrainingConfig,
    check_callbacks,
    make_net,
    torch_threads,
)
from ._throughput import check_mixed_precision, validation_batch_size


def _qualified_name(cls):
    return f"{cls.__module__}.{cls.__qualname__}"


class MetaLearningWarning(UserWarning):
    """Meta-learning did not help, or could not be checked, on validation tasks.

    :meth:`MetaLearner.fit` emits it when the best meta-learned
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
    >>> from sklearn_metaannot import MetaLearner
    >>> learner = MetaLearner(n_way=3, n_episodes=4, episodes_per_epoch=4)
    >>> clf = MetaAnnotatorClassifier(meta_learner=learner, random_state=0)
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     _ = clf.meta_fit(X, y)  # 3 classes: none left for validation
    >>> any(issubclass(w.category, MetaLearningWarning) for w in caught)
    True
    """


class _Episodes(NamedTuple):
    """What stage 1 of :meth:`MetaLearner.fit` hands to the training loop and
    to validation."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray | None
    y_val: np.ndarray | None
    X_val_given: bool
    offset: np.ndarray
    scale: np.ndarray
    train_way: int
    val_way: int
    train_ds: object
    val_ds: object
    episode_kw: dict
    seed_val: int
    seed_torch: int


class MetaEncoder(FittedEncoder):
    """A frozen meta-learned encoder with what its validation found.

    :meth:`MetaLearner.fit` produces it (``meta_encoder_``) and
    :meth:`MetaAnnotatorClassifier.meta_fit` stores it as the classifier's
    ``meta_encoder`` parameter. It is frozen: ``clone`` returns the object
    itself (as scikit-learn's ``FrozenEstimator``), so ``GridSearchCV`` over
    the adaptation parameters never meta-trains again, and its weights are
    never trained after meta-training.

    Parameters
    ----------
    module, offset, scale, n_features_in
        As :class:`FittedEncoder`.
    selected : str
        The validated default space of ``fit(representation="auto")``: "meta"
        or a name of the input spaces.
    input_candidates : tuple of str
        The input spaces that the per-task check may switch to (not clearly
        worse than the best one on the source episodes).
    val_scores : dict
        Validation-task accuracy of "meta" and of the input spaces (empty
        without validation tasks).
    input_scores : dict
        Accuracy of EM in the input spaces on ``n_way``-way source episodes.
    best_epoch : int or None
        Epoch of the kept weights (0: the encoder before training).
    history : skorch.callbacks.History or list
        Per-epoch history of meta-training.
    world_size : int
        Processes that ran meta-training data-parallel.
    n_way : int
        Classes per meta-training episode.
    learner_params : dict
        The architecture parameters of the :class:`MetaLearner` (``encoder``,
        ``embedding_dim``, ``hidden_layer_sizes``, ``image_shape``, ``rank``)
        that rebuild ``module`` when a saved model is loaded.
    feature_names_in : ndarray of str or None, default=None
        The column names of ``X_source`` when it was a DataFrame.
    recipe : str or None, default=None
        :meth:`MetaLearner.recipe` of the learner that made it.
    source : tuple or None, default=None
        ``(X_source, y_source, X_val, y_val)`` as given to
        :meth:`MetaLearner.fit`, by reference (not copied, not pickled, not
        saved): what ``MetaAnnotatorClassifier.fit`` meta-trains on again when
        its ``meta_learner`` has another recipe.

    Attributes
    ----------
    val_accuracy : float
        Validation accuracy of the kept encoder (NaN without validation).
    no_meta_val_accuracy : float
        Validation accuracy of EM on standardised inputs (NaN without
        validation).

    Examples
    --------
    >>> import torch
    >>> from sklearn.base import clone
    >>> from sklearn_metaannot import MetaAnnotatorClassifier, MetaEncoder
    >>> encoder = MetaEncoder(torch.nn.Identity(), offset=0.0, scale=1.0,
    ...                       n_features_in=3, selected="meta")
    >>> clf = MetaAnnotatorClassifier(meta_encoder=encoder)
    >>> clone(clf).meta_encoder is encoder  # frozen: clone keeps it
    True
    """

    def __init__(
        self,
        module,
        offset,
        scale,
        n_features_in,
        *,
        selected="input",
        input_candidates=INPUT_SPACES,
        val_scores=None,
        input_scores=None,
        best_epoch=None,
        history=(),
        world_size=1,
        n_way=None,
        learner_params=None,
        feature_names_in=None,
        recipe=None,
        source=None,
    ):
        super().__init__(module, offset, scale, n_features_in)
        self.selected = selected
        self.input_candidates = tuple(input_candidates)
        self.val_scores = dict(val_scores or {})
        self.input_scores = dict(input_scores or {})
        self.best_epoch = best_epoch
        self.history = history
        self.world_size = int(world_size)
        self.n_way = n_way
        self.learner_params = dict(learner_params or {})
        self.feature_names_in = (
            None if feature_names_in is None else np.asarray(feature_names_in)
        )
        self.recipe = recipe
        self.source = source

    def __getstate__(self):
        # the source data is a reference for meta-training again (a search
        # over meta_learner's parameters); pickles and saved models leave it out
        state = self.__dict__.copy()
        state["source"] = None
        return state

    @property
    def val_accuracy(self):
        return float(self.val_scores.get("meta", float("nan")))

    @property
    def no_meta_val_accuracy(self):
        return float(self.val_scores.get("input", float("nan")))

    def __sklearn_clone__(self):
        return self  # frozen: clone keeps it, as it keeps FrozenEstimator

    def __repr__(self):
        arch = self.learner_params.get("encoder", type(self.module).__name__)
        return (
            f"MetaEncoder({arch!s}, n_features_in={self.n_features_in}, "
            f"selected={self.selected!r})"
        )


def _with_distractors(episode_kw, n_classes, n_way):
    """``episode_kw`` with as many distractor classes as ``n_classes`` allow
    beyond the ``n_way`` of an episode (``n_distractor_classes`` at most; none
    without unlabelled examples, the only thing they contribute)."""
    n = min(episode_kw.get("n_distractor_classes", 0), n_classes - n_way)
    n *= episode_kw.get("n_unlabelled", 0) > 0
    return {**episode_kw, "n_distractor_classes": n}


class MetaLearner(BaseEstimator):
    """Meta-learns an encoder on source tasks with clean labels.

    It holds every meta-training parameter; :meth:`fit` samples episodes
    (clean supports by default, or with simulated annotators), adapts by the
    EM on each support, back-propagates the query loss into the encoder, and
    compares the encoder on validation tasks of held-out classes with EM in
    the input spaces. The result, ``meta_encoder_``, is a frozen
    :class:`MetaEncoder` that :class:`MetaAnnotatorClassifier` takes as its
    ``meta_encoder``. Most users call
    ``MetaAnnotatorClassifier(meta_learner=MetaLearner(...)).meta_fit(X, y)``.

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
    n_unlabelled : int, default=0
        Unlabelled support examples per class in every episode (training,
        validation and the input-space baselines alike), of the episode's
        classes and of ``n_distractor_classes`` other classes: semi-supervised
        episodes (Ren et al., 2018) for target tasks that ``fit`` with
        ``X_unlabelled``. 0 (off) unless validation says it pays (see
        :ref:`unlabelled-episodes`).
    n_distractor_classes : int, default=0
        Classes outside an episode's ``n_way`` that contribute ``n_unlabelled``
        unlabelled examples each, as many as the source classes allow beyond
        ``n_way``.
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
    episodes : subclass of EpisodeDataset or None, default=None
        The episode source of meta-training (an ablation seam): the class
        that ``fit`` builds the training episodes with, as ``episodes(sampler,
        episodes_per_epoch, seed)``, and the validation tasks, as
        ``episodes(sampler, n_val_episodes, seed, fixed=True)``; see
        :class:`EpisodeDataset` for what a subclass may change. None:
        :class:`EpisodeDataset`. The input spaces that the encoder is compared
        with are scored on default episodes either way. Models with a custom
        class are not saved by :func:`save` (they need its code).
    episodic_em : subclass of EpisodicEM or None, default=None
        The EM variant that meta-training back-propagates through (an
        ablation seam): the module class that ``fit`` builds as
        ``episodic_em(encoder, n_way, n_em_iter=, tau=, b=, c=,
        encoder_alpha=, autocast_dtype=, compile_em=)`` around the encoder;
        see :class:`EpisodicEM` for what a subclass may change. None:
        :class:`EpisodicEM`. ``fit`` of the classifier adapts with the
        package's EM whatever the variant. Models with a custom class are not
        saved by :func:`save`.
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
    meta_encoder_ : MetaEncoder
        The meta-learned encoder, with its validation results.
    n_features_in_ : int
        Number of (flattened) features of ``X_source``.

    See Also
    --------
    MetaAnnotatorClassifier : Adapts to crowd-labelled tasks with the encoder.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_metaannot import MetaAnnotatorClassifier, MetaLearner
    >>> rng = np.random.default_rng(0)
    >>> y_source = np.repeat(np.arange(12), 20)
    >>> X_source = rng.normal(size=(240, 6)) + np.eye(12, 6)[y_source]
    >>> learner = MetaLearner(n_way=3, n_episodes=20, episodes_per_epoch=10,
    ...                       n_val_episodes=5, random_state=0)
    >>> clf = MetaAnnotatorClassifier(meta_learner=learner).meta_fit(X_source, y_source)
    >>> clf.meta_encoder.n_features_in
    6
    """

    #: The ablation seams: parameter -> the base class that a value must
    #: subclass, and that None stands for.
    _SEAMS = {"episodes": EpisodeDataset, "episodic_em": EpisodicEM}

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
        "n_unlabelled": [Interval(Integral, 0, None, closed="left")],
        "n_distractor_classes": [Interval(Integral, 0, None, closed="left")],
        "n_episodes": [Interval(Integral, 1, None, closed="left")],
        "episodes_per_epoch": [Interval(Integral, 1, None, closed="left")],
        "meta_batch_size": [Interval(Integral, 1, None, closed="left")],
        "validation_classes": [Interval(Real, 0, 1, closed="left")],
        "n_val_episodes": [Interval(Integral, 1, None, closed="left")],
        "patience": [Interval(Integral, 1, None, closed="left"), None],
        "checkpoint_dir": [str, os.PathLike, None],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "max_grad_norm": [Interval(Real, 0, None, closed="neither"), None],
        "device": [str, torch.device],
        "n_threads": [Interval(Integral, 1, None, closed="left"), None],
        "num_workers": [Interval(Integral, 0, None, closed="left")],
        "pin_memory": ["boolean"],
        "mixed_precision": [StrOptions({"bf16", "fp16"}), Options(bool, {False})],
        "compile_em": ["boolean"],
        "random_state": ["random_state"],
        "episodes": [type, None],
        "episodic_em": [type, None],
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
        annotator_mixture=PAPER_MIXTURE,
        annotation_rate=1.0,
        pseudo_annotation=False,
        n_unlabelled=0,
        n_distractor_classes=0,
        n_episodes=2000,
        episodes_per_epoch=200,
        meta_batch_size=4,
        validation_classes=0.2,
        n_val_episodes=100,
        patience=None,
        checkpoint_dir=None,
        lr=1e-3,
        max_grad_norm=1.0,
        device="cpu",
        n_threads=None,
        num_workers=0,
        pin_memory=False,
        mixed_precision=False,
        compile_em=False,
        random_state=None,
        episodes=None,
        episodic_em=None,
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
        self.n_unlabelled = n_unlabelled
        self.n_distractor_classes = n_distractor_classes
        self.n_episodes = n_episodes
        self.episodes_per_epoch = episodes_per_epoch
        self.meta_batch_size = meta_batch_size
        self.validation_classes = validation_classes
        self.n_val_episodes = n_val_episodes
        self.patience = patience
        self.checkpoint_dir = checkpoint_dir
        self.lr = lr
        self.max_grad_norm = max_grad_norm
        self.device = device
        self.n_threads = n_threads
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.mixed_precision = mixed_precision
        self.compile_em = compile_em
        self.random_state = random_state
        self.episodes = episodes
        self.episodic_em = episodic_em
        self.callbacks = callbacks
        self.verbose = verbose

    def __sklearn_is_fitted__(self):
        return hasattr(self, "meta_encoder_")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        return tags

    #: The parameters that build the encoder module (saved with a MetaEncoder).
    _ARCHITECTURE = (
        "encoder",
        "embedding_dim",
        "hidden_layer_sizes",
        "image_shape",
        "rank",
    )

    def _architecture(self):
        params = {k: getattr(self, k) for k in self._ARCHITECTURE}
        if isinstance(self.encoder, torch.nn.Module):
            params["encoder"] = type(self.encoder).__name__
        return params

    #: Parameters that change how meta-training runs, not what it learns.
    _RUNTIME_PARAMS = frozenset(
        {
            "checkpoint_dir",
            "verbose",
            "n_threads",
            "num_workers",
            "pin_memory",
            "compile_em",
            "callbacks",
        }
    )

    def recipe(self):
        """Fingerprint of the parameters that decide what meta-training learns.

        Two learners with the same recipe, source data and EM settings learn
        the same encoder; the runtime parameters (``_RUNTIME_PARAMS``: threads,
        workers, checkpoints, progress, callbacks...) are left out.

        Returns
        -------
        str

        Examples
        --------
        >>> from sklearn_metaannot import MetaLearner
        >>> MetaLearner(lr=0.01).recipe() == MetaLearner(lr=0.01, verbose=1).recipe()
        True
        >>> MetaLearner(lr=0.01).recipe() == MetaLearner(lr=0.1).recipe()
        False
        """
        params = {
            k: v for k, v in self.get_params().items() if k not in self._RUNTIME_PARAMS
        }
        if not isinstance(self.random_state, Integral | None):
            params["random_state"] = "a random generator"  # its repr has an address
        if isinstance(self.encoder, torch.nn.Module):
            params["encoder"] = f"{type(self.encoder).__name__}: {self.encoder!r}"
        for name, base in self._SEAMS.items():
            # the default seams leave the recipe as it was before they existed
            if params[name] is None or params[name] is base:
                del params[name]
            elif isinstance(params[name], type):
                params[name] = _qualified_name(params[name])
        for name in ("n_unlabelled", "n_distractor_classes"):
            if params[name] == 0:  # off: the recipe of the versions before them
                del params[name]
        params["class"] = _qualified_name(type(self))
        return config_fingerprint(params, [])

    def _seam(self, name):
        """The class of the seam ``name`` (its base class for None), checked."""
        base, cls = self._SEAMS[name], getattr(self, name)
        if cls is None:
            return base
        if not (isinstance(cls, type) and issubclass(cls, base)):
            raise TypeError(
                f"{name} must be a subclass of sklearn_metaannot.{base.__name__} "
                f"or None, got {cls!r}"
            )
        return cls

    def build_encoder(self, n_features):
        """A freshly initialised encoder module of this learner's architecture.

        The module that :meth:`fit` meta-trains (``encoder``, ``embedding_dim``,
        ``hidden_layer_sizes``, ``image_shape``, ``rank``), drawing its initial
        weights from torch's global generator; a user module is deep-copied.
        For baselines that train the same encoder another way.

        Parameters
        ----------
        n_features : int
            Number of (flattened) input features.

        Returns
        -------
        torch.nn.Module

        Examples
        --------
        >>> import torch
        >>> from sklearn_metaannot import MetaLearner
        >>> learner = MetaLearner(embedding_dim=4, hidden_layer_sizes=(8,))
        >>> learner.build_encoder(6)(torch.zeros(2, 6)).shape
        torch.Size([2, 4])
        """
        return self._new_encoder(int(n_features), self.image_shape)

    def _meta_fingerprint(self, em_params, *arrays):
        """Identifies a meta-training run: a checkpoint resumes only the same one."""
        if self.checkpoint_dir is None:
            return None
        em = {f"em_{k}": v for k, v in em_params.items()}
        return config_fingerprint({"recipe": self.recipe(), **em}, arrays)

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
            warn_user(
                f"meta_fit has no validation tasks (validation_classes="
                f"{self.validation_classes}, {n_classes} source classes, n_way="
                f"{self.n_way}): it cannot check that the meta-learned encoder beats "
                "the input features, so fit (representation='auto') uses the encoder "
                "only on tasks whose own crowd labels show it to be better; pass "
                "X_val, y_val or more classes",
                MetaLearningWarning,
            )
            return X, y, None, None
        if n_val < self.n_way or n_classes - n_val < self.n_way:
            warn_user(
                f"{n_classes} source classes are too few for {self.n_way}-way "
                f"training and validation episodes on disjoint classes: meta_fit "
                f"holds out {n_val} classes for {min(self.n_way, n_val)}-way "
                f"validation episodes and trains on "
                f"{min(self.n_way, n_classes - n_val)}-way episodes",
                MetaLearningWarning,
            )
        val_classes = rng.choice(classes, size=n_val, replace=False)
        is_val = np.isin(y, val_classes)
        return X[~is_val], y[~is_val], X[is_val], y[is_val]

    def _no_meta_scores(
        self,
        X,
        y,
        *,
        episodes,
        seed,
        em_params,
        spaces=INPUT_SPACES,
        return_episodes=False,
    ):
        """Query accuracy of EM in the input spaces on episodes from ``(X, y)``.

        ``n_val_episodes`` noisy ``min(n_way, n_classes)``-way episodes, seeded
        by ``seed``, from the features as given (``fit`` scales them itself);
        ties go to "input", listed first. With ``return_episodes``, also each
        space's accuracy per episode (the same episodes for every space).
        """
        n_classes = len(np.unique(y))
        n_way = min(self.n_way, n_classes)
        episodes = _with_distractors(episodes, n_classes, n_way)
        sampler = EpisodeSampler(X, y, n_way=n_way, pseudo_annotation=True, **episodes)
        dataset = EpisodeDataset(sampler, self.n_val_episodes, seed, fixed=True)
        em = {"n_em_iter": em_params["n_iter"], "tau": em_params["tau"]}
        em.update(b=em_params["b"], c=em_params["c"])
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
    def fit(self, X_source, y_source, *, X_val=None, y_val=None, em_params=None):
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
            :class:`MetaLearningWarning`): ``meta_encoder_.selected`` is then the
            better input space.
        em_params : dict, default=None
            The EM that the encoder is trained through and validated with:
            ``n_iter``, ``tau``, ``b`` and ``c``, as the classifier's
            ``n_em_iter``, ``tau``, ``b`` and ``c`` (which
            :meth:`MetaAnnotatorClassifier.meta_fit` passes); None: their
            defaults.

        Returns
        -------
        self : MetaLearner
            With ``meta_encoder_`` set.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn_metaannot import MetaLearner
        >>> rng = np.random.default_rng(0)
        >>> y_source = np.repeat(np.arange(12), 20)  # 12 source classes
        >>> X_source = rng.normal(size=(240, 6)) + np.eye(12, 6)[y_source]
        >>> learner = MetaLearner(n_way=3, n_episodes=20, episodes_per_epoch=10,
        ...                       n_val_episodes=5, random_state=0)
        >>> encoder = learner.fit(X_source, y_source).meta_encoder_
        >>> len(encoder.history), encoder.selected != "auto"
        (2, True)
        """
        em_params = check_em_params(em_params)
        X, y, sample_shape = self._check_source(X_source, y_source)
        self._check_device()
        for name in self._SEAMS:
            self._seam(name)
        # data-parallel under a launcher (accelerate launch): None for one process
        group = process_group(self.device)
        if group is not None:
            if self._seam("episodes") is not EpisodeDataset:
                raise ValueError(
                    "episodes: a custom episode source is not supported in "
                    "data-parallel meta-training (each process draws its share of "
                    "the default episodes); meta-train it in one process"
                )
            check_divisible(
                group.world_size,
                meta_batch_size=self.meta_batch_size,
                episodes_per_epoch=self.episodes_per_epoch,
            )
        episodes = self._sample_episodes(X, y, X_val, y_val, group)
        module, history, keep_best = self._train(
            episodes, em_params, group, self._image_shape(sample_shape)
        )
        self.meta_encoder_ = self._validate(
            episodes, module, history, keep_best, em_params, group
        )
        self.meta_encoder_.source = (X_source, y_source, X_val, y_val)
        return self

    # -- the stages of fit ---------------------------------------------------------

    def _check_source(self, X_source, y_source):
        """Stage 0: the source data as float32 rows, clean labels, sample shape."""
        if y_source is None:
            raise ValueError(
                "This estimator requires y to be passed, but the target y is None: "
                "pass y_source, the clean labels of X_source"
            )
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
        return X, y, sample_shape

    def _image_shape(self, sample_shape):
        if self.image_shape is not None or sample_shape is None:
            return self.image_shape
        return sample_shape if len(sample_shape) == 3 else (1, *sample_shape)

    def _sample_episodes(self, X, y, X_val, y_val, group):
        """Stage 1: validation classes held out, training and validation episodes."""
        X_val_given = X_val is not None
        X_train, y_train, X_val, y_val = self._split_validation(
            X, y, X_val, y_val, self._meta_random_state(group)
        )
        offset, scale = self._input_scaling(X_train)
        n_classes_train = len(np.unique(y_train))
        if n_classes_train < 2:
            raise ValueError(
                f"meta-training needs at least 2 source classes for training, got "
                f"{n_classes_train} class{'es' if n_classes_train != 1 else ''}"
            )
        # fewer source classes than n_way: smaller episodes
        train_way = min(self.n_way, n_classes_train)
        if train_way < self.n_way and (X_val_given or X_val is None):
            # (_split_validation has said so when it held classes out)
            warn_user(
                f"{n_classes_train} source classes for training: meta_fit uses "
                f"{train_way}-way training episodes instead of n_way={self.n_way}",
                MetaLearningWarning,
            )
        episode_kw = {
            "n_shot": self.n_shot,
            "n_query": self.n_query,
            "n_annotators": self.n_annotators,
            "simulator": AnnotatorSimulator(
                self.annotator_mixture, annotation_rate=self.annotation_rate
            ),
            "n_unlabelled": self.n_unlabelled,
            "n_distractor_classes": self.n_distractor_classes,
        }
        rng = self._meta_random_state(group)
        seed_train, seed_val, seed_torch = rng.randint(2**31 - 1, size=3)
        scale_inputs = lambda A: ((A - offset) / scale).astype(np.float32)  # noqa: E731
        train_sampler = EpisodeSampler(
            scale_inputs(X_train),
            y_train,
            n_way=train_way,
            pseudo_annotation=self.pseudo_annotation,
            **_with_distractors(episode_kw, n_classes_train, train_way),
        )
        episodes = self._seam("episodes")
        train_ds = episodes(train_sampler, self.episodes_per_epoch, seed_train)
        if group is not None:
            train_ds = ShardedEpisodeDataset(
                train_ds, self.meta_batch_size, group.rank, group.world_size
            )
        val_ds, val_way = None, 0
        if X_val is not None:
            # validation tasks always carry simulated annotators: they stand for
            # the noisy target tasks the user will meet
            n_classes_val = len(np.unique(y_val))
            val_way = min(self.n_way, n_classes_val)
            val_sampler = EpisodeSampler(
                scale_inputs(X_val),
                y_val,
                n_way=val_way,
                pseudo_annotation=True,
                **_with_distractors(episode_kw, n_classes_val, val_way),
            )
            val_ds = episodes(val_sampler, self.n_val_episodes, seed_val, fixed=True)
        return _Episodes(
            X_train,
            y_train,
            X_val,
            y_val,
            X_val_given,
            offset,
            scale,
            train_way,
            val_way,
            train_ds,
            val_ds,
            episode_kw,
            seed_val,
            seed_torch,
        )

    def _train(self, episodes, em_params, group, image_shape):
        """Stage 2: the training loop; returns the module, history, best epoch."""
        world_size = 1 if group is None else group.world_size
        epochs = math.ceil(self.n_episodes / self.episodes_per_epoch)
        config = TrainingConfig(
            lr=self.lr,
            max_epochs=epochs,
            batch_size=self.meta_batch_size // world_size,
            patience=self.patience,
            checkpoint_dir=self.checkpoint_dir,
            device=self.device if group is None else group.device,
            verbose=self.verbose if group is None or group.is_main else 0,
            max_grad_norm=self.max_grad_norm,
            fingerprint=self._meta_fingerprint(
                em_params,
                episodes.X_train,
                episodes.y_train,
                episodes.X_val,
                episodes.y_val,
            ),
            n_train_episodes=epochs * self.episodes_per_epoch,
            extra_callbacks=tuple(check_callbacks(self.callbacks)),
            first_callbacks=(
                () if group is None else (("distributed", SynchronizeProcesses(group)),)
            ),
            main_process=group is None or group.is_main,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            valid_batch_size=validation_batch_size(
                self.meta_batch_size, self.n_val_episodes
            ),
            grad_scaling=self.mixed_precision == "fp16",
        )
        threads = torch.get_num_threads() if self.n_threads is None else self.n_threads
        with torch.random.fork_rng(devices=[]), torch_threads(threads):
            torch.manual_seed(int(episodes.seed_torch))
            module = self._new_encoder(episodes.X_train.shape[1], image_shape)
            episodic = self._seam("episodic_em")(
                module,
                episodes.train_way,
                n_em_iter=em_params["n_iter"],
                tau=em_params["tau"],
                b=em_params["b"],
                c=em_params["c"],
                encoder_alpha=self.encoder_alpha,
                autocast_dtype=check_mixed_precision(self.mixed_precision),
                compile_em=self.compile_em,
            )
            net, keep_best = make_net(episodic, episodes.val_ds, config)
            fit_or_resume(net, episodes.train_ds, dict(net.callbacks).get("resume"))
            if group is not None:
                adopt_main_result(group, net, keep_best)
        return module, net.history, keep_best

    def _validate(self, episodes, module, history, keep_best, em_params, group):
        """Stage 3: the encoder against the input spaces; the frozen encoder."""
        ep = episodes
        # The input spaces learn nothing from the source, so every source class
        # can validate them, at the target's n_way; the encoder needs held-out
        # classes. Their episodes are drawn from the raw features (as fit sees
        # them), with the validation tasks' seed: paired with them when the
        # classes are the same.
        no_meta_kw = {
            "episodes": ep.episode_kw,
            "seed": ep.seed_val,
            "em_params": em_params,
        }
        val_full_way = ep.X_val is not None and ep.val_way == self.n_way
        if val_full_way:
            X_in, y_in = ep.X_val, ep.y_val
        elif ep.X_val is None:
            X_in, y_in = ep.X_train, ep.y_train
        else:
            X_in = np.concatenate([ep.X_train, ep.X_val])
            y_in = np.concatenate([ep.y_train, ep.y_val])
        input_scores, per_episode = self._no_meta_scores(
            X_in, y_in, return_episodes=True, **no_meta_kw
        )
        val_scores, shared = {}, []
        if ep.val_ds is not None:
            module.load_state_dict(keep_best.best_state_)
            val_scores = {"meta": float(keep_best.best_score_)}
            if val_full_way:
                val_scores.update(input_scores)
            else:
                val_scores.update(
                    self._no_meta_scores(ep.X_val, ep.y_val, **no_meta_kw)
                )
            for row in history:
                row["valid_acc_no_meta"] = val_scores["input"]
                row["valid_acc_scaled"] = val_scores["scaled"]
                row["valid_acc_normalized"] = val_scores["normalized"]
            if ep.X_val_given:
                shared = sorted(
                    set(np.unique(ep.y_val).tolist()) & set(ep.y_train.tolist()),
                    key=str,
                )
        selected, message = _representation.validated_default(
            val_scores,
            input_scores,
            val_way=ep.val_way,
            n_way=self.n_way,
            shared_classes=shared,
            best_epoch=keep_best.best_epoch_,
        )
        if message is not None:
            warn_user(message, MetaLearningWarning)
        return MetaEncoder(
            module,
            ep.offset,
            ep.scale,
            ep.X_train.shape[1],
            selected=selected,
            input_candidates=_representation.plausible_spaces(
                input_scores, per_episode, min_z=_representation.MIN_Z
            ),
            val_scores=val_scores,
            input_scores=input_scores,
            best_epoch=keep_best.best_epoch_,
            history=history,
            world_size=1 if group is None else group.world_size,
            n_way=self.n_way,
            learner_params=self._architecture(),
            feature_names_in=getattr(self, "feature_names_in_", None),
            recipe=self.recipe(),
        )
