"""Caffe -> MXNet converter (see README.md).  ``proto.build()`` generates the protobuf module
at set-up time; ``converter.convert(prototxt, caffemodel)`` converts a model."""
import mxssd_compat  # noqa: F401  (before MXNet: numpy aliases, Python 3.9 `symbol`)
