import os

import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def pytest_report_header(config):
    import csoftmax

    c = csoftmax._config.config()
    return (
        f"csoftmax {c['version']} from {os.path.dirname(csoftmax.__file__)}: kernels {c['isa']}, "
        f"OpenMP {'on' if c['openmp'] else 'off'}, {c['threads']} threads"
    )
