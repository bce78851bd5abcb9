"""
=====================
Inspecting annotators
=====================

Besides a classifier, :class:`~sklearn_metaannot.MetaAnnotatorClassifier`
estimates how each annotator labels each class (``annotator_confusion_``) and
which true label each training example most probably has (``sample_posterior_``).
This example compares both with the truth on a simulated crowd.

To keep the example short, the estimator is not meta-learned: without
``meta_fit``, ``fit`` runs the same EM on standardised input features. After
``meta_fit`` the attributes are the same, computed in the meta-learned space (see
:ref:`sphx_glr_auto_examples_plot_1_quick_start.py`).
"""
# SPDX-License-Identifier: BSD-3-Clause

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits

from sklearn_metaannot import (
    DawidSkene,
    MajorityVote,
    MetaAnnotatorClassifier,
    simulate_annotators,
)

# %%
# A crowd of six annotators
# -------------------------
# 12 images of each of the digits 6, 7, 8 and 9, labelled by 6 simulated
# annotators drawn from all the annotator types of the package: experts and
# hammers (accurate and less accurate, errors spread uniformly), spammers (random
# answers), pair-wise flippers (who often give the next class instead of the
# true one) and class-wise spammers (random on half of the classes, right on the
# others). ``simulate_annotators`` returns the labels, the true confusion
# matrices and the types.

X, y = load_digits(return_X_y=True)
rng = np.random.default_rng(0)
support = np.concatenate(
    [rng.choice(np.flatnonzero(y == k), 12, replace=False) for k in (6, 7, 8, 9)]
)
X_train, y_train = X[support] / 16.0, y[support]

mixture = {
    "expert": 0.1,
    "hammer": 0.3,
    "spammer": 0.2,
    "pairwise_flipper": 0.2,
    "classwise_spammer": 0.2,
}
Y, true_confusion, types = simulate_annotators(
    y_train, n_annotators=6, mixture=mixture, random_state=26
)
print("annotator types:", types)
print("fraction of correct labels per annotator:", (Y == y_train[:, None]).mean(0))

# %%
# Fit and compare the confusion matrices
# --------------------------------------
# ``annotator_confusion_[r, k, l]`` is the estimated probability that annotator
# ``r`` says ``classes_[l]`` when the true class is ``classes_[k]``: rows are true
# classes, as in the matrices returned by ``simulate_annotators``.

clf = MetaAnnotatorClassifier(n_em_iter=5).fit(X_train, Y)
# Y holds floats (np.nan marks missing labels), so the classes are floats too
class_names = clf.classes_.astype(int)

n_annotators = len(types)
fig, axes = plt.subplots(
    2, n_annotators, figsize=(2.1 * n_annotators, 4.8), layout="constrained"
)
for r in range(n_annotators):
    for row, (matrix, what) in enumerate(
        [(true_confusion[r], "true"), (clf.annotator_confusion_[r], "estimated")]
    ):
        ax = axes[row, r]
        image = ax.imshow(matrix, vmin=0, vmax=1, cmap="viridis")
        ax.set_xticks(range(4), class_names)
        ax.set_yticks(range(4), class_names)
        ax.set_title(f"{what}\n{types[r]}" if row == 0 else what, fontsize=9)
        if r == 0:
            ax.set_ylabel("true class")
        if row == 1:
            ax.set_xlabel("given label")
fig.colorbar(image, ax=axes, shrink=0.6, label="p(label | true class)")
plt.show()

# %%
# The experts' and the hammer's matrices are recovered well, and so are most of
# the flipper's pattern (the next class, or 6 for a 9) and the class-wise
# spammer's reliable rows. The spammers' estimates have no diagonal to speak of,
# so their votes barely move the posteriors. With 12 examples per class each row
# rests on a dozen labels, so the estimates are noisy; the Dirichlet prior
# ``c=(2.0, 1.0)`` pulls them slightly towards the diagonal.
#
# Inferred true labels
# --------------------
# ``sample_posterior_`` holds the posterior of the true label of every training
# example after EM. It combines the votes, weighted by what EM learned about
# each annotator, with the position of the example in the latent space. Below,
# examples are sorted by their true class; majority vote and Dawid-Skene (which
# do not look at the images) are shown for comparison.

mv = MajorityVote(tie_break="first").fit(Y)
ds = DawidSkene(random_state=0).fit(Y)
order = np.argsort(y_train, kind="stable")
panels = {
    "majority vote": mv.probas_,
    "Dawid-Skene": ds.probas_,
    "MetaAnnotatorClassifier": clf.sample_posterior_,
}
fig, axes = plt.subplots(1, 3, figsize=(9, 4.5), sharey=True, layout="constrained")
for ax, (name, proba) in zip(axes, panels.items()):
    accuracy = np.mean(clf.classes_[proba.argmax(axis=1)] == y_train)
    image = ax.imshow(proba[order], aspect="auto", vmin=0, vmax=1, cmap="Blues")
    ax.set_xticks(range(4), class_names)
    ax.set(title=f"{name}\naccuracy {accuracy:.2f}", xlabel="class")
axes[0].set_ylabel("training example (sorted by true class)")
fig.colorbar(image, ax=axes, shrink=0.7, label="posterior probability")
plt.show()

# %%
# The labels inferred for the training examples are a by-product; the classifier
# itself uses only the prototypes and the class prior (paper Eq. 8):

print("class prior:", clf.class_prior_.round(2))
print("prototypes:", clf.prototypes_.shape)
print("training accuracy of predict:", np.mean(clf.predict(X_train) == y_train))
