"""config/threads.py: the defaults every script sets before MXNet; a large copy in the Python
thread starts no OpenMP team there (which would make libgomp stop spinning on 2 cores)."""
import os
import subprocess
import sys

import pytest

from config import threads

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Threads of the process before and after copies of a VGG16-SSD300 input (270000 elements,
# over MXNet's default parallel-copy size) into and out of MXNet, in the Python thread.
LARGE_COPIES = """
import os, sys
sys.path.insert(0, %r)
from config.threads import set_default_threads
if sys.argv[1] == "defaults":
    set_default_threads()
import mxssd_compat
import mxnet as mx, numpy as np
small = mx.nd.array(np.ones((1, 3, 8, 8), np.float32))
(small * 2).asnumpy()  # the engine's threads and their OpenMP team exist from here
before = len(os.listdir("/proc/self/task"))
big = mx.nd.array(np.ones((1, 3, 300, 300), np.float32))
big.asnumpy()
print(before, len(os.listdir("/proc/self/task")))
""" % ROOT


def thread_counts(mode):
    env = {k: v for k, v in os.environ.items() if k != threads.PARALLEL_COPY_VARIABLE}
    env["OMP_NUM_THREADS"] = "2"
    out = subprocess.run([sys.executable, "-c", LARGE_COPIES, mode], env=env, check=True,
                         stdout=subprocess.PIPE, universal_newlines=True).stdout
    return tuple(int(v) for v in out.split())


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs Linux's /proc")
def test_large_copies_start_no_openmp_team_in_the_python_thread():
    before, after = thread_counts("mxnet")  # MXNet's own default: a team of 2 = 1 new thread
    assert after == before + 1
    before, after = thread_counts("defaults")
    assert after == before


def test_user_settings_are_kept(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.setenv(threads.PARALLEL_COPY_VARIABLE, "5000")
    assert threads.set_default_threads() == 3
    assert os.environ[threads.PARALLEL_COPY_VARIABLE] == "5000"
