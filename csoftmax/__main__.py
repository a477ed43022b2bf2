"""``python -m csoftmax`` (and the ``csoftmax`` command).

With no arguments: print the configuration and check the analytic gradient
of the loss against five-point finite differences on a small random problem.
"""

import argparse
import sys

import numpy as np

from ._config import show_config
from ._functions import loss_and_gradient


def finite_difference_check(n_samples=200, n_features=8, n_classes=4, seed=0, h=1e-4):
    """Largest relative error between the analytic and a five-point gradient.

    Returns ``(max_abs_error, max_rel_error)`` over every entry of W and b.
    """
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_samples, n_features))
    y = rng.integers(0, n_classes, n_samples)
    W = rng.normal(size=(n_classes, n_features))
    b = rng.normal(size=n_classes)
    weights = rng.uniform(0.5, 2.0, n_samples)
    l2 = 0.1

    def loss(W_, b_):
        return loss_and_gradient(W_, X, y, b_, sample_weight=weights, l2=l2)[0]

    _, grad_W, grad_b = loss_and_gradient(W, X, y, b, sample_weight=weights, l2=l2)
    params = np.concatenate([W.ravel(), b])
    analytic = np.concatenate([grad_W.ravel(), grad_b])
    numeric = np.empty_like(params)
    for j in range(params.size):
        values = []
        for step in (-2, -1, 1, 2):
            p = params.copy()
            p[j] += step * h
            values.append(loss(p[: W.size].reshape(W.shape), p[W.size :]))
        f_m2, f_m1, f_p1, f_p2 = values
        numeric[j] = (f_m2 - 8 * f_m1 + 8 * f_p1 - f_p2) / (12 * h)
    abs_err = np.abs(analytic - numeric)
    rel_err = abs_err / np.maximum(np.abs(numeric), 1e-8)
    return float(abs_err.max()), float(rel_err.max())


def _self_check(args):
    show_config()
    abs_err, rel_err = finite_difference_check()
    ok = rel_err < 1e-6
    print()
    print("gradient check (200 x 8 inputs, 4 classes, sample weights, l2=0.1; five-point differences):")
    print(f"  max abs error {abs_err:.3e}, max rel error {rel_err:.3e} -> {'PASSED' if ok else 'FAILED'}")
    return 0 if ok else 1


def _info(args):
    show_config()
    return 0


def _gradcheck(args):
    abs_err, rel_err = finite_difference_check(seed=args.seed)
    ok = rel_err < 1e-6
    print(f"max abs error {abs_err:.3e}, max rel error {rel_err:.3e} -> {'PASSED' if ok else 'FAILED'}")
    return 0 if ok else 1


def build_parser():
    parser = argparse.ArgumentParser(
        prog="csoftmax", description="Fast softmax (multinomial logistic) regression."
    )
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("info", help="print the build and runtime configuration").set_defaults(func=_info)
    p = sub.add_parser("gradcheck", help="check the gradient against finite differences")
    p.add_argument("--seed", type=int, default=0, help="seed of the random problem (default 0)")
    p.set_defaults(func=_gradcheck)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    func = getattr(args, "func", _self_check)
    return func(args)


if __name__ == "__main__":
    sys.exit(main())
