"""scikit-learn's common estimator checks."""
# SPDX-License-Identifier: BSD-3-Clause

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_metaannot import MetaAnnotatorClassifier, MetaLearner

EXPECTED_FAILED_CHECKS = {
    MetaAnnotatorClassifier: {
        "check_supervised_y_2d": (
            "a (n_samples, 1) Y is a valid one-annotator label matrix, so no "
            "DataConversionWarning is raised"
        ),
    },
    MetaLearner: {
        "check_fit_score_takes_y": (
            "fit(X_source, y_source): the arguments are named as those of "
            "MetaAnnotatorClassifier.meta_fit"
        ),
    },
}

# A tiny meta-training: the checks fit many times
SMALL_LEARNER = MetaLearner(
    n_way=2,
    n_shot=1,
    n_query=1,
    n_annotators=2,
    embedding_dim=2,
    hidden_layer_sizes=(4,),
    n_episodes=2,
    episodes_per_epoch=2,
    meta_batch_size=2,
    n_val_episodes=2,
    validation_classes=0,
    n_threads=1,
)

CLASSIFIER_PARAMS = [
    "b",
    "c",
    "head",
    "head_penalty",
    "history_weight",
    "meta_encoder",
    "meta_learner",
    "n_em_iter",
    "random_state",
    "representation",
    "tau",
    "unlabelled_weight",
]

LEARNER_PARAMS = [
    "annotation_rate",
    "annotator_mixture",
    "callbacks",
    "checkpoint_dir",
    "compile_em",
    "device",
    "embedding_dim",
    "encoder",
    "encoder_alpha",
    "episodes",
    "episodes_per_epoch",
    "episodic_em",
    "hidden_layer_sizes",
    "image_shape",
    "lr",
    "max_grad_norm",
    "meta_batch_size",
    "mixed_precision",
    "n_annotators",
    "n_distractor_classes",
    "n_episodes",
    "n_query",
    "n_shot",
    "n_threads",
    "n_unlabelled",
    "n_val_episodes",
    "n_way",
    "num_workers",
    "patience",
    "pin_memory",
    "pseudo_annotation",
    "random_state",
    "rank",
    "validation_classes",
    "verbose",
]


# validation_classes=0: meta-training warns that it has no validation tasks
@pytest.mark.filterwarnings("ignore::sklearn_metaannot.MetaLearningWarning")
@parametrize_with_checks(
    [MetaAnnotatorClassifier(), SMALL_LEARNER],
    expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS[type(est)],
    xfail_strict=True,
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


def test_meta_training_parameters_are_the_meta_learners():
    # the classifier has the adaptation parameters only; meta-training's are
    # the MetaLearner's, reached through meta_learner__<name>
    assert sorted(MetaAnnotatorClassifier().get_params(deep=False)) == (
        CLASSIFIER_PARAMS
    )
    assert len(CLASSIFIER_PARAMS) <= 12  # issue 28's ceiling
    assert sorted(MetaLearner().get_params(deep=False)) == LEARNER_PARAMS
    clf = MetaAnnotatorClassifier(meta_learner=MetaLearner(n_way=4))
    params = clf.get_params()
    assert params["meta_learner__n_way"] == 4
    assert {f"meta_learner__{name}" for name in LEARNER_PARAMS} <= set(params)
    clf.set_params(meta_learner__n_way=3, n_em_iter=5)
    assert clf.meta_learner.n_way == 3 and clf.n_em_iter == 5
