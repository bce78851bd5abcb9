"""
=====================================
Handwritten characters from Omniglot
=====================================

The paper's main benchmark: meta-learn a convolutional encoder on the characters
of some Omniglot alphabets, then classify the characters of *unseen* alphabets
from a few images labelled by noisy annotators.

**The data.** Omniglot (Lake, Salakhutdinov and Tenenbaum, Science 2015; MIT
licence) holds 1623 handwritten characters from 50 alphabets, each drawn by 20
people. It is published as zip archives in
https://github.com/brendenlake/omniglot (folder ``python/``):
``images_background.zip`` (30 alphabets), ``images_evaluation.zip`` (20) and the
smaller ``images_background_small1.zip`` and ``images_background_small2.zip``
(5 alphabets each). :func:`~sklearn_metaannot.datasets.fetch_omniglot` downloads
them into scikit-learn's data folder and loads them;
:func:`~sklearn_metaannot.datasets.load_omniglot` loads archives already on disk.

This example does not download anything. It looks for the archives in the folder
named by the environment variable ``SKLEARN_METAANNOT_OMNIGLOT``, then in
``../shared/data/omniglot`` next to the repository, and says so and stops when
it finds none. With the two small archives (242 characters from 8 alphabets) it
takes a few minutes on a laptop CPU.
"""
# SPDX-License-Identifier: BSD-3-Clause

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from sklearn.base import clone

from sklearn_metaannot import MetaAnnotatorClassifier, MetaLearner, simulate_annotators
from sklearn_metaannot.baselines import AggregateThenClassify
from sklearn_metaannot.datasets import (
    load_omniglot,
    rotate_classes,
    split_omniglot_by_alphabet,
)

# The test suite sets this variable to run every example with small settings.
QUICK = os.environ.get("SKLEARN_METAANNOT_EXAMPLE_QUICK") == "1"


# %%
# Finding the archives
# --------------------
def find_omniglot():
    """A folder holding Omniglot zip archives, or None."""
    candidates = []
    if os.environ.get("SKLEARN_METAANNOT_OMNIGLOT"):
        candidates.append(Path(os.environ["SKLEARN_METAANNOT_OMNIGLOT"]))
    try:
        root = Path(__file__).resolve().parents[1]  # the repository
    except NameError:  # sphinx-gallery and notebooks run in examples/
        root = Path.cwd().parent
    candidates.append(root.parent / "shared" / "data" / "omniglot")
    for folder in candidates:
        if folder.is_dir() and any(folder.glob("images_*.zip")):
            return folder
    return None


folder = find_omniglot()
if folder is None:
    print(
        "Omniglot archives not found: set SKLEARN_METAANNOT_OMNIGLOT to a folder "
        "holding them, or download them with "
        "sklearn_metaannot.datasets.fetch_omniglot(). Skipping this example."
    )
else:
    print(
        f"Omniglot archives in {folder}:", sorted(p.name for p in folder.glob("*.zip"))
    )

# %%
# Loading and splitting by alphabet
# ---------------------------------
# Images are downsampled from 105x105 to 28x28 pixels, the usual size (the
# quick test run uses one archive at 14x14). Splitting by alphabet keeps the
# test characters unseen during meta-training. Each rotation of a meta-training
# character by 90, 180 or 270 degrees becomes a class of its own, the standard
# augmentation for Omniglot.

if folder is not None:
    if QUICK:
        omniglot = load_omniglot(
            folder, image_size=14, subsets="images_background_small1"
        )
        val_alphabets, test_alphabets = ["Greek"], ["Latin"]
    else:
        omniglot = load_omniglot(folder, image_size=28)
        if {"Sanskrit", "Tagalog", "Greek"} <= set(omniglot.alphabets):
            val_alphabets, test_alphabets = ["Greek"], ["Sanskrit", "Tagalog"]
        else:  # other archives: the last alphabets for validation and test
            val_alphabets = list(omniglot.alphabets[-3:-2])
            test_alphabets = list(omniglot.alphabets[-2:])
    train, val, test = split_omniglot_by_alphabet(
        omniglot, val_alphabets=val_alphabets, test_alphabets=test_alphabets
    )
    X_train, y_train = rotate_classes(omniglot.images[train], omniglot.target[train])
    X_val, y_val = omniglot.images[val], omniglot.target[val]
    X_test, y_test = omniglot.images[test], omniglot.target[test]
    for name, labels in [
        ("meta-train", y_train),
        ("validation", y_val),
        ("test", y_test),
    ]:
        print(f"{name:10s}: {len(labels):5d} images, {len(np.unique(labels))} classes")

    fig, axes = plt.subplots(3, 10, figsize=(8, 2.8), layout="constrained")
    rng = np.random.default_rng(0)
    for row, (name, images, labels) in zip(
        axes,
        [
            ("meta-train", X_train, y_train),
            ("validation", X_val, y_val),
            ("test", X_test, y_test),
        ],
    ):
        for ax, k in zip(row, rng.choice(np.unique(labels), 10, replace=False)):
            ax.imshow(images[np.flatnonzero(labels == k)[0]], cmap="gray_r")
            ax.set(xticks=[], yticks=[])
        row[0].set_ylabel(name, fontsize=8)
    fig.suptitle("one drawing of 10 characters of each split")
    plt.show()

# %%
# Meta-learning the convolutional encoder
# ---------------------------------------
# ``encoder="conv4"`` is the four-block convolutional network of prototypical
# networks; on 28x28 images its embedding has the 64 dimensions of the paper's
# Omniglot setting. Images can be passed as ``(n, height, width)`` arrays. The
# validation alphabet is passed explicitly as ``X_val, y_val``; ``verbose=1``
# would show a progress bar over the episodes.

if folder is not None:
    clf = MetaAnnotatorClassifier(
        meta_learner=MetaLearner(
            encoder="conv4",
            n_way=4,
            n_shot=(1, 5),
            n_annotators=(3, 7),
            n_episodes=20 if QUICK else 800,
            episodes_per_epoch=10 if QUICK else 100,
            n_val_episodes=5 if QUICK else 50,
        ),
        random_state=0,
    )
    clf.meta_fit(X_train, y_train, X_val=X_val, y_val=y_val)
    print(
        f"kept the encoder of epoch {clf.meta_best_epoch_}: validation accuracy "
        f"{clf.meta_val_accuracy_:.3f}, EM on standardised pixels "
        f"{clf.no_meta_val_accuracy_:.3f}"
    )

    history = clf.meta_history_
    episodes = np.asarray(history[:, "epoch"]) * clf.meta_learner.episodes_per_epoch
    fig, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
    ax.plot(episodes, history[:, "valid_acc"], "o-", label="meta-learned encoder")
    ax.plot(
        episodes, history[:, "valid_acc_no_meta"], "--", label="standardised pixels"
    )
    ax.set(
        xlabel="meta-training episodes",
        ylabel="query accuracy",
        title="validation tasks (unseen alphabet, simulated annotators)",
    )
    ax.legend()
    plt.show()

# %%
# Crowd-labelled tasks of unseen alphabets
# ----------------------------------------
# Every test task has 4 characters of the test alphabets, 5 drawings of each
# labelled by 5 simulated annotators (the paper's mixture: 10 % experts, 70 %
# hammers, 20 % spammers), and the 15 other drawings of each character as query.
# We compare the adapted meta-learned model with the same EM on standardised
# pixels and with logistic regression on the majority vote (LRMV).

if folder is not None:
    methods = {
        "meta-learned EM": clf,
        "EM on pixels": clone(clf).set_params(representation="input"),
        "majority vote + LR": AggregateThenClassify(random_state=0),
    }
    scores = {name: [] for name in methods}
    X_test_flat = X_test.reshape(len(X_test), -1)
    for task in range(2 if QUICK else 30):
        chars = rng.choice(np.unique(y_test), 4, replace=False)
        support, query = [], []
        for k in chars:
            drawings = rng.permutation(np.flatnonzero(y_test == k))
            support.extend(drawings[:5])
            query.extend(drawings[5:])
        Y, _, _ = simulate_annotators(y_test[support], 5, random_state=task)
        for name, method in methods.items():
            model = clone(method).fit(X_test_flat[support], Y)
            scores[name].append(model.score(X_test_flat[query], y_test[query]))

    for name, acc in scores.items():
        sem = np.std(acc) / np.sqrt(len(acc))
        print(f"{name:20s} {np.mean(acc):.3f} +- {sem:.3f}")

    fig, ax = plt.subplots(figsize=(6, 2.8), layout="constrained")
    means = [np.mean(acc) for acc in scores.values()]
    sems = [np.std(acc) / np.sqrt(len(acc)) for acc in scores.values()]
    ax.barh(list(scores), means, xerr=sems, color=["C0", "C1", "C2"], capsize=4)
    ax.invert_yaxis()
    ax.set(
        xlim=(0, 1),
        xlabel="query accuracy (mean +- s.e. over tasks)",
        title="4-way 5-shot tasks, 5 annotators",
    )
    plt.show()

# %%
# On handwritten characters, unlike on the 8x8 digits of
# :ref:`sphx_glr_auto_examples_plot_1_quick_start.py`, raw pixels make a poor
# latent space, and the encoder meta-learned on other alphabets makes the
# difference: EM on a few noisy labels then classifies characters it has never
# seen.
#
# The full benchmark (1, 3 and 5 shots, 3, 5 and 7 annotators, the baselines of
# the paper and the "w/o PA" ablation) is run by ``python -m benchmarks.omniglot``
# from the source repository; its results are in :doc:`/benchmarks/omniglot`.
