"""
========================================================
From crowd-kit's long format to a label matrix, and back
========================================================

Crowdsourcing tools, `crowd-kit <https://crowd-kit.readthedocs.io>`_ among
them, store annotations in a **long** table with one row per label: the
``task`` (the example), the ``worker`` (the annotator) and the ``label``.
:class:`~sklearn_metaannot.CrowdLabelMatrix` reads that table, gives the
``(n_samples, n_annotators)`` matrix that the estimators of this package take as
``Y``, and writes it back. The example then runs our
:class:`~sklearn_metaannot.DawidSkene` next to crowd-kit's on the same data.

The data are the *bluebird* truth-inference set (108 bird images, 39 workers,
2 classes, with gold labels) when it is available next to the repository, and a
simulated crowd otherwise.
"""
# SPDX-License-Identifier: BSD-3-Clause

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from crowdkit.aggregation import DawidSkene as CrowdKitDawidSkene

from sklearn_metaannot import (
    CrowdLabelMatrix,
    DawidSkene,
    MajorityVote,
    simulate_annotators,
)
from sklearn_metaannot.datasets import load_truth_inference


# %%
# Loading long-format labels
# --------------------------
# :func:`~sklearn_metaannot.datasets.load_truth_inference` reads the standard
# ``label.csv`` / ``truth.csv`` files of the truth-inference benchmarks into a
# long table and a Series of gold labels. Without them, we simulate 20 workers
# who each label about a third of 150 tasks and build the same long table.
def find_data(name):
    """Folder of a truth-inference set, or None.

    ``$SKLEARN_METAANNOT_TRUTH_INFERENCE/<name>``, else
    ``../shared/data/truth_inference/<name>`` next to the repository.
    """
    try:
        root = Path(__file__).resolve().parents[1]  # the repository
    except NameError:  # in a notebook
        root = Path.cwd().parent
    default = root.parent / "shared" / "data" / "truth_inference"
    path = Path(os.environ.get("SKLEARN_METAANNOT_TRUTH_INFERENCE", default)) / name
    return path if path.is_dir() else None


path = find_data("bluebird")
if path is not None:
    labels, truth = load_truth_inference(path)
    print(f"read {path}")
else:
    print("bluebird not found: simulating a crowd instead")
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 2, size=150)
    Y, _, _ = simulate_annotators(y_true, 20, annotation_rate=0.3, random_state=0)
    simulated = CrowdLabelMatrix.from_dense(Y, classes=[0, 1])
    labels = simulated.to_long()
    labels["label"] = labels["label"].astype(int)
    truth = pd.Series(y_true, name="truth").rename_axis("task")

print(labels.head())
print(
    f"{len(labels)} labels, {labels['task'].nunique()} tasks, "
    f"{labels['worker'].nunique()} workers"
)

# %%
# Long table to label matrix, and back
# ------------------------------------
# :meth:`~sklearn_metaannot.CrowdLabelMatrix.from_long` keeps the task and worker
# identifiers (``sample_ids``, ``annotator_ids``); the matrix stores only the
# labels that exist, so a crowd of thousands of workers stays small.

Y = CrowdLabelMatrix.from_long(labels)
print(Y)
print("labels per task:", np.bincount(Y.rows).mean().round(1))

dense = Y.to_dense()  # (n_tasks, n_workers) floats, np.nan where no label
print("dense matrix:", dense.shape, f"{np.isnan(dense).mean():.0%} missing")

back = Y.to_long()
same = (
    back.sort_values(["task", "worker"])
    .reset_index(drop=True)
    .equals(labels.sort_values(["task", "worker"]).reset_index(drop=True))
)
print("round trip gives the same table:", same)

# %%
# ``Y`` (or ``dense``) is what ``MetaAnnotatorClassifier.fit(X, Y)`` takes
# when the tasks have features. The truth-inference sets have none, so the rest
# of the example aggregates the labels without features.
#
# Dawid-Skene, here and in crowd-kit
# ----------------------------------
# Both run EM over the true labels and one confusion matrix per worker. Ours adds
# a small pseudo-count by default (``smoothing=0.01``) and keeps every worker's
# confusion matrix as an array, ``confusions_[worker, true, given]``; with
# ``smoothing=0`` the updates are the same as crowd-kit's.

ours = DawidSkene(smoothing=0.0, n_iter=100, tie_break="first").fit(Y)
theirs = CrowdKitDawidSkene(n_iter=100)
theirs_labels = theirs.fit_predict(labels)
mv = MajorityVote(tie_break="first").fit(Y)

ours_labels = pd.Series(ours.labels_, index=Y.sample_ids)
mv_labels = pd.Series(mv.labels_, index=Y.sample_ids)
gold = truth.index.intersection(Y.sample_ids)
for name, predicted in [
    ("majority vote", mv_labels),
    ("Dawid-Skene (sklearn-metaannot)", ours_labels),
    ("Dawid-Skene (crowd-kit)", theirs_labels),
]:
    accuracy = np.mean(predicted.loc[gold].to_numpy() == truth.loc[gold].to_numpy())
    print(f"{name:32s} accuracy {accuracy:.3f}")

ours_p1 = pd.Series(ours.probas_[:, list(ours.classes_).index(1)], index=Y.sample_ids)
theirs_p1 = theirs.probas_[1].reindex(Y.sample_ids)
print(
    "largest difference of the posteriors:",
    f"{np.abs(ours_p1 - theirs_p1).max():.2g}",
)

# %%
# On the left, the posterior of every task according to both implementations:
# most points lie on the diagonal. On bluebird a few tasks end up elsewhere: the
# two runs agree exactly for the first two iterations, then drift apart on these
# tasks. On the larger truth-inference sets (rte, s4_Dog_data) the posteriors
# agree to about 0.01. On the right, the estimated accuracy of every worker (the
# mean of the diagonal of its confusion matrix) against the fraction of its
# labels that match the gold labels: both recover the workers' quality.

worker_accuracy = (
    labels.merge(truth.rename("gold"), left_on="task", right_index=True)
    .assign(correct=lambda d: d["label"] == d["gold"])
    .groupby("worker")["correct"]
    .mean()
)
ours_diag = pd.Series(
    np.diagonal(ours.confusions_, axis1=1, axis2=2).mean(axis=1),
    index=ours.annotator_ids_,
)
errors = theirs.errors_  # rows (worker, given label), columns true label
theirs_diag = pd.Series(
    {
        w: np.mean([errors.loc[(w, k), k] for k in ours.classes_])
        for w in ours.annotator_ids_
    }
)

fig, (ax_post, ax_workers) = plt.subplots(1, 2, figsize=(9, 4), layout="constrained")
ax_post.plot([0, 1], [0, 1], color="0.8")
ax_post.plot(theirs_p1, ours_p1, "o", alpha=0.6)
ax_post.set(
    xlabel="crowd-kit",
    ylabel="sklearn-metaannot",
    title="posterior p(label = 1) of each task",
)
ax_workers.plot([0, 1], [0, 1], color="0.8")
ax_workers.plot(
    worker_accuracy.loc[ours_diag.index], ours_diag, "o", label="sklearn-metaannot"
)
ax_workers.plot(
    worker_accuracy.loc[theirs_diag.index], theirs_diag, "x", label="crowd-kit"
)
ax_workers.set(
    xlabel="fraction of correct labels (gold)",
    ylabel="estimated accuracy",
    title="workers",
)
ax_workers.legend()
plt.show()
