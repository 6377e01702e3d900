"""MobileNet v1 backbone (Howard et al. 2017) with a width multiplier.

Layers ``conv_1`` (full 3x3 conv) and ``conv_2`` ... ``conv_14`` (depthwise 3x3 ``conv_k_dw``
followed by pointwise 1x1 ``conv_k``), each conv + BatchNorm + ReLU named
``<layer>_conv2d/_batchnorm/_relu`` as in the released MobileNet SSD models. SSD taps
``conv_12_relu`` (stride 16) and ``conv_14_relu`` (stride 32)."""
import mxnet as mx

from .common import conv_bn_relu

STEM_FILTERS = 32
# (layer, pointwise filters, depthwise stride) of the depthwise-separable layers.
SEPARABLE_LAYERS = (
    ("conv_2", 64, 1),
    ("conv_3", 128, 2),
    ("conv_4", 128, 1),
    ("conv_5", 256, 2),
    ("conv_6", 256, 1),
    ("conv_7", 512, 2),
    ("conv_8", 512, 1),
    ("conv_9", 512, 1),
    ("conv_10", 512, 1),
    ("conv_11", 512, 1),
    ("conv_12", 512, 1),
    ("conv_13", 1024, 2),
    ("conv_14", 1024, 1),
)
WIDTH_MULTIPLIERS = (0.25, 0.5, 0.75, 1.0)


def scaled(filters, multiplier):
    return max(1, int(filters * multiplier))


def separable_layer(data, name, in_filters, out_filters, stride):
    depthwise = conv_bn_relu(data, name + "_dw", in_filters, kernel=3, stride=stride, pad=1,
                             num_group=in_filters)
    return conv_bn_relu(depthwise, name, out_filters)


def get_symbol(multiplier=1.0):
    """Feature extractor up to ``conv_14_relu``; ``multiplier`` thins every layer."""
    if multiplier not in WIDTH_MULTIPLIERS:
        raise ValueError("MobileNet width multiplier must be one of %s, got %r"
                         % (WIDTH_MULTIPLIERS, multiplier))
    channels = scaled(STEM_FILTERS, multiplier)
    body = conv_bn_relu(mx.sym.Variable("data"), "conv_1", channels, kernel=3, stride=2, pad=1)
    for name, filters, stride in SEPARABLE_LAYERS:
        out_channels = scaled(filters, multiplier)
        body = separable_layer(body, name, channels, out_channels, stride)
        channels = out_channels
    return body
