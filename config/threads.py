"""Default thread settings for MXNet's CPU kernels.

Without OMP_NUM_THREADS, MXNet 1.9's CPU convolutions run about 2x slower on common
machines, so every entry point calls this before importing mxnet.  A value the user set
is left alone.

MXNet copies arrays of more than MXNET_CPU_PARALLEL_SIZE elements (default 200000) with an
OpenMP loop in whichever thread asks: the Python thread for ``mx.nd.array`` and ``asnumpy``,
the data iterator's threads in training.  Each such thread keeps an OpenMP team of its own, and
once libgomp manages more threads than there are cores it stops spinning between parallel
regions, so every later operator pays thread wake-ups.  Measured on 2 cores: the shipped
MobileNet ran 3.1 ms per image, and 10.2 ms in the same process after one forward of VGG16-SSD300
(its 300x300 input is over the limit).  Copies are single-threaded here instead (``mx.nd.array``
of that 1.08 MB input: 0.36 ms).
"""
import os

# Elements above which MXNet copies with OpenMP (read once, at its first large copy).
PARALLEL_COPY_VARIABLE = "MXNET_CPU_PARALLEL_SIZE"
SINGLE_THREADED_COPIES = str(2 ** 31 - 1)  # MXNet reads an int


def set_default_threads():
    os.environ.setdefault("OMP_NUM_THREADS", str(len(os.sched_getaffinity(0))
                                                 if hasattr(os, "sched_getaffinity")
                                                 else os.cpu_count() or 1))
    os.environ.setdefault(PARALLEL_COPY_VARIABLE, SINGLE_THREADED_COPIES)
    return int(os.environ["OMP_NUM_THREADS"])
