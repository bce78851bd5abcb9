"""
=======================================
Saving and loading a meta-learned model
=======================================

Meta-learning is the expensive step; adapting to a new crowd-labelled task is
cheap. A meta-learned :class:`~sklearn_metaannot.MetaAnnotatorClassifier` is
therefore worth saving once and reusing for every new task. It pickles like any
scikit-learn estimator, with :mod:`joblib`. The meta-learned encoder is kept on
the CPU, so a model meta-trained on a GPU (``device="cuda"``) loads on a machine
without one.

Pickle files can run code when they are loaded: keep joblib for your own
files, and share models with :func:`sklearn_metaannot.save` and
:func:`sklearn_metaannot.load`, which store them as JSON and safetensors and
load them without running code (last section).
"""
# SPDX-License-Identifier: BSD-3-Clause

import os
import tempfile
from pathlib import Path

import joblib
import matplotlib.pyplot as plt
import numpy as np
from sklearn.base import clone
from sklearn.datasets import load_digits

import sklearn_metaannot
from sklearn_metaannot import MetaAnnotatorClassifier, MetaLearner, simulate_annotators
from sklearn_metaannot.demo import rotated_source

# The test suite sets this variable to run every example with small settings.
QUICK = os.environ.get("SKLEARN_METAANNOT_EXAMPLE_QUICK") == "1"

# %%
# Meta-learn once, and save
# -------------------------
# The source data are the digits 0-5 and their rotations, as in
# :ref:`sphx_glr_auto_examples_plot_1_quick_start.py`.

X, y = load_digits(return_X_y=True)
X = X / 16.0
source, target = y < 6, y >= 6
X_source, y_source = rotated_source(X[source], y[source])

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
clf.meta_fit(X_source, y_source)

folder = Path(tempfile.mkdtemp())
path = folder / "meta_annotator.joblib"
joblib.dump(clf, path)
print(f"saved {path.name}: {path.stat().st_size / 1024:.0f} KiB")

# %%
# The file holds the constructor parameters, among them the
# :class:`~sklearn_metaannot.MetaLearner` and everything ``meta_fit`` learned:
# the encoder (the ``meta_encoder`` parameter, a frozen
# :class:`~sklearn_metaannot.MetaEncoder` with its input scaling), the
# training history and the validation results.
#
# Load, and adapt to new tasks
# ----------------------------
# In another session (or on another machine), load the model and adapt it to a
# crowd-labelled task. ``clone`` gives a fresh estimator for every task that
# still carries the meta-learned encoder, so the loaded model is never modified.

loaded = joblib.load(path)
print("validation accuracy found by meta_fit:", round(loaded.meta_val_accuracy_, 3))
print("epochs in the history:", len(loaded.meta_history_))

rng = np.random.default_rng(0)
X_target, y_target = X[target], y[target]
support = np.concatenate(
    [rng.choice(np.flatnonzero(y_target == k), 5, replace=False) for k in (6, 7, 8, 9)]
)
query = np.setdiff1d(np.arange(len(y_target)), support)
Y, _, _ = simulate_annotators(y_target[support], 5, random_state=0)

task_model = clone(loaded).fit(X_target[support], Y)
original_model = clone(clf).fit(X_target[support], Y)
same = np.allclose(
    task_model.predict_proba(X_target[query]),
    original_model.predict_proba(X_target[query]),
)
print("loaded and original models predict the same probabilities:", same)
accuracy = task_model.score(X_target[query], y_target[query])
print(f"accuracy on the query images: {accuracy:.3f}")

# %%
# Adapted models can be saved too: a fitted estimator stores its prototypes,
# class prior and confusion matrices along with the encoder, and predicts right
# after loading.

joblib.dump(task_model, folder / "task_model.joblib")
reloaded = joblib.load(folder / "task_model.joblib")
print(
    "reloaded task model, predictions unchanged:",
    np.array_equal(
        reloaded.predict(X_target[query]), task_model.predict(X_target[query])
    ),
)

# %%
# Sharing a model without pickle
# ------------------------------
# :func:`sklearn_metaannot.save` writes a zip archive with ``model.json`` (the
# parameters and fitted attributes) and ``tensors.safetensors`` (the arrays
# and encoder weights, with their SHA-256 recorded in ``model.json``).
# :func:`sklearn_metaannot.load` parses these two formats only, so a file from
# someone else cannot run code on your machine, and it rejects a file whose
# tensors were altered.

shared = sklearn_metaannot.save(task_model, folder / "task_model.zip")
print(f"saved {shared.name}: {shared.stat().st_size / 1024:.0f} KiB")
from_zip = sklearn_metaannot.load(shared)
print(
    "loaded without pickle, probabilities unchanged:",
    np.array_equal(
        from_zip.predict_proba(X_target[query]),
        task_model.predict_proba(X_target[query]),
    ),
)

# %%
# The prototypes of the task, shown as images: with the ``"residual_mlp"``
# encoder the latent space has the dimensions of the input (here, 64 pixels),
# so each prototype can be displayed like a digit. They are averages in the
# latent space, in the encoder's standardised units.

fig, axes = plt.subplots(1, 4, figsize=(7, 2.2), layout="constrained")
for ax, label, prototype in zip(axes, reloaded.classes_, reloaded.prototypes_):
    ax.imshow(prototype.reshape(8, 8), cmap="gray_r")
    ax.set(title=f"class {int(label)}", xticks=[], yticks=[])
fig.suptitle("prototypes of the adapted model")
plt.show()
