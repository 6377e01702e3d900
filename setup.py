"""mxnet-ssd: SSD (Single Shot MultiBox Detector) on Apache MXNet 1.9 (Symbol API).

    pip install -e .                 # CPU (mxnet==1.9.1)
    MXSSD_GPU=1 pip install -e .     # GPU (mxnet-cu112==1.9.1; needs an NVIDIA driver + CUDA 11.2)
    python setup.py build_ops        # compile operator/ into operator/build/ (also done on first import)
"""
import importlib.util
import os

from setuptools import Command, find_packages, setup

ROOT = os.path.dirname(os.path.abspath(__file__))

# mxnet and mxnet-cu112 install the same `mxnet` package, so the GPU build replaces the CPU
# one instead of being added as an extra: choose it with MXSSD_GPU=1 (mxnet-cu112 cannot even
# be imported without an NVIDIA driver, so it is never the default).
USE_GPU = os.environ.get("MXSSD_GPU", "0") not in ("", "0")
MXNET = "mxnet-cu112==1.9.1" if USE_GPU else "mxnet==1.9.1"

REQUIRES = [
    MXNET,
    "numpy<1.24",                        # numpy 1.24 removed np.bool, which MXNet 1.9 uses
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
# onnx.mapping, which onnx 1.19 removed.
ONNX_EXTRA = ["onnx>=1.14,<1.19", "onnxruntime>=1.16", "openvino>=2023.1"]


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
    python_requires=">=3.8",
    packages=find_packages(include=["symbol", "dataset", "dataset.*", "config", "train",
                                    "detect", "evaluate", "tools", "tools.*"]),
    install_requires=REQUIRES,
    extras_require={"test": ["pytest"], "onnx": ONNX_EXTRA},
    cmdclass={"build_ops": BuildOps},
)
