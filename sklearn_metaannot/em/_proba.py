"""``predict_proba`` and ``predict`` of the package's classifiers, in one place."""
# SPDX-License-Identifier: BSD-3-Clause

import numpy as np
from sklearn.utils.validation import check_is_fitted


class LogProbaClassifierMixin:
    """``predict_proba`` and ``predict`` from the class's ``predict_log_proba``.

    One definition for every classifier of the package (the estimator and the
    baselines): probabilities are ``exp(predict_log_proba(X))``, the predicted
    class is the most probable of ``classes_``.
    """

    def predict_proba(self, X):
        """Class probabilities, ``exp(predict_log_proba(X))``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_classes)

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn_metaannot.baselines import PrototypeClassifier
        >>> X = np.array([[0.0, 0.1], [0.2, 0.0], [3.0, 3.1], [3.2, 2.9]])
        >>> Y = np.array([[0, 0, 1], [0, np.nan, 0], [1, 1, 1], [1, 0, np.nan]])
        >>> proba = PrototypeClassifier().fit(X, Y).predict_proba([[3.1, 3.0]])
        >>> proba.shape, bool(proba[0, 1] > 0.9)
        ((1, 2), True)
        """
        check_is_fitted(self)
        return np.exp(self.predict_log_proba(X))

    def predict(self, X):
        """Most probable class of each example.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn_metaannot.baselines import PrototypeClassifier
        >>> X = np.array([[0.0, 0.1], [0.2, 0.0], [3.0, 3.1], [3.2, 2.9]])
        >>> Y = np.array([[0, 0, 1], [0, np.nan, 0], [1, 1, 1], [1, 0, np.nan]])
        >>> PrototypeClassifier().fit(X, Y).predict([[0.1, 0.0], [3.1, 3.0]])
        array([0, 1])
        """
        check_is_fitted(self)
        return self.classes_[np.argmax(self.predict_log_proba(X), axis=1)]
