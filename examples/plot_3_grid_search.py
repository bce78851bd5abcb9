"""
================================================
Choosing EM iterations and priors by grid search
================================================

The parameters of the EM adaptation (the number of iterations ``n_em_iter`` and
the priors ``tau``, ``b`` and ``c``) only matter in ``fit``, so
:class:`~sklearn.model_selection.GridSearchCV` can tune them on a meta-learned
estimator **without meta-training again**: ``clone`` keeps the meta-learned
encoder (the ``meta_encoder`` parameter that ``meta_fit`` sets). This example
tunes them inside a :class:`~sklearn.pipeline.Pipeline` with a scaler, using
only crowd labels.
"""
# SPDX-License-Identifier: BSD-3-Clause

import os

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler

from sklearn_metaannot import MetaAnnotatorClassifier, MetaLearner, simulate_annotators
from sklearn_metaannot.demo import rotated_source

# The test suite sets this variable to run every example with small settings.
QUICK = os.environ.get("SKLEARN_METAANNOT_EXAMPLE_QUICK") == "1"

# %%
# Meta-learning behind a scaler
# -----------------------------
# The source data are the digits 0-5 and their rotations (24 classes with clean
# labels, as in :ref:`sphx_glr_auto_examples_plot_1_quick_start.py`), the target
# task the digits 6-9. A :class:`~sklearn.preprocessing.MinMaxScaler` fitted on
# the source data comes first. It is wrapped in
# :class:`~sklearn.frozen.FrozenEstimator` so that the pipeline applies it as it
# is: refitting it on every target training fold would feed the encoder inputs
# scaled differently from those it was meta-trained on.

X, y = load_digits(return_X_y=True)
source, target = y < 6, y >= 6
X_source, y_source = rotated_source(X[source], y[source])
scaler = MinMaxScaler().fit(X_source)

clf = MetaAnnotatorClassifier(
    meta_learner=MetaLearner(
        encoder="residual_mlp",
        n_way=4,
        n_episodes=40 if QUICK else 400,
        episodes_per_epoch=20 if QUICK else 100,
        n_val_episodes=20 if QUICK else 100,
    ),
    random_state=0,
)
clf.meta_fit(scaler.transform(X_source), y_source)
pipe = make_pipeline(FrozenEstimator(scaler), clf)
print(pipe)

# %%
# A crowd-labelled target task
# ----------------------------
# 15 images per class of the digits 6-9, labelled by 4 simulated annotators
# (many spammers: 10 % experts, 50 % hammers, 40 % spammers), with one label in
# five missing (``np.nan``). The other images of 6-9 are kept, with
# their true labels, for the final evaluation only. (The test suite's quick run
# takes 8 per class: from 10 per class, each candidate's fit also tries the MLP
# head.)

rng = np.random.default_rng(0)
y_target = y[target]
n_per_class = 8 if QUICK else 15
train = np.concatenate(
    [
        rng.choice(np.flatnonzero(y_target == k), n_per_class, replace=False)
        for k in (6, 7, 8, 9)
    ]
)
test = np.setdiff1d(np.arange(len(y_target)), train)
X_train, X_test = X[target][train], X[target][test]
Y_train, _, types = simulate_annotators(
    y_target[train], 4, mixture=(0.1, 0.5, 0.4), annotation_rate=0.8, random_state=0
)
print("annotators:", types)
print("Y_train:", Y_train.shape, f"{np.isnan(Y_train).mean():.0%} missing")

# %%
# The grid search
# ---------------
# Without gold labels, each validation fold is scored against the majority vote
# of its own crowd labels (that is what the estimator's ``score`` does with a 2-D
# ``Y``). The reference is noisy, but the same for every candidate.
#
# ``cv=KFold(...)`` is needed: with the default ``cv=5``, scikit-learn picks a
# *stratified* splitter for a classifier, and to stratify it first calls
# :func:`~sklearn.utils.multiclass.type_of_target` on ``Y``, which rejects a
# float matrix holding ``np.nan`` ("Input y contains NaN"). Stratifying on a
# crowd label matrix would not be meaningful anyway; plain shuffled folds are.

param_grid = {
    "metaannotatorclassifier__n_em_iter": [0, 3] if QUICK else [0, 1, 2, 3, 5],
    "metaannotatorclassifier__b": [1.0, 10.0] if QUICK else [1.0, 10.0, 100.0],
}
if not QUICK:
    param_grid["metaannotatorclassifier__c"] = [(2.0, 1.0), (5.0, 1.0)]
search = GridSearchCV(pipe, param_grid, cv=KFold(5, shuffle=True, random_state=0))
search.fit(X_train, Y_train)
print("best parameters:", search.best_params_)
print(
    f"best cross-validated agreement with the majority vote: {search.best_score_:.3f}"
)

# %%
# ``clone`` kept the meta-learned encoder in every candidate (a frozen
# :class:`~sklearn_metaannot.MetaEncoder`, the ``meta_encoder`` parameter): the
# refitted best pipeline uses the same object as the estimator we meta-fitted.

best = search.best_estimator_[-1]
print("meta-learned encoder kept:", best.meta_encoder_ is clf.meta_encoder_)
print(
    f"accuracy of the best pipeline on the held-out images (true labels): "
    f"{search.score(X_test, y_target[test]):.3f}"
)

# %%
# What the true labels say
# ------------------------
# In a real crowdsourcing task there are no true labels to check the choice
# against. Here there are: every candidate is refitted on the whole training
# task and scored on the held-out images.

results = pd.DataFrame(search.cv_results_)
results["test_accuracy"] = [
    clone(pipe).set_params(**params).fit(X_train, Y_train).score(X_test, y_target[test])
    for params in results["params"]
]
if "param_metaannotatorclassifier__c" in results:
    results = results[
        results["param_metaannotatorclassifier__c"].map(tuple) == (2.0, 1.0)
    ]

fig, (ax_cv, ax_test) = plt.subplots(
    1, 2, figsize=(9, 3.5), sharex=True, layout="constrained"
)
for b, group in results.groupby("param_metaannotatorclassifier__b"):
    group = group.sort_values("param_metaannotatorclassifier__n_em_iter")
    n_iter = group["param_metaannotatorclassifier__n_em_iter"].astype(int)
    ax_cv.errorbar(
        n_iter,
        group["mean_test_score"],
        yerr=group["std_test_score"] / np.sqrt(5),
        marker="o",
        capsize=3,
        label=f"b = {b:g}",
    )
    ax_test.plot(n_iter, group["test_accuracy"], "o-", label=f"b = {b:g}")
ax_cv.set(
    xlabel="EM iterations J (0: majority-vote prototypes)",
    ylabel="agreement with the majority vote",
    title="5-fold cross-validation, crowd labels",
)
ax_test.set(
    xlabel="EM iterations J (0: majority-vote prototypes)",
    ylabel="accuracy",
    title="held-out images, true labels",
)
ax_test.legend()
plt.show()

# %%
# Read the two panels together (the three values of ``b`` score almost the same,
# so their curves overlap). The majority-vote reference favours the
# candidates whose predictions stay closest to the majority vote, such as
# ``n_em_iter=0`` (prototypes of the vote fractions), whereas the true labels
# reward the EM iterations that learn to discount the spammers. On a task of 60
# images the cross-validated differences are also within their standard errors.
# Tuning on crowd labels alone is therefore a weak guide: keep the defaults
# (``n_em_iter=3``, ``b=10``, ``c=(2.0, 1.0)``) unless the search finds a clear
# difference, and check a choice on a few gold-labelled target examples when you
# have them, as above.
