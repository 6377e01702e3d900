"""Caffe -> MXNet converter (see README.md).  ``proto.build()`` generates the protobuf module
at set-up time; ``converter.convert(prototxt, caffemodel)`` converts a model."""
