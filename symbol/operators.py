"""Builds and loads the project's MultiBox operator library (``operator/``).

The C++ (and, where a CUDA build of MXNet and ``nvcc`` exist, CUDA) sources are compiled
against the ``lib_api.h`` / ``lib_api.cc`` that ship inside the installed ``mxnet`` wheel
and registered at run time with ``mx.library.load``.  After :func:`load` the operators are
available as ``mx.nd.MultiBoxPrior``, ``mx.sym.MultiBoxTarget``, ... (no MXNet rebuild).
"""
import mxssd_compat  # noqa: F401  (before MXNet: numpy aliases, Python 3.9 `symbol`)
import glob
import logging
import os
import shutil
import subprocess
import sys
import tempfile

import mxnet as mx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE_DIR = os.path.join(ROOT, "operator")
BUILD_DIR = os.path.join(SOURCE_DIR, "build")
LIBRARY_PATH = os.path.join(BUILD_DIR, "libmxnet_ssd_ops.so")
OPERATOR_NAMES = ("MultiBoxPrior", "MultiBoxTarget", "MultiBoxDetection")

# -ffp-contract=off: a fused multiply-add rounds differently from MXNet's own kernels,
# and the parity tests compare against those bit for bit on class ids and masks.
CXX_FLAGS = ["-std=c++17", "-O3", "-fPIC", "-fopenmp", "-ffp-contract=off", "-Wall",
             "-Wno-unused-function"]
NVCC_FLAGS = ["-std=c++17", "-O3", "-Xcompiler", "-fPIC", "-fmad=false"]

_loaded = False


def mxnet_dir():
    return os.path.dirname(mx.__file__)


def include_dir():
    return os.path.join(mxnet_dir(), "include")


def lib_api_source():
    return os.path.join(mxnet_dir(), "src", "lib_api.cc")


def cpu_sources():
    return sorted(glob.glob(os.path.join(SOURCE_DIR, "*.cc")))


def cuda_sources():
    return sorted(glob.glob(os.path.join(SOURCE_DIR, "*.cu")))


def _all_inputs():
    headers = glob.glob(os.path.join(SOURCE_DIR, "*.h"))
    return cpu_sources() + cuda_sources() + headers + [lib_api_source()]


def mxnet_has_cuda():
    """True for a CUDA build of MXNet (e.g. ``mxnet-cu112``) that sees a GPU."""
    try:
        return mx.context.num_gpus() > 0
    except mx.base.MXNetError:
        return False


def nvcc_path():
    return shutil.which("nvcc")


def cuda_home():
    """CUDA toolkit root: $CUDA_HOME / $CUDA_PATH, else next to nvcc, else /usr/local/cuda."""
    for candidate in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"),
                      os.path.dirname(os.path.dirname(os.path.realpath(nvcc_path() or "/")))):
        if candidate and os.path.exists(os.path.join(candidate, "include", "cuda_runtime.h")):
            return candidate
    return "/usr/local/cuda"


def is_stale():
    if not os.path.exists(LIBRARY_PATH):
        return True
    built = os.path.getmtime(LIBRARY_PATH)
    return any(os.path.getmtime(path) > built for path in _all_inputs())


def compile_cuda_object(source, output, extra_flags=()):
    """Compile one ``.cu`` file to an object file with nvcc (raises on failure)."""
    cmd = [nvcc_path(), *NVCC_FLAGS, *extra_flags, "-DMXSSD_WITH_CUDA=1",
           "-I", include_dir(), "-I", SOURCE_DIR,
           "-Xcompiler", "-idirafter," + os.path.join(SOURCE_DIR, "cuda_fallback"),
           "-c", source, "-o", output]
    _run(cmd)


def build(with_cuda=None, verbose=True):
    """Compile the operator library into ``operator/build``; returns its path.

    with_cuda: None = automatic (nvcc found and MXNet is a CUDA build with a GPU).
    """
    if with_cuda is None:
        with_cuda = bool(nvcc_path()) and mxnet_has_cuda()
    os.makedirs(BUILD_DIR, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=BUILD_DIR) as tmp:
        objects, defines = [], []
        if with_cuda:
            defines = ["-DMXSSD_WITH_CUDA=1"]
            for source in cuda_sources():
                obj = os.path.join(tmp, os.path.basename(source) + ".o")
                compile_cuda_object(source, obj)
                objects.append(obj)
        # Written under a temporary name and renamed, so a killed build never leaves
        # a truncated library that a later import would try to load.
        partial = os.path.join(tmp, os.path.basename(LIBRARY_PATH))
        cmd = ["g++", *CXX_FLAGS, *defines, "-shared", "-I", include_dir(), "-I", SOURCE_DIR,
               *cpu_sources(), lib_api_source(), *objects, "-o", partial]
        if with_cuda:
            home = cuda_home()
            cmd += ["-I", os.path.join(home, "include"), "-L", os.path.join(home, "lib64"),
                    "-L", os.path.join(home, "lib"), "-lcudart"]
        if verbose:
            print("building MultiBox operators (%s): %s" % ("CPU+CUDA" if with_cuda else "CPU",
                                                           LIBRARY_PATH), file=sys.stderr)
        _run(cmd)
        os.replace(partial, LIBRARY_PATH)
    return LIBRARY_PATH


def _run(cmd):
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        raise RuntimeError("command failed (%d): %s\n%s" % (proc.returncode, " ".join(cmd),
                                                          proc.stdout))


def load():
    """Register the operators with MXNet once per process (building them if needed)."""
    global _loaded
    if _loaded:
        return LIBRARY_PATH
    if is_stale():
        logging.getLogger(__name__).info("operator library missing or older than its sources")
        build()
    mx.library.load(LIBRARY_PATH, verbose=False)
    _loaded = True
    return LIBRARY_PATH


if __name__ == "__main__":
    build(verbose=True)
