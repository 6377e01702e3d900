"""Makes MXNet 1.9.1 (the last MXNet release) importable on the Pythons and numpys we support,
and quick to start and to run INT8 on today's CPUs.

Imported before MXNet on every path: the first line of each package ``__init__.py``, of each
script and of ``tests/conftest.py``.  It does four things and nothing else:

* numpy 1.24 removed the aliases of Python's built-in types (``np.bool`` ...) that MXNet 1.9.1
  still uses; Python 3.12 has no wheel of an older numpy, so there we run numpy 1.26 with
  those aliases put back.  On a numpy that still has them (1.23 and older) this does nothing.
  tests/test_compat.py scans MXNet's sources to prove no other name is missing.
* Python 3.9's standard library has a module named ``symbol`` (removed in 3.10).  Where our
  ``symbol/`` package is not first on ``sys.path`` (an installed or editable package, a script
  in ``tools/``), ``import symbol`` would find that module instead; a finder placed before the
  standard one resolves the name ``symbol`` to our package.
* MXNet 1.9.1's oneDNN (v2.4.4) has INT8 kernels for AMX, the matrix units of Intel Xeons since
  Sapphire Rapids, but runs them only when ``DNNL_MAX_CPU_ISA`` asks for them, and it never asks
  Linux for the permission a process needs before its first AMX instruction (kernel 5.16+): the
  variable alone kills the first INT8 convolution with SIGILL.  Where the kernel grants that
  permission, and the user has set no ISA limit of their own, it is asked for and the variable
  set: VGG16-SSD300 INT8 went from 64.6 to 35.2 ms per image on a 2-core AMX Xeon, fp32 unchanged.
  ``MXSSD_AMX=0`` leaves both alone.  The permission is per process and execve() clears it, so a
  program started from here that runs INT8 MXNet inherits the variable and must import this
  module too (every entry point of the project does).
* ``import mxnet`` imports ``scipy.stats`` (for its test utilities and the entropy calibration
  of INT8 models) when SciPy is installed: 0.26 of its 0.97 s, measured, paid by every script
  and ``demo.py`` call.  A stand-in module takes its place and imports it on the first
  attribute read, so only the code that uses it pays.
"""
import ctypes
import importlib.abc
import importlib.machinery
import importlib.util
import os
import platform
import sys
import types
import warnings

import numpy

# The builtin-type aliases MXNet 1.9.1 uses (np.bool in mxnet.numpy, np.int in the random
# modules), removed in numpy 1.24.  Add a name here only when tests/test_compat.py finds it.
REMOVED_NUMPY_ALIASES = {"bool": bool, "int": int}


def has_numpy_name(name):
    """Whether numpy defines ``name`` (numpy 1.20-1.23 warn when a deprecated alias is read)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return hasattr(numpy, name)


def restore_numpy_aliases():
    for name, value in REMOVED_NUMPY_ALIASES.items():
        if not has_numpy_name(name):
            setattr(numpy, name, value)


PACKAGE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "symbol")


class ProjectSymbolFinder(importlib.abc.MetaPathFinder):
    """Finds our ``symbol`` package under the name the Python 3.9 stdlib module also has."""

    def find_spec(self, name, path=None, target=None):
        if name != "symbol":
            return None
        return importlib.util.spec_from_file_location(
            "symbol", os.path.join(PACKAGE_DIR, "__init__.py"),
            submodule_search_locations=[PACKAGE_DIR])


def prefer_project_symbol_package():
    if sys.version_info >= (3, 10) or not os.path.isdir(PACKAGE_DIR):
        return
    if not any(isinstance(finder, ProjectSymbolFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, ProjectSymbolFinder())
    loaded = sys.modules.get("symbol")
    if loaded is not None and not hasattr(loaded, "__path__"):  # the stdlib module: not ours
        del sys.modules["symbol"]


# Linux x86-64: arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) asks for AMX tile data.
SYS_ARCH_PRCTL, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA = 158, 0x1023, 18
ONEDNN_ISA_VARIABLES = ("DNNL_MAX_CPU_ISA", "ONEDNN_MAX_CPU_ISA")
AMX_ISA = "AVX512_CORE_AMX"


def request_amx_permission():
    """Whether Linux lets this process run AMX instructions (False on other CPUs and systems)."""
    if not sys.platform.startswith("linux") or platform.machine() not in ("x86_64", "AMD64"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.syscall(SYS_ARCH_PRCTL, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0
    except (OSError, AttributeError):  # no libc symbol table (static or unusual Pythons)
        return False


def enable_amx():
    if os.environ.get("MXSSD_AMX", "1") == "0":
        return
    if request_amx_permission() and not any(os.environ.get(v) for v in ONEDNN_ISA_VARIABLES):
        os.environ["DNNL_MAX_CPU_ISA"] = AMX_ISA


class DeferredModule(types.ModuleType):
    """Stands in for a module in ``sys.modules`` until an attribute of it is read; then imports
    the module and takes on its contents (so references to the stand-in keep working)."""

    def __getattr__(self, name):  # only called for attributes the stand-in does not have yet
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        module = importlib.import_module(self.__name__)
        self.__dict__.update(module.__dict__)
        return getattr(module, name)


DEFERRED_MODULES = ("scipy.stats",)


def defer_slow_imports():
    for name in DEFERRED_MODULES:
        parent = name.rpartition(".")[0]
        if name not in sys.modules and importlib.util.find_spec(parent) is not None:
            module = DeferredModule(name)
            module.__spec__ = importlib.machinery.ModuleSpec(name, None)
            sys.modules[name] = module


restore_numpy_aliases()
prefer_project_symbol_package()
enable_amx()
defer_slow_imports()
