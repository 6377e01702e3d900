"""Shared pytest set-up: make the repository root importable and pin thread counts."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
os.environ.setdefault("OMP_NUM_THREADS", "2")
import mxssd_compat  # noqa: E402,F401  (before MXNet: numpy aliases, Python 3.9 `symbol`)
