import numpy as np

import csoftmax


def test_loss_and_gradient_matches_numpy(rng):
    X = rng.normal(size=(300, 7))
    W = rng.normal(size=(4, 7))
    b = rng.normal(size=4)
    y = rng.integers(0, 4, 300)
    Z = X @ W.T + b
    Z -= Z.max(axis=1, keepdims=True)
    P = np.exp(Z) / np.exp(Z).sum(axis=1, keepdims=True)
    Y = np.eye(4)[y]
    loss, gW, gb = csoftmax.loss_and_gradient(W, X, y, b)
    np.testing.assert_allclose(loss, -np.mean(np.log(P[np.arange(300), y])), rtol=1e-12)
    np.testing.assert_allclose(gW, (P - Y).T @ X / 300, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(gb, (P - Y).mean(axis=0), rtol=1e-10, atol=1e-14)


def test_main_self_check_passes(capsys):
    from csoftmax.__main__ import main

    assert main(["selfcheck"]) == 0
    assert "PASSED" in capsys.readouterr().out


def test_main_without_a_command_prints_help(capsys):
    from csoftmax.__main__ import main

    assert main([]) == 2
    assert "csoftmax train" in capsys.readouterr().err
