"""The Examples sections of the public functions run and print what they show
(the estimator's and check_gradient's have tests of their own)."""

import doctest
import importlib

import pytest


@pytest.mark.parametrize(
    "name", ["csoftmax", "csoftmax._functions", "csoftmax._config", "csoftmax._packed", "csoftmax.datasets"]
)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    assert result.failed == 0
