"""The other SSD implementations the benchmarks compare against: how to install them, whether
they can run here, and how to import GluonCV next to a recent PyTorch."""
import importlib
import sys
import warnings

CONSTRAINTS = "-c constraints.txt  # constraints.txt: numpy<1.24 and mxnet==1.9.1"
PEER_INSTALL = {
    "opencv": "pip install 'opencv-python-headless<5'",
    "onnxruntime": "pip install onnxruntime onnx  # or: pip install -e '.[onnx]'",
    "openvino": "pip install openvino onnx  # or: pip install -e '.[onnx]'",
    "gluoncv": "pip install 'gluoncv==0.10.5.post0' " + CONSTRAINTS,
    "torchvision": "pip install torch==2.14.1 torchvision==0.29.1 " + CONSTRAINTS,
}
PEER_MODULES = {"opencv": "cv2", "onnxruntime": "onnxruntime", "openvino": "openvino",
                "gluoncv": "gluoncv", "torchvision": "torchvision"}
# GluonCV's image normalisation (its SSD transforms): RGB / 255, minus mean, over std.
GLUON_MEAN, GLUON_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def import_gluoncv():
    """GluonCV 0.10 refuses to import when torch >= 2 is installed (its optional PyTorch
    check raises RuntimeError, not ImportError); hide torch while it imports."""
    saved = sys.modules.get("torch")
    sys.modules["torch"] = None  # makes 'import torch' raise ImportError
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return importlib.import_module("gluoncv")
    finally:
        if saved is None:
            del sys.modules["torch"]
        else:
            sys.modules["torch"] = saved


def import_gluoncv_module(name):
    """A GluonCV submodule by its path (``gcv.model_zoo.ssd`` is shadowed by another
    ``ssd`` module of the zoo, so attribute access reaches the wrong one)."""
    import_gluoncv()
    return importlib.import_module("gluoncv." + name)


def peer_status(peer):
    """None when ``peer`` can run here, else the reason it cannot."""
    try:
        if peer == "gluoncv":
            import_gluoncv()
        else:
            importlib.import_module(PEER_MODULES[peer])
    except Exception as err:  # noqa: BLE001 -- any import failure means "cannot run here"
        return "%s: %s" % (type(err).__name__, str(err).splitlines()[0][:100])
    return None


def available_peers(requested):
    """The requested peers that can run; prints each one skipped with its install command."""
    usable = []
    for peer in requested:
        reason = peer_status(peer)
        if reason:
            print("skipped %s (%s); install: %s" % (peer, reason, PEER_INSTALL[peer]))
        else:
            usable.append(peer)
    return usable
