"""scikit-learn's estimator checks, every one of them, on both solvers."""

import pytest

pytest.importorskip("sklearn")

from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from csoftmax import SoftmaxRegression  # noqa: E402


# No expected failures.  A few checks skip themselves when an optional
# package they test against is missing (pandas; array-api-strict with
# SCIPY_ARRAY_API=1); with those installed they pass too.
@parametrize_with_checks([SoftmaxRegression(), SoftmaxRegression(solver="newton-cg")])
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
