"""GridSearchCV with worker processes keeps the meta-learned encoder."""
# SPDX-License-Identifier: BSD-3-Clause

import warnings

import numpy as np
from sklearn.model_selection import GridSearchCV, KFold

from sklearn_metaannot import (
    MetaAnnotatorClassifier,
    MetaLearner,
    MetaLearningWarning,
    simulate_annotators,
)


def test_grid_search_n_jobs_2_equals_n_jobs_1():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(10), 12)
    X = 2 * rng.normal(size=(10, 6))[y] + rng.normal(size=(120, 6))
    clf = MetaAnnotatorClassifier(
        meta_learner=MetaLearner(
            n_way=3,
            n_shot=2,
            n_annotators=3,
            embedding_dim=5,
            hidden_layer_sizes=(8,),
            n_episodes=4,
            episodes_per_epoch=2,
            n_val_episodes=3,
        ),
        representation="meta",  # fit raises if a worker lost the encoder
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetaLearningWarning)
        clf.meta_fit(X[y < 7], y[y < 7])
    target = y >= 7
    Y, _, _ = simulate_annotators(y[target], 3, random_state=0)
    grids = [
        GridSearchCV(
            clf,
            {"n_em_iter": [1, 3], "b": [1.0, 10.0], "tau": [0.0, 1.0]},
            cv=KFold(3, shuffle=True, random_state=0),
            n_jobs=n_jobs,  # joblib's default backend (loky processes)
        ).fit(X[target], Y)
        for n_jobs in (1, 2)
    ]
    serial, parallel = grids
    np.testing.assert_array_equal(
        parallel.cv_results_["mean_test_score"], serial.cv_results_["mean_test_score"]
    )
    assert parallel.best_params_ == serial.best_params_
    assert parallel.best_estimator_.meta_encoder_ is clf.meta_encoder_
    np.testing.assert_array_equal(
        parallel.predict_proba(X[target]), serial.predict_proba(X[target])
    )
    # the scores differ between settings: the comparison is not vacuous
    assert len(set(serial.cv_results_["mean_test_score"])) > 1
