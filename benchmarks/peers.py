"""Learning from crowds with other packages, as benchmark rows.

Two peers that the learning curve (issue 29) compares with, each optional: a row
whose package is not installed is left out of a run, with a line saying so.

- :class:`CrowdlabThenClassify`: logistic regression on the consensus labels of
  cleanlab's CROWDLAB (Goh, Tkachenko and Mueller, 2022), which weighs each
  annotator and a classifier's out-of-fold predictions. Install ``cleanlab``
  (AGPL-3.0; used only here, never by the package).
- :class:`ActiveMLAnnotatorLR`: scikit-activeml's ``AnnotatorLogisticRegression``
  (Rodrigues et al., 2013): a logistic regression and one confusion matrix per
  annotator fitted jointly by EM, the discriminative EM of Raykar et al. (2010)
  with priors. Install ``scikit-activeml`` (BSD-3-Clause).

Both take the package's label matrix (``(n_items, n_annotators)``, NaN where
missing) and expose ``labels_``: their labels of the training items, which the
learning curve scores as truth inference.
"""
# SPDX-License-Identifier: BSD-3-Clause

from __future__ import annotations

import importlib.util

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_metaannot import CrowdLabelMatrix, MajorityVote

#: peer row name -> the module it needs
REQUIRES = {"crowdlab": "cleanlab", "activeml": "skactiveml"}


def available(name) -> bool:
    """Whether method ``name`` can run: not a peer, or its package is installed."""
    return name not in REQUIRES or importlib.util.find_spec(REQUIRES[name]) is not None


def _logistic_regression(random_state):
    return make_pipeline(
        StandardScaler(), LogisticRegression(max_iter=1000, random_state=random_state)
    )


def _encoded(Y):
    """The seen labels and ``Y`` as codes 0..K-1 (float, NaN where missing)."""
    labels = CrowdLabelMatrix.from_dense(Y)
    codes = labels.to_codes().astype(float)
    codes[codes < 0] = np.nan
    return np.asarray(labels.classes), codes


class CrowdlabThenClassify(ClassifierMixin, BaseEstimator):
    """LR on CROWDLAB consensus labels (cleanlab's ``multiannotator``).

    The classifier that CROWDLAB weighs against the annotators is the same
    logistic regression, fitted on the majority vote, with out-of-fold
    predictions (``n_folds`` stratified folds, fewer when a class has fewer
    items, as cleanlab's tutorial does).

    Parameters
    ----------
    n_folds : int, default=5
    random_state : int or None, default=None
    """

    def __init__(self, n_folds=5, random_state=None):
        self.n_folds = n_folds
        self.random_state = random_state

    def fit(self, X, Y):
        from cleanlab.multiannotator import get_label_quality_multiannotator

        X = np.asarray(X, dtype=float)
        classes, codes = _encoded(Y)
        K = len(classes)
        majority = MajorityVote(random_state=self.random_state).fit(codes)
        vote = np.asarray(majority.labels_, dtype=int)
        smallest = np.bincount(vote, minlength=K).min()
        n_folds = int(min(self.n_folds, smallest))
        if n_folds >= 2:
            folds = StratifiedKFold(
                n_folds, shuffle=True, random_state=self.random_state
            )
            proba = cross_val_predict(
                _logistic_regression(self.random_state),
                X,
                vote,
                cv=folds,
                method="predict_proba",
            )
        else:  # a class with one item: no out-of-fold prediction, the vote's
            proba = majority.probas_  # own soft labels stand in
        proba = np.clip(proba, 1e-6, None)
        proba /= proba.sum(axis=1, keepdims=True)
        result = get_label_quality_multiannotator(codes, proba, verbose=False)
        consensus = result["label_quality"]["consensus_label"].to_numpy(dtype=int)
        self.labels_ = classes[consensus]
        self.classes_ = classes
        self.model_ = _logistic_regression(self.random_state).fit(X, self.labels_)
        return self

    def predict(self, X):
        return self.model_.predict(np.asarray(X, dtype=float))


class ActiveMLAnnotatorLR(ClassifierMixin, BaseEstimator):
    """scikit-activeml's ``AnnotatorLogisticRegression`` on standardised inputs.

    ``labels_`` are its predictions on the training items (the model's
    ``p(y | x)``; it keeps no posterior that combines them with the labels).

    Parameters
    ----------
    random_state : int or None, default=None
    """

    def __init__(self, random_state=None):
        self.random_state = random_state

    def fit(self, X, Y):
        from skactiveml.classifier.multiannotator import AnnotatorLogisticRegression

        classes, codes = _encoded(Y)
        self.scaler_ = StandardScaler().fit(np.asarray(X, dtype=float))
        Z = self.scaler_.transform(np.asarray(X, dtype=float))
        self.model_ = AnnotatorLogisticRegression(
            classes=np.arange(len(classes)), random_state=self.random_state
        ).fit(Z, codes)
        self.classes_ = classes
        self.labels_ = self.predict(X)
        return self

    def predict(self, X):
        Z = self.scaler_.transform(np.asarray(X, dtype=float))
        return self.classes_[np.asarray(self.model_.predict(Z), dtype=int)]
