"""scikit-learn's common estimator checks."""
# SPDX-License-Identifier: BSD-3-Clause

from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_metaannot import MetaAnnotatorClassifier

EXPECTED_FAILED_CHECKS = {
    "check_supervised_y_2d": (
        "a (n_samples, 1) Y is a valid one-annotator label matrix, so no "
        "DataConversionWarning is raised"
    ),
}


@parametrize_with_checks(
    [MetaAnnotatorClassifier()],
    expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS,
    xfail_strict=True,
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
