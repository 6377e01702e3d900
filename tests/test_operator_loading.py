"""symbol.operators.load registers our operators as mx.library.load does, generating the
Python functions of only the operators the library adds (a fresh process: load runs once)."""
import os
import subprocess
import sys

CHILD = r"""
import mxssd_compat
import mxnet as mx
from mxnet import base
before = {name: getattr(mx.nd, name) for name in ("Convolution", "softmax")}
contrib_prior = mx.nd.contrib.MultiBoxPrior
from symbol import operators
operators.load()
assert base._is_np_op("Convolution") is False        # MXNet's filter is restored
assert all(getattr(mx.nd, name) is f for name, f in before.items())   # not regenerated
assert mx.nd.contrib.MultiBoxPrior is contrib_prior
ours = mx.nd.MultiBoxPrior(mx.nd.zeros((1, 3, 2, 2)), sizes=[0.5], ratios=[1, 2])
theirs = contrib_prior(mx.nd.zeros((1, 3, 2, 2)), sizes=[0.5], ratios=[1, 2])
assert ours.shape == (1, 8, 4) and abs(ours - theirs).max().asscalar() < 1e-6
for name in ("MultiBoxPrior", "MultiBoxDetection", "MultiBoxTarget", "WinogradConv3x3"):
    assert callable(getattr(mx.nd, name)) and callable(getattr(mx.sym, name)), name
print("ok")
"""


def test_load_registers_our_operators_and_keeps_mxnets_functions():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run([sys.executable, "-c", CHILD], cwd=root, capture_output=True,
                            text=True, env=dict(os.environ, PYTHONPATH=root))
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]
