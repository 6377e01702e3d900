"""Compiles ``caffe.proto`` to ``caffe_pb2.py`` at set-up time and loads it.

The generated module is not committed: it is tied to the protobuf runtime that generated
it, so each installation builds its own with the ``protoc`` bundled in ``grpcio-tools``
(or a ``protoc`` found on PATH).  :func:`build` is what setup/CI call;
:func:`load_caffe_pb2` rebuilds lazily when the module is missing or older than the proto.
"""
import importlib
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_PATH = os.path.join(HERE, "caffe.proto")
MODULE_PATH = os.path.join(HERE, "caffe_pb2.py")
MODULE_NAME = __package__ + ".caffe_pb2" if __package__ else "caffe_pb2"


def is_stale():
    """True when caffe_pb2.py is missing or older than caffe.proto."""
    return (not os.path.exists(MODULE_PATH)
            or os.path.getmtime(MODULE_PATH) < os.path.getmtime(PROTO_PATH))


def _protoc_command(out_dir):
    args = ["-I", HERE, "--python_out=" + out_dir, PROTO_PATH]
    try:
        import grpc_tools.protoc  # noqa: F401  (only probing that it is installed)
        return [sys.executable, "-m", "grpc_tools.protoc"] + args
    except ImportError:
        protoc = shutil.which("protoc")
        if protoc is None:
            raise RuntimeError("cannot compile %s: install grpcio-tools (pip install "
                               "grpcio-tools) or put protoc on PATH" % PROTO_PATH)
        return [protoc] + args


def build(verbose=False):
    """Generate caffe_pb2.py next to caffe.proto; returns its path."""
    # Generated into a temporary folder and renamed, so a concurrent reader never
    # imports a half-written module.
    with tempfile.TemporaryDirectory(dir=HERE) as tmp:
        cmd = _protoc_command(tmp)
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if proc.returncode != 0:
            raise RuntimeError("protoc failed (%d) on %s:\n%s"
                               % (proc.returncode, PROTO_PATH, proc.stdout))
        os.replace(os.path.join(tmp, "caffe_pb2.py"), MODULE_PATH)
    if verbose:
        print("generated %s" % MODULE_PATH, file=sys.stderr)
    return MODULE_PATH


def load_caffe_pb2():
    """Import the generated module, building it first when missing or stale."""
    if MODULE_NAME in sys.modules:
        return sys.modules[MODULE_NAME]
    if is_stale():
        build()
    return importlib.import_module(MODULE_NAME)


if __name__ == "__main__":
    build(verbose=True)
