"""mxssd_compat: every numpy name MXNet reads exists after it, it changes nothing else, and every
script and package imports it before MXNet."""
import ast
import importlib.util
import os
import subprocess
import sys
import types
import warnings

import mxssd_compat  # noqa: F401  (what every entry point imports before MXNet)
import numpy
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# MXNet 1.9.1 reads these numpy names where numpy 1.24+ lacks them, and rightly so: they are
# (file, dotted name): reason.  Everything else the scan finds must exist.
NOT_NUMPY_NAMES = {}


def mxnet_dir():
    # find_spec does not import MXNet: the scan must not depend on the compat module having run
    return os.path.dirname(importlib.util.find_spec("mxnet").origin)


def numpy_aliases(tree):
    """{local name: numpy module or attribute} bound by absolute `import numpy...` statements."""
    aliases = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "numpy" or alias.name.startswith("numpy."):
                    if alias.asname:
                        aliases[alias.asname] = alias.name
                    else:
                        aliases["numpy"] = "numpy"
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and (
                node.module == "numpy" or node.module.startswith("numpy.")):
            for alias in node.names:
                if alias.name != "*":
                    aliases[alias.asname or alias.name] = node.module + "." + alias.name
    return aliases


def dotted_reads(tree, aliases):
    """(line, numpy module, [attribute, ...]) of each outermost attribute chain read from a
    numpy alias, and of each name in a `_NUMPY_..._LIST` of strings (numpy_dispatch_protocol.py
    reads those with getattr(numpy, name))."""
    inner = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and id(node) not in inner:
            parts, value = [], node
            while isinstance(value, ast.Attribute):
                parts.append(value.attr)
                value = value.value
            reads_numpy = isinstance(value, ast.Name) and value.id in aliases
            if reads_numpy and isinstance(node.ctx, ast.Load):
                yield node.lineno, aliases[value.id], parts[::-1]
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.List) and any(
                isinstance(target, ast.Name) and target.id.startswith("_NUMPY_")
                and target.id.endswith("_LIST") for target in node.targets):
            for item in node.value.elts:
                yield item.lineno, "numpy", item.value.split(".")


def has_attribute(module, name):
    """hasattr without numpy 1.20-1.23's warning on a deprecated alias."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return hasattr(module, name)


def resolve(dotted):
    """The numpy object named by 'numpy.a.b' (importing submodules as Python would)."""
    obj = importlib.import_module("numpy")
    for part in dotted.split(".")[1:]:
        if not has_attribute(obj, part):
            obj = importlib.import_module(obj.__name__ + "." + part)
        else:
            obj = getattr(obj, part)
    return obj


def missing_numpy_names(source_dir):
    """Scan .py files: (relative file, 'numpy.x.y') for each name MXNet reads that numpy lacks,
    plus counts of files and reads, so that a scan that finds nothing fails loudly."""
    missing, files, reads = {}, 0, 0
    for folder, _, names in os.walk(source_dir):
        for name in names:
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            with open(path, encoding="utf-8") as source, warnings.catch_warnings():
                warnings.simplefilter("ignore")  # MXNet's invalid escapes warn on Python 3.12
                tree = ast.parse(source.read(), path)
            files += 1
            aliases = numpy_aliases(tree)
            for line, dotted, attrs in dotted_reads(tree, aliases):
                obj = resolve(dotted)
                for attr in attrs:  # attributes of modules only: a class's are not numpy's API
                    if not isinstance(obj, types.ModuleType):
                        break
                    reads += 1
                    dotted += "." + attr
                    if not has_attribute(obj, attr):
                        missing.setdefault((os.path.relpath(path, source_dir), dotted), line)
                        break
                    obj = getattr(obj, attr)
    return missing, files, reads


def test_every_numpy_name_mxnet_reads_exists():
    missing, files, reads = missing_numpy_names(mxnet_dir())
    assert files > 200 and reads > 1000, "scan too small: %d files, %d reads" % (files, reads)
    unexpected = {key: line for key, line in missing.items() if key not in NOT_NUMPY_NAMES}
    assert not unexpected, "numpy %s lacks names MXNet reads (file, name: line): %s" % (
        numpy.__version__, unexpected)
    stale = set(NOT_NUMPY_NAMES) - set(missing)
    assert not stale, "allowlisted names are now found or no longer read: %s" % stale


def test_the_scan_sees_a_missing_name(tmp_path):
    """The oracle for the scan itself: missing names read as attributes and from a name list."""
    (tmp_path / "uses.py").write_text(
        "import numpy as onp\nfrom numpy import random as npr\n"
        "x = onp.float32(1) + onp.linalg.norm([1.0])\n"
        "y = onp.not_a_numpy_name_xyz\nz = npr.not_random_either\nonp.dtype('f').itemsize\n"
        "_NUMPY_X_LIST = [\n    'sum',\n    'linalg.nope',\n]\n")
    missing, files, reads = missing_numpy_names(str(tmp_path))
    assert files == 1 and reads == 9
    assert missing == {("uses.py", "numpy.not_a_numpy_name_xyz"): 4,
                       ("uses.py", "numpy.random.not_random_either"): 5,
                       ("uses.py", "numpy.linalg.nope"): 9}


def test_aliases_restored_only_where_numpy_lacks_them():
    for name, builtin in mxssd_compat.REMOVED_NUMPY_ALIASES.items():
        if tuple(int(v) for v in numpy.__version__.split(".")[:2]) >= (1, 24):
            assert numpy.__dict__[name] is builtin
        else:  # numpy 1.23 still has them (deprecated, read through its module __getattr__)
            assert name not in numpy.__dict__


def test_mxnet_imports_and_runs():
    import mxnet as mx  # numpy 1.26 + Python 3.12: needs the aliases and setuptools' distutils
    out = mx.nd.contrib.MultiBoxPrior(mx.nd.zeros((1, 3, 2, 2)), sizes=[0.5]).asnumpy()
    assert out.shape == (1, 4, 4)
    numpy.testing.assert_allclose(out[0, 0], [0.0, 0.0, 0.5, 0.5], atol=1e-6)


def test_symbol_resolves_to_the_project_package_when_stdlib_comes_first(tmp_path):
    """An installed project is on sys.path after the standard library, where Python 3.9 has a
    module named `symbol`; the compat module's finder must still give our package."""
    probe = ("import sys, importlib.util; sys.path.append(%r)\n%s"
             "spec = importlib.util.find_spec('symbol')\n"
             "print(spec.origin, bool(spec.submodule_search_locations))\n")
    ours = os.path.join(ROOT, "symbol", "__init__.py")

    def origin(with_compat):
        code = probe % (ROOT, "import mxssd_compat\n" if with_compat else "")
        return subprocess.run([sys.executable, "-c", code], cwd=str(tmp_path), check=True,
                              stdout=subprocess.PIPE, universal_newlines=True).stdout.split()

    assert origin(with_compat=True) == [ours, "True"]
    if sys.version_info < (3, 10):  # the clash this guards against is real here
        assert origin(with_compat=False)[1] == "False"
    else:
        assert origin(with_compat=False) == [ours, "True"]


@pytest.mark.skipif(sys.version_info >= (3, 10), reason="Python 3.10 removed the stdlib `symbol`")
def test_stdlib_symbol_already_imported_is_replaced(tmp_path):
    code = ("import sys; sys.path.append(%r)\n"
            "import symbol; assert not hasattr(symbol, '__path__')  # the stdlib module\n"
            "import mxssd_compat, importlib.util; print('symbol' in sys.modules,"
            " importlib.util.find_spec('symbol').origin)" % ROOT)
    out = subprocess.run([sys.executable, "-c", code], cwd=str(tmp_path), check=True,
                         stdout=subprocess.PIPE, universal_newlines=True).stdout.split()
    assert out == ["False", os.path.join(ROOT, "symbol", "__init__.py")]


PROJECT_PACKAGES = ("symbol", "dataset", "detect", "evaluate", "train", "tools", "bench")
# config/ is imported by the scripts before they set OMP_NUM_THREADS, so it stays free of numpy
PACKAGES_WITHOUT_COMPAT = {"config/__init__.py"}


def first_import_needing_compat(tree):
    """Index among the top-level statements of the first import of MXNet or of a project
    package (whose MXNet import the compat module must precede), or None."""
    for index, stmt in enumerate(tree.body):
        for node in ast.walk(stmt):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level
                     else [])
            if any(name.split(".")[0] in ("mxnet",) + PROJECT_PACKAGES for name in names):
                return index
    return None


def imports_compat_at(tree):
    for index, stmt in enumerate(tree.body):
        if isinstance(stmt, ast.Import) and [a.name for a in stmt.names] == ["mxssd_compat"]:
            return index
    return None


def test_every_script_and_package_imports_compat_before_mxnet():
    tracked = subprocess.run(["git", "ls-files", "*.py"], cwd=ROOT, check=True,
                             stdout=subprocess.PIPE, universal_newlines=True).stdout.split()
    late = []
    checked = 0
    for path in tracked:
        if path.startswith("tests/") or path == "setup.py" or path == "mxssd_compat.py":
            continue
        with open(os.path.join(ROOT, path), encoding="utf-8") as source:
            text = source.read()
        tree = ast.parse(text, path)
        needs = first_import_needing_compat(tree)
        if path.endswith("__init__.py") and path not in PACKAGES_WITHOUT_COMPAT:
            needs = len(tree.body) if needs is None else needs  # a package: always
        elif "__main__" not in text or needs is None:
            continue  # a module of a package (its __init__ imports compat) or needs no MXNet
        checked += 1
        compat = imports_compat_at(tree)
        if compat is None or compat > needs:
            late.append(path)
    assert checked > 20, checked
    assert not late, "import mxssd_compat before MXNet or a project package in: %s" % late


# An INT8 3x3 convolution through MXNet's quantized operator (oneDNN): prints the ISA variable,
# oneDNN's implementation name and the int32 output's digest.
INT8_CONVOLUTION = """
import hashlib, os, sys
sys.path.insert(0, %r)
import mxssd_compat
import mxnet as mx, numpy as np
rng = np.random.RandomState(0)
data = mx.nd.array(rng.randint(0, 256, (1, 64, 20, 20)), dtype="uint8")
weight = mx.nd.array(rng.randint(-127, 128, (64, 64, 3, 3)), dtype="int8")
limit = lambda value: mx.nd.array([value])
out = mx.nd.contrib.quantized_conv(data, weight, limit(0), limit(255), limit(-127), limit(127),
                                   kernel=(3, 3), pad=(1, 1), num_filter=64, no_bias=True)[0]
print("isa", os.environ.get("DNNL_MAX_CPU_ISA"))
print("digest", out.dtype.__name__, hashlib.sha1(out.asnumpy().tobytes()).hexdigest())
""" % ROOT


def int8_convolution(**env):
    """(ISA variable, oneDNN convolution implementation, output digest) in a fresh process."""
    environ = {k: v for k, v in os.environ.items()
               if k not in mxssd_compat.ONEDNN_ISA_VARIABLES + ("MXSSD_AMX",)}
    environ.update(env, DNNL_VERBOSE="1")
    run = subprocess.run([sys.executable, "-c", INT8_CONVOLUTION], env=environ, check=True,
                         stdout=subprocess.PIPE, universal_newlines=True)
    lines = run.stdout.splitlines()
    implementation = [line.split(",")[4] for line in lines
                      if line.startswith("dnnl_verbose,exec,cpu,convolution")]
    values = dict(line.split(" ", 1) for line in lines if line.startswith(("isa ", "digest ")))
    return values["isa"], implementation, values["digest"]


# Without AMX nothing sets the variable, so these tests would pass whatever the code does.
needs_amx = pytest.mark.skipif(not mxssd_compat.request_amx_permission(),
                               reason="this CPU or kernel has no AMX (arch_prctl refused the "
                                      "tile permission)")


@needs_amx
def test_amx_int8_convolution_is_exact():
    """Where Linux grants AMX, INT8 convolutions run on it and give VNNI's int32 sums exactly."""
    isa, amx_impl, amx_digest = int8_convolution()
    vnni_isa, vnni_impl, vnni_digest = int8_convolution(MXSSD_AMX="0")
    assert (isa, vnni_isa) == ("AVX512_CORE_AMX", "None")
    assert len(amx_impl) == 1 and "amx_int8" in amx_impl[0], amx_impl
    assert len(vnni_impl) == 1 and "amx" not in vnni_impl[0], vnni_impl
    assert amx_digest == vnni_digest and amx_digest.startswith("int32 ")


@needs_amx
@pytest.mark.parametrize("env, expected", [
    ({"DNNL_MAX_CPU_ISA": "AVX2"}, "AVX2"),   # the user's own limit wins
    ({"ONEDNN_MAX_CPU_ISA": "AVX2"}, "None"),  # ... under either of oneDNN's names
    ({"MXSSD_AMX": "0"}, "None"),              # the switch leaves the variable alone
])
def test_user_isa_settings_are_kept(env, expected):
    assert int8_convolution(**env)[0] == expected


DEFERRED_SCIPY = """
import sys
sys.path.insert(0, %r)
import mxssd_compat
import mxnet
stand_in = sys.modules["scipy.stats"]
print("after import mxnet:", type(stand_in).__name__, "entropy" in vars(stand_in))
from mxnet.contrib import quantization  # its entropy calibration reads scipy.stats
print("entropy", quantization.stats.entropy([0.5, 0.5], [0.25, 0.75]))
from scipy.stats import *  # noqa: F403  (a star import sees the whole module)
print("star import", norm.cdf(0.0), "entropy" in vars(stand_in))
""" % ROOT


def test_scipy_stats_is_imported_on_first_use():
    if importlib.util.find_spec("scipy") is None:
        pytest.skip("SciPy is not installed: nothing to defer")
    out = subprocess.run([sys.executable, "-c", DEFERRED_SCIPY], check=True,
                         stdout=subprocess.PIPE, universal_newlines=True).stdout.splitlines()
    assert out[0] == "after import mxnet: DeferredModule False"
    kl = 0.5 * numpy.log(0.5 / 0.25) + 0.5 * numpy.log(0.5 / 0.75)  # scipy's entropy(p, q)
    assert float(out[1].split()[1]) == pytest.approx(kl)
    assert out[2] == "star import 0.5 True"
