"""setup.py: the dependencies each Python and MXSSD_GPU value get; unsupported Pythons refused."""
import glob
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYENV_VERSIONS = os.path.expanduser("~/.pyenv/versions")


def egg_info(tmp_path, gpu, python=sys.executable):
    """(exit status, output, requires.txt lines) of `setup.py egg_info` with MXSSD_GPU=gpu."""
    result = subprocess.run(
        [python, "setup.py", "-q", "egg_info", "--egg-base", str(tmp_path)], cwd=ROOT,
        env=dict(os.environ, MXSSD_GPU=gpu), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        universal_newlines=True)
    requires = glob.glob(str(tmp_path / "*.egg-info" / "requires.txt"))
    lines = open(requires[0]).read().splitlines() if requires else []
    return result.returncode, result.stdout, lines


@pytest.mark.parametrize("gpu, mxnet", [("0", "mxnet==1.9.1"), ("", "mxnet==1.9.1"),
                                        ("1", "mxnet-cu112==1.9.1"),
                                        ("cu117", "mxnet-cu117==1.9.1"),
                                        ("cu102", "mxnet-cu102==1.9.1")])
def test_mxssd_gpu_selects_the_mxnet_build(tmp_path, gpu, mxnet):
    status, output, requires = egg_info(tmp_path, gpu)
    assert status == 0, output
    assert requires[0] == mxnet
    assert not any(line.startswith("mxnet") for line in requires[1:])


def test_numpy_and_setuptools_follow_the_python_version(tmp_path):
    status, output, requires = egg_info(tmp_path, "0")
    assert status == 0, output
    # requires.txt groups conditional requirements under [:<marker>] headers
    text = "\n".join(requires)
    assert '[:python_version < "3.12"]\nnumpy<1.24' in text
    assert '[:python_version >= "3.12"]\nnumpy<2,>=1.26\nsetuptools' in text


def test_unknown_mxssd_gpu_is_one_clear_line(tmp_path):
    status, output, _ = egg_info(tmp_path, "cu999")
    assert status == 1
    assert output.strip().splitlines() == [
        "error: MXSSD_GPU=cu999: expected 0, 1 (= cu112) or one of MXNet 1.9.1's CUDA builds: "
        "cu101, cu102, cu110, cu111, cu112, cu113, cu114, cu115, cu116, cu117"]


@pytest.mark.parametrize("version, reason", [
    ("3.13", "MXNet 1.9.1 needs numpy<2, which has no wheels for it"),
    ("3.8", "past its end of life")])
def test_unsupported_python_is_refused_with_the_pythons_that_work(tmp_path, version, reason):
    pythons = sorted(glob.glob(os.path.join(PYENV_VERSIONS, version + ".*", "bin", "python")))
    if not pythons:
        pytest.skip("no pyenv Python %s in %s" % (version, PYENV_VERSIONS))
    status, output, requires = egg_info(tmp_path, "0", python=pythons[-1])
    assert status == 1 and not requires
    assert output.strip() == (
        "error: mxnet-ssd runs on Python 3.9 to 3.12, not on Python %s (%s); create the virtual "
        "environment with one of those, e.g. `pyenv install 3.12` or `uv venv --seed "
        "--python 3.12` (README: Quick start)" % (version, reason))
