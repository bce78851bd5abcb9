"""Builders of estimators for the tests: one place to port constructor changes.

Every test written for issue 27 that needs a meta-fitted classifier builds it
through :func:`meta_classifier`, so that a change of the constructor (the
meta-training parameters moving into their own object) is ported here, once.
"""
# SPDX-License-Identifier: BSD-3-Clause

from sklearn_metaannot import MetaAnnotatorClassifier, MetaLearner

#: Meta-training settings small enough for a test that must take well under 2 s.
SMALL_META = {
    "n_way": 3,
    "n_shot": 2,
    "n_query": 5,
    "n_annotators": 3,
    "embedding_dim": 4,
    "hidden_layer_sizes": (8,),
    "n_episodes": 20,
    "episodes_per_epoch": 10,
    "n_val_episodes": 5,
}


def meta_classifier(*, random_state=0, **params):
    """A :class:`MetaAnnotatorClassifier` with meta-training and fit ``params``.

    Parameters
    ----------
    random_state : int or None, default=0
        Seed of meta-training (episodes, simulated annotators, weights) and of
        the held-out folds of ``fit``.
    **params
        Any parameter, of the :class:`MetaLearner` (``n_way``, ``n_episodes``,
        ``encoder``, ``lr``, ``patience``, ...) or of the classifier (``tau``,
        ``b``, ``representation``, ...) alike: this is where they are split.

    Returns
    -------
    MetaAnnotatorClassifier
        Unfitted.
    """
    learner_names = MetaLearner().get_params(deep=False)
    learner = {k: v for k, v in params.items() if k in learner_names}
    rest = {k: v for k, v in params.items() if k not in learner_names}
    return MetaAnnotatorClassifier(
        meta_learner=MetaLearner(**learner), **rest, random_state=random_state
    )


def small_meta_classifier(*, random_state=0, **params):
    """:func:`meta_classifier` with :data:`SMALL_META` under ``params``."""
    return meta_classifier(random_state=random_state, **{**SMALL_META, **params})
