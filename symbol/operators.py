"""Builds and loads the project's MultiBox operator library (``operator/``).

The C++ (and, where a CUDA build of MXNet and ``nvcc`` exist, CUDA) sources are compiled
against the ``lib_api.h`` / ``lib_api.cc`` that ship inside the installed ``mxnet`` wheel
and registered at run time with ``mx.library.load``.  After :func:`load` the operators are
available as ``mx.nd.MultiBoxPrior``, ``mx.sym.MultiBoxTarget``, ... (no MXNet rebuild).
"""
import mxssd_compat  # noqa: F401  (before MXNet: numpy aliases, Python 3.9 `symbol`)
import glob
import json
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
LIBRARY_NAME = "libmxnet_ssd_ops.so"
LIBRARY_PATH = os.path.join(BUILD_DIR, LIBRARY_NAME)
# A sanitizer build goes to its own folder, so it never replaces the library users load.
SANITIZED_LIBRARY_PATH = os.path.join(BUILD_DIR, "sanitize", LIBRARY_NAME)
# Set to a library path, load() registers that file instead (e.g. the sanitizer build in CI).
LIBRARY_ENV = "MXSSD_OPERATOR_LIBRARY"
OPERATOR_NAMES = ("MultiBoxPrior", "MultiBoxTarget", "MultiBoxDetection")

# -ffp-contract=off: a fused multiply-add rounds differently from MXNet's own kernels,
# and the parity tests compare against those bit for bit on class ids and masks.
CXX_FLAGS = ["-std=c++17", "-O3", "-fPIC", "-fopenmp", "-ffp-contract=off", "-Wall",
             "-Wno-unused-function"]
NVCC_FLAGS = ["-std=c++17", "-O3", "-Xcompiler", "-fPIC", "-fmad=false"]
# Machine code for Maxwell (sm_52) ... Hopper (sm_90) where the toolkit still supports the
# architecture, plus PTX of the newest for later GPUs.  CUDA 13 dropped sm_52 ... sm_72,
# CUDA 11.2 (mxnet-cu112's toolkit) stops at sm_86.
CUDA_ARCHS = (52, 60, 61, 70, 75, 80, 86, 89, 90)
# -fno-sanitize-recover: undefined behaviour aborts the process, so a test cannot pass over it.
SANITIZE_FLAGS = ["-g", "-fno-omit-frame-pointer", "-fno-sanitize-recover=all"]
SANITIZERS = ("address", "undefined")

_loaded = None


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
    headers = glob.glob(os.path.join(SOURCE_DIR, "*.h")) + glob.glob(os.path.join(SOURCE_DIR, "*.cuh"))
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


def cuda_arch_flags():
    """-gencode flags: SASS for each of CUDA_ARCHS this nvcc supports, PTX of the newest."""
    proc = subprocess.run([nvcc_path(), "--list-gpu-code"], stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, text=True)
    supported = {int(code[3:]) for code in proc.stdout.split()
                 if code.startswith("sm_") and code[3:].isdigit()}
    archs = [arch for arch in CUDA_ARCHS if arch in supported]
    if not archs:
        raise RuntimeError("%s supports none of sm_%s ... sm_%s" % (nvcc_path(), CUDA_ARCHS[0],
                                                                    CUDA_ARCHS[-1]))
    flags = ["-gencode=arch=compute_%d,code=sm_%d" % (arch, arch) for arch in archs]
    return flags + ["-gencode=arch=compute_%d,code=compute_%d" % (archs[-1], archs[-1])]


def parse_sanitizers(text):
    """'address,undefined' -> ('address', 'undefined'); '' or None -> ()."""
    names = tuple(name.strip() for name in (text or "").split(",") if name.strip())
    unknown = [name for name in names if name not in SANITIZERS]
    if unknown:
        raise ValueError("unknown sanitizer %s (known: %s)" % (", ".join(unknown),
                                                              ", ".join(SANITIZERS)))
    return names


def mxnet_build_id():
    """What identifies the MXNet build the library was compiled against and will load into."""
    lib = os.path.join(mxnet_dir(), "libmxnet.so")
    stat = os.stat(lib) if os.path.exists(lib) else None
    return "%s %s %s" % (mx.__version__, stat.st_size if stat else "-", int(stat.st_mtime) if stat else "-")


def build_config(with_cuda, sanitize=()):
    """Everything besides the sources that decides what a build produces (kept next to it)."""
    return {"cuda": bool(with_cuda), "sanitize": list(sanitize), "mxnet": mxnet_build_id(),
            "cxx_flags": CXX_FLAGS, "nvcc_flags": NVCC_FLAGS if with_cuda else []}


def _config_path(library):
    return library + ".json"


def is_stale(with_cuda=None, library=LIBRARY_PATH, sanitize=()):
    """True when `library` is missing, older than a source, or built with another configuration
    (CUDA on/off, sanitizers, compiler flags, or another MXNet build)."""
    if with_cuda is None:
        with_cuda = bool(nvcc_path()) and mxnet_has_cuda()
    if not os.path.exists(library) or not os.path.exists(_config_path(library)):
        return True
    built = os.path.getmtime(library)
    if any(os.path.getmtime(path) > built for path in _all_inputs()):
        return True
    try:
        with open(_config_path(library)) as stamp:
            return json.load(stamp) != build_config(with_cuda, sanitize)
    except (OSError, ValueError):
        return True


def compile_cuda_object(source, output, extra_flags=()):
    """Compile one ``.cu`` file to an object file with nvcc (raises on failure)."""
    cmd = [nvcc_path(), *NVCC_FLAGS, *extra_flags, "-DMXSSD_WITH_CUDA=1",
           "-I", include_dir(), "-I", SOURCE_DIR,
           "-Xcompiler", "-idirafter," + os.path.join(SOURCE_DIR, "cuda_fallback"),
           "-c", source, "-o", output]
    _run(cmd)


def build(with_cuda=None, verbose=True, sanitize=()):
    """Compile the operator library; returns its path.

    with_cuda: None = automatic (nvcc found and MXNet is a CUDA build with a GPU).
    sanitize: sanitizer names (``("address", "undefined")``); such a build goes to
    SANITIZED_LIBRARY_PATH and must be loaded with the sanitizer runtime preloaded.
    """
    if with_cuda is None:
        with_cuda = bool(nvcc_path()) and mxnet_has_cuda()
    sanitize = tuple(sanitize)
    library = SANITIZED_LIBRARY_PATH if sanitize else LIBRARY_PATH
    sanitizer_flags = ["-fsanitize=" + ",".join(sanitize), *SANITIZE_FLAGS] if sanitize else []
    os.makedirs(os.path.dirname(library), exist_ok=True)
    with tempfile.TemporaryDirectory(dir=BUILD_DIR) as tmp:
        objects, defines = [], []
        if with_cuda:
            defines = ["-DMXSSD_WITH_CUDA=1"]
            for source in cuda_sources():
                obj = os.path.join(tmp, os.path.basename(source) + ".o")
                compile_cuda_object(source, obj, cuda_arch_flags())
                objects.append(obj)
        # Written under a temporary name and renamed, so a killed build never leaves
        # a truncated library that a later import would try to load.
        partial = os.path.join(tmp, LIBRARY_NAME)
        cmd = ["g++", *CXX_FLAGS, *sanitizer_flags, *defines, "-shared", "-I", include_dir(),
               "-I", SOURCE_DIR, *cpu_sources(), lib_api_source(), *objects, "-o", partial]
        if with_cuda:
            # The CUDA runtime is linked statically: no libcudart.so to find at load time and
            # no second, possibly different, runtime library next to MXNet's own.
            home = cuda_home()
            cmd += ["-I", os.path.join(home, "include"), "-L", os.path.join(home, "lib64"),
                    "-L", os.path.join(home, "lib"), "-lcudart_static", "-ldl", "-lrt",
                    "-lpthread"]
        if verbose:
            print("building MultiBox operators (%s%s): %s" % (
                "CPU+CUDA" if with_cuda else "CPU",
                ", sanitize=" + ",".join(sanitize) if sanitize else "", library), file=sys.stderr)
        _run(cmd)
        os.replace(partial, library)
        with open(_config_path(library), "w") as stamp:
            json.dump(build_config(with_cuda, sanitize), stamp)
    return library


def _run(cmd):
    # Without LD_PRELOAD: a sanitizer runtime preloaded into python (the sanitizer CI step)
    # must not be loaded into the compilers too (nvcc crashes under it).
    env = {key: value for key, value in os.environ.items() if key != "LD_PRELOAD"}
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError("command failed (%d): %s\n%s" % (proc.returncode, " ".join(cmd),
                                                          proc.stdout))


def load():
    """Register the operators with MXNet once per process (building them if needed).

    Returns the library's path: $MXSSD_OPERATOR_LIBRARY when set (loaded as it is), else
    LIBRARY_PATH, rebuilt first when it is stale.
    """
    global _loaded
    if _loaded:
        return _loaded
    library = os.environ.get(LIBRARY_ENV) or LIBRARY_PATH
    if library == LIBRARY_PATH and is_stale():
        logging.getLogger(__name__).info("operator library missing, older than its sources or "
                                         "built for another configuration")
        build()
    _load_library(library)
    _loaded = library
    return library


def _load_library(library):
    """``mx.library.load``, regenerating the Python functions of only the operators the
    library adds.  mx.library.load regenerates those of all ~1900 of MXNet's (exec'ing their
    generated source): 0.35 s of CPU time on every start-up here (2-core EPYC; 0.005 s now),
    the largest part of demo.py's after importing MXNet itself.  MXNet's own code still does
    the work; the filter it applies to operator names (``_is_np_op``: the ones it leaves to
    mx.np) is widened, for this load only, to the operators that already have functions."""
    from mxnet import base
    existing = frozenset(mx.operator.get_all_registered_operators())
    skipped_by_mxnet = base._is_np_op
    base._is_np_op = lambda name: name in existing or skipped_by_mxnet(name)
    try:
        mx.library.load(library, verbose=False)
    finally:
        base._is_np_op = skipped_by_mxnet


if __name__ == "__main__":
    build(verbose=True)
