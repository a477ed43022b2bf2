"""``python -m csoftmax``: the ``csoftmax`` command (see :mod:`csoftmax._cli`).

``csoftmax train`` fits a model on the built-in digits; ``csoftmax selfcheck``
prints the configuration and checks the gradient against finite differences.
"""

import sys

from ._cli import finite_difference_check, main

__all__ = ["finite_difference_check", "main"]

if __name__ == "__main__":
    sys.exit(main())
