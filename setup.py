"""mxnet-ssd: SSD (Single Shot MultiBox Detector) on Apache MXNet 1.9 (Symbol API).

    pip install -e .                    # CPU (mxnet==1.9.1)
    MXSSD_GPU=1 pip install -e .        # GPU: mxnet-cu112==1.9.1 (NVIDIA driver >= 460)
    MXSSD_GPU=cu117 pip install -e .    # GPU: any MXNet 1.9.1 CUDA build, see README: GPU
    python setup.py build_ops           # compile operator/ into operator/build/ (also done on first import)
"""
import importlib.util
import os
import sys

# Checked before anything else (even setuptools, absent from a bare Python 3.12+ venv) so that
# pip prints which Pythons work and how to get one, not only a version range or a build failure.
# Newer: MXNet 1.9.1 requires numpy<2, which has no wheels for Python 3.13 (README: Quick start).
# Older: Python 3.8 is past its end of life and nothing tests it here.
OLDEST_PYTHON, NEWEST_PYTHON = (3, 9), (3, 12)
if not OLDEST_PYTHON <= sys.version_info[:2] <= NEWEST_PYTHON:
    sys.exit("error: mxnet-ssd runs on Python %d.%d to %d.%d, not on Python %d.%d (%s); create the "
             "virtual environment with one of those, e.g. `pyenv install 3.12` or "
             "`uv venv --seed --python 3.12` (README: Quick start)"
             % (OLDEST_PYTHON + NEWEST_PYTHON + sys.version_info[:2] + (
                 "MXNet 1.9.1 needs numpy<2, which has no wheels for it"
                 if sys.version_info[:2] > NEWEST_PYTHON else "past its end of life",)))

from setuptools import Command, find_packages, setup  # noqa: E402

ROOT = os.path.dirname(os.path.abspath(__file__))

# mxnet and its CUDA builds (mxnet-cu112, ...) install the same `mxnet` package, so the GPU
# build replaces the CPU one instead of being added as an extra: choose it with MXSSD_GPU=1
# (CUDA 11.2) or MXSSD_GPU=cu117 etc. (a CUDA build cannot even be imported without an NVIDIA
# driver, so it is never the default).  These are all the CUDA builds of MXNet 1.9.1 on PyPI.
MXNET_CUDA_BUILDS = ("cu101", "cu102", "cu110", "cu111", "cu112", "cu113", "cu114", "cu115",
                     "cu116", "cu117")
DEFAULT_CUDA_BUILD = "cu112"


def mxnet_requirement(gpu):
    """The MXNet distribution for the MXSSD_GPU value ``gpu`` ('' or '0': the CPU build)."""
    if gpu in ("", "0"):
        return "mxnet==1.9.1"
    build = DEFAULT_CUDA_BUILD if gpu == "1" else gpu
    if build not in MXNET_CUDA_BUILDS:
        sys.exit("error: MXSSD_GPU=%s: expected 0, 1 (= %s) or one of MXNet 1.9.1's CUDA builds: %s"
                 % (gpu, DEFAULT_CUDA_BUILD, ", ".join(MXNET_CUDA_BUILDS)))
    return "mxnet-%s==1.9.1" % build


REQUIRES = [
    mxnet_requirement(os.environ.get("MXSSD_GPU", "0")),
    # numpy 1.24 removed np.bool & co., which MXNet 1.9.1 uses: older numpy where it has wheels,
    # and on 3.12 numpy 1.26 with the aliases restored by mxssd_compat.py.
    "numpy<1.24; python_version<'3.12'",
    "numpy>=1.26,<2; python_version>='3.12'",
    # MXNet imports distutils, which Python 3.12 removed; setuptools provides it.
    "setuptools; python_version>='3.12'",
    # Headless: the full opencv-python needs libGL, absent from fresh servers and containers;
    # windows are drawn with matplotlib.  Below 5: OpenCV 5 dropped readNetFromCaffe.
    "opencv-python-headless>=4.5,<5",
    "matplotlib",
    "tqdm",
    "protobuf",
    "grpcio-tools",                      # compiles the Caffe proto for tools/caffe_converter
    "pycocotools",
    "scipy",                             # MXNet's INT8 entropy calibration (tools/quantize.py)
]

# deploy.py --format onnx, demo.py / evaluate.py --runtime (tested: onnx 1.18.0, onnxruntime
# 1.32.0, openvino 2026.4.1 with numpy 1.23.5).  MXNet 1.9.1's ONNX exporter imports
# onnx.mapping, which onnx 1.19 removed.  The INT8 export (detect/onnx_quantize.py) uses
# onnxruntime.quantization, which imports ml_dtypes and (quant_pre_process's symbolic shape
# inference) sympy without depending on them; ml_dtypes 0.5 is the last to accept numpy 1.23.
ONNX_EXTRA = ["onnx>=1.14,<1.19", "onnxruntime>=1.16", "openvino>=2023.1", "ml_dtypes>=0.4,<0.6",
              "sympy"]


def load_module(name, path):
    """Import one file without importing its package (whose __init__ loads the operators)."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class BuildOps(Command):
    description = "compile the MultiBox operator library and the Caffe proto"
    user_options = [("cuda=", None, "build the CUDA kernels: yes, no or auto (default)"),
                    ("sanitize=", None, "also instrument with sanitizers, e.g. address,undefined "
                                        "(built into operator/build/sanitize/)")]

    def initialize_options(self):
        self.cuda = "auto"
        self.sanitize = ""

    def finalize_options(self):
        if self.cuda not in ("yes", "no", "auto"):
            raise ValueError("--cuda must be yes, no or auto")

    def run(self):
        operators = load_module("mxssd_operators", "symbol/operators.py")
        with_cuda = {"yes": True, "no": False, "auto": None}[self.cuda]
        sanitize = operators.parse_sanitizers(self.sanitize)
        print("built", operators.build(with_cuda=with_cuda, sanitize=sanitize))
        proto = os.path.join(ROOT, "tools", "caffe_converter", "proto.py")
        if os.path.exists(proto):
            print("built", load_module("mxssd_caffe_proto", "tools/caffe_converter/proto.py").build())

setup(
    name="mxnet-ssd",
    version="0.1.0",
    description="SSD: Single Shot MultiBox Object Detector on Apache MXNet 1.9",
    long_description=open(os.path.join(ROOT, "README.md")).read(),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=%d.%d,<%d.%d" % (OLDEST_PYTHON + (NEWEST_PYTHON[0], NEWEST_PYTHON[1] + 1)),
    py_modules=["mxssd_compat"],
    packages=find_packages(include=["symbol", "dataset", "dataset.*", "config", "train",
                                    "detect", "evaluate", "tools", "tools.*"]),
    install_requires=REQUIRES,
    extras_require={"test": ["pytest"], "onnx": ONNX_EXTRA},
    cmdclass={"build_ops": BuildOps},
)
