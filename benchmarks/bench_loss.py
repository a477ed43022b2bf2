"""Benchmark csoftmax.loss_and_gradient against its peers (the README's command).

Same as ``python benchmarks/run.py``; see that module for the options::

    python benchmarks/bench_loss.py            # full run, writes benchmarks/RESULTS.md
    python benchmarks/bench_loss.py --quick    # under a minute
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from run import main  # noqa: E402

if __name__ == "__main__":
    main()
