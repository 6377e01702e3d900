"""Default thread count for MXNet's CPU kernels.

Without OMP_NUM_THREADS, MXNet 1.9's CPU convolutions run about 2x slower on common
machines, so every entry point calls this before importing mxnet.  A value the user set
is left alone.
"""
import os


def set_default_threads():
    os.environ.setdefault("OMP_NUM_THREADS", str(len(os.sched_getaffinity(0))
                                                 if hasattr(os, "sched_getaffinity")
                                                 else os.cpu_count() or 1))
    return int(os.environ["OMP_NUM_THREADS"])
