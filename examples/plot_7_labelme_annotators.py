"""
======================================
Who labels well? Annotators of LabelMe
======================================

:meth:`~sklearn_metaannot.MetaAnnotatorClassifier.annotator_report` summarises,
after ``fit``, what EM learned about each annotator: the estimated accuracy, the
number of labels and the per-class recall (the diagonal of the annotator's
confusion matrix). This example checks the report against the truth on a real
crowd: the LabelMe images labelled by 59 Amazon Mechanical Turk workers
(Rodrigues and Pereira, "Deep learning from crowds", AAAI 2018), whose gold labels
are known.

**The data.** :func:`~sklearn_metaannot.datasets.load_labelme` reads the
published files (512-d VGG16 features of 1000 training images of 8 scene classes,
about 2.5 labels per image). This example does not download anything: it looks
for them in the folder named by the environment variable
``SKLEARN_METAANNOT_LABELME``, then in ``../shared/data/labelme`` next to the
repository, and says so and stops when it finds none. It runs in a few seconds.
"""
# SPDX-License-Identifier: BSD-3-Clause

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from sklearn.decomposition import PCA

from sklearn_metaannot import MetaAnnotatorClassifier
from sklearn_metaannot.datasets import load_labelme


# %%
# Finding the files
# -----------------
def find_labelme():
    """A folder holding the LabelMe files, or None."""
    candidates = []
    if os.environ.get("SKLEARN_METAANNOT_LABELME"):
        candidates.append(Path(os.environ["SKLEARN_METAANNOT_LABELME"]))
    try:
        root = Path(__file__).resolve().parents[1]  # the repository
    except NameError:  # sphinx-gallery and notebooks run in examples/
        root = Path.cwd().parent
    candidates.append(root.parent / "shared" / "data" / "labelme")
    for folder in candidates:
        if (folder / "answers.txt").is_file():
            return folder
    return None


folder = find_labelme()
if folder is None:
    print(
        "LabelMe files not found: set SKLEARN_METAANNOT_LABELME to a folder holding "
        "them (see sklearn_metaannot.datasets.load_labelme). Skipping this example."
    )

# %%
# Fitting on the crowd labels
# ---------------------------
# The estimator is not meta-learned here: ``fit`` runs EM on the input features,
# which PCA reduces from 512 to 32 dimensions (a Gaussian mixture in 512
# dimensions from 1000 images is poorly determined). ``crowd_train`` is a
# :class:`~sklearn_metaannot.CrowdLabelMatrix`; its annotator ids become the index
# of the report.

if folder is not None:
    labelme = load_labelme(folder)
    X = PCA(32, random_state=0).fit_transform(labelme.X_train)
    clf = MetaAnnotatorClassifier(n_em_iter=10).fit(X, labelme.crowd_train)
    inferred = clf.classes_[clf.sample_posterior_.argmax(axis=1)]
    print(f"inferred true labels: accuracy {np.mean(inferred == labelme.y_train):.3f}")

    report = clf.annotator_report()
    busiest = report.sort_values("n_labels", ascending=False).head(8)
    print(busiest[["accuracy", "prior_weighted_accuracy", "n_labels"]].round(2))

# %%
# Estimated against true accuracies
# ---------------------------------
# The true accuracy of a worker is the fraction of their labels that agree with
# the gold labels. ``accuracy`` estimates it from the posterior of the true
# labels (the mean posterior probability of the labels the worker gave);
# ``prior_weighted_accuracy`` is the worker's expected accuracy on a new image,
# from the confusion matrix alone. A worker who labelled a few images has a noisy
# true accuracy and an estimate pulled towards the prior: the marker size shows
# the number of labels.

if folder is not None:
    answers, y = labelme.answers, labelme.y_train
    labelled = answers >= 0
    true_accuracy = np.array(
        [np.mean(a[m] == y[m]) for a, m in zip(answers.T, labelled.T)]
    )
    busy = report["n_labels"].to_numpy() >= 20
    fig, ax = plt.subplots(figsize=(5, 4.6), layout="constrained")
    for column, marker in [("accuracy", "o"), ("prior_weighted_accuracy", "x")]:
        r = np.corrcoef(report[column][busy], true_accuracy[busy])[0, 1]
        ax.scatter(
            true_accuracy,
            report[column],
            s=8 + report["n_labels"],
            marker=marker,
            alpha=0.6,
            label=f"{column} (r = {r:.2f} on workers with >= 20 labels)",
        )
    ax.plot([0, 1], [0, 1], color="gray", linewidth=1)
    ax.set(
        xlabel="true accuracy (against gold labels)",
        ylabel="estimated accuracy",
        title="59 LabelMe workers (marker size: labels)",
        xlim=(0, 1.02),
        ylim=(0, 1.02),
    )
    ax.legend(fontsize=7, loc="lower right")
    plt.show()

# %%
# ``accuracy`` ranks the workers well (r = 0.73 on the workers with 20 labels
# or more) but is optimistic: most points lie above the diagonal, because the
# posterior of an image is partly built from the worker's own label, and images
# with 1 to 3 labels are where EM is least sure. ``prior_weighted_accuracy``
# ranks them less well: rows of classes a worker rarely labelled stay close to
# the Dirichlet prior ``c``.
#
# One worker's confusion matrix
# -----------------------------
# The busiest worker's estimated confusion matrix (``annotator_confusion_``; rows
# are true classes) next to the one counted against the gold labels. Rows of
# classes the worker rarely saw rest on few labels in both.

if folder is not None:
    r = int(np.argmax(report["n_labels"]))
    k = len(clf.classes_)
    counted = np.zeros((k, k))
    np.add.at(counted, (y[labelled[:, r]], answers[labelled[:, r], r]), 1)
    counted /= np.maximum(counted.sum(axis=1, keepdims=True), 1)
    fig, axes = plt.subplots(1, 2, figsize=(8, 4), layout="constrained")
    for ax, (matrix, what) in zip(
        axes,
        [(clf.annotator_confusion_[r], "estimated"), (counted, "from gold labels")],
    ):
        image = ax.imshow(matrix, vmin=0, vmax=1, cmap="viridis")
        ax.set(
            title=f"worker {report.index[r]}: {what}",
            xlabel="given label",
            ylabel="true class",
            xticks=range(k),
            yticks=range(k),
        )
    fig.colorbar(image, ax=axes, shrink=0.8, label="p(label | true class)")
    plt.show()
