"""Dense kernels of csoftmax, compiled for the baseline instruction set.

The source is ``_dense_impl.pxi``; setup.py builds it once per instruction
set level and ``csoftmax._dispatch`` imports the best one the CPU runs.
"""

ISA_NAME = "baseline"

include "_dense_impl.pxi"

include "_capi_entry.pxi"
