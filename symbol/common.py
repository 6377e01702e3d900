"""Generic SSD pieces shared by every network: conv blocks, the extra feature layers that
are stacked on a backbone, the multibox heads and the Caffe-SSD anchor-size formula.

Every node gets an explicit name so that building the same network twice in one process
gives identical graphs (auto-generated names depend on a process-wide counter)."""
import math

import mxnet as mx

# Heads and extra layers learn their biases twice as fast as their weights (as in Caffe SSD).
BIAS_LR_MULT = "2.0"
# The learnable L2-normalisation scale is barely regularised: its init value (20) is far from 0.
SCALE_WD_MULT = "0.1"
# oneDNN's AVX2 direct convolutions work on blocks of 8 output channels; for other counts it
# falls back to a GEMM convolution 2-5x slower (a 64 -> 20 channel class head at 24x24 took 30
# ms of a 180 ms mobilenet_0.25 training step).  Heads therefore run padded with zero filters.
CHANNEL_BLOCK = 8


def as_pair(value):
    """An int (square) or a 2-sequence -> (height, width) tuple of ints."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError("expected an int or a (height, width) pair, got %r" % (value,))
        return int(value[0]), int(value[1])
    return int(value), int(value)


def bias_variable(name, shape=None):
    """Zero-initialised bias with the doubled learning rate of SSD's added layers."""
    return mx.sym.Variable(name, shape=shape, init=mx.init.Constant(0.0),
                           attr={"__lr_mult__": BIAS_LR_MULT})


def conv_relu(data, conv_name, relu_name, num_filter, kernel=1, stride=1, pad=0, dilate=1,
              fast_bias=False):
    """Convolution (params ``<conv_name>_weight/_bias``) followed by a ReLU."""
    bias = bias_variable(conv_name + "_bias") if fast_bias else None
    conv = mx.sym.Convolution(data=data, bias=bias, num_filter=num_filter,
                              kernel=as_pair(kernel), stride=as_pair(stride), pad=as_pair(pad),
                              dilate=as_pair(dilate), name=conv_name)
    return mx.sym.Activation(data=conv, act_type="relu", name=relu_name)


def conv_bn_relu(data, name, num_filter, kernel=1, stride=1, pad=0, num_group=1):
    """Bias-free convolution + BatchNorm + ReLU named ``<name>_conv2d/_batchnorm/_relu``
    (the MXNet model-zoo convention of the released Inception-v3 and MobileNet models)."""
    conv = mx.sym.Convolution(data=data, num_filter=num_filter, kernel=as_pair(kernel),
                              stride=as_pair(stride), pad=as_pair(pad), num_group=num_group,
                              no_bias=True, name=name + "_conv2d")
    norm = mx.sym.BatchNorm(data=conv, fix_gamma=True, name=name + "_batchnorm")
    return mx.sym.Activation(data=norm, act_type="relu", name=name + "_relu")


def feature_shape(feature, data_shape):
    """(channels, height, width) of a feature symbol for a (height, width) input image."""
    height, width = data_shape
    _, out_shapes, _ = feature.infer_shape(data=(1, 3, height, width))
    if out_shapes is None:
        raise ValueError("cannot infer the shape of %r" % feature.name)
    return tuple(out_shapes[0][1:])


# ---------------------------------------------------------------------------------------------
# Extra feature layers
# ---------------------------------------------------------------------------------------------
def ssd_extra_names(layer_index, extra_index):
    """Names of extra block ``layer_index`` (position in from_layers) in the current models:
    ``multi_feat_<k>_conv_1x1_conv`` ... ``multi_feat_<k>_conv_3x3_relu``."""
    prefix = "multi_feat_%d_conv_" % layer_index
    return ((prefix + "1x1_conv", prefix + "1x1_relu"),
            (prefix + "3x3_conv", prefix + "3x3_relu"))


def legacy_extra_names(layer_index, extra_index):
    """Names used by the first released VGG models: ``conv8_1/relu8_1``, ``conv8_2/relu8_2``,
    ``conv9_1`` ... counted from 8 over the extra blocks only."""
    block = 8 + extra_index
    return (("conv%d_1" % block, "relu%d_1" % block),
            ("conv%d_2" % block, "relu%d_2" % block))


EXTRA_NAMING = {"ssd": ssd_extra_names, "legacy": legacy_extra_names}


def conv_output_size(size, kernel, stride, pad):
    return (size + 2 * pad - kernel) // stride + 1


def fitting_pad(size, kernel, stride, pad):
    """``pad``, raised just enough that the layer still yields at least one pixel: lets every
    data shape work, where a preset's unpadded 3x3 layer would otherwise get a 2x2 input."""
    while conv_output_size(size, kernel, stride, pad) < 1:
        pad += 1
    return pad


def extra_block(data, names, in_size, num_filter, reduce_filter, kernel, stride, pad):
    """1x1 channel reduction + ReLU, then ``kernel`` conv (the feature) + ReLU."""
    (reduce_conv, reduce_relu), (conv_name, relu_name) = names
    reduced = conv_relu(data, reduce_conv, reduce_relu, reduce_filter, fast_bias=True)
    pads = tuple(fitting_pad(size, kernel, stride, pad) for size in in_size)
    return conv_relu(reduced, conv_name, relu_name, num_filter, kernel=kernel, stride=stride,
                     pad=pads, fast_bias=True)


def multi_layer_feature(body, data_shape, from_layers, num_filters, strides, pads, kernels=None,
                        min_filter=128, naming="ssd"):
    """Feature maps for the multibox heads: a named backbone internal for every non-empty
    entry of ``from_layers``, an extra block on top of the previous feature for every ``''``.

    Returns a list of ``(name, symbol)``; the names prefix the heads' parameters.
    """
    if naming not in EXTRA_NAMING:
        raise ValueError("unknown extra-layer naming %r; known: %s"
                         % (naming, ", ".join(sorted(EXTRA_NAMING))))
    lengths = {len(from_layers), len(num_filters), len(strides), len(pads)}
    if kernels is None:
        kernels = [3] * len(from_layers)
    lengths.add(len(kernels))
    if len(lengths) != 1:
        raise ValueError("from_layers, num_filters, strides, pads and kernels must have the "
                         "same length, got %s" % sorted(lengths))
    if not from_layers or not from_layers[0]:
        raise ValueError("the first entry of from_layers must name a backbone layer")
    name_for = EXTRA_NAMING[naming]
    internals = body.get_internals()
    available = set(internals.list_outputs())
    features = []
    num_extras = 0
    for k, layer in enumerate(from_layers):
        if layer:
            if layer + "_output" not in available:
                raise ValueError("backbone %r has no layer %r" % (body.name, layer))
            features.append((layer, internals[layer + "_output"]))
            continue
        previous = features[-1][1]
        in_size = feature_shape(previous, data_shape)[1:]
        reduce_filter = max(min_filter, num_filters[k] // 2)
        feature = extra_block(previous, name_for(k, num_extras), in_size, num_filters[k],
                              reduce_filter, kernels[k], strides[k], pads[k])
        features.append((feature.name, feature))
        num_extras += 1
    return features


# ---------------------------------------------------------------------------------------------
# Multibox heads
# ---------------------------------------------------------------------------------------------
def scaled_l2_normalization(data, name, channels, init_scale):
    """Channel-wise L2 normalisation with a learnable per-channel scale ``<name>_scale``
    (1, C, 1, 1): conv4_3 activations are much larger than the deeper ones (ParseNet)."""
    norm = mx.sym.L2Normalization(data=data, mode="channel", name=name + "_norm")
    scale = mx.sym.Variable(name + "_scale", shape=(1, channels, 1, 1),
                            init=mx.init.Constant(init_scale),
                            attr={"__wd_mult__": SCALE_WD_MULT})
    return mx.sym.broadcast_mul(lhs=scale, rhs=norm, name=name + "_scale_mul")


def zero_padded_filters(name, num_filter, in_channels, kernel):
    """Weight and bias of conv ``name`` (parameters of their true shapes) padded with zero
    filters to a multiple of ``CHANNEL_BLOCK``; returns (weight, bias, padded count)."""
    weight = mx.sym.Variable(name + "_weight", shape=(num_filter, in_channels) + kernel)
    bias = bias_variable(name + "_bias", shape=(num_filter,))
    extra = -num_filter % CHANNEL_BLOCK
    if extra == 0:
        return weight, bias, num_filter
    zeros_w = mx.sym.zeros(shape=(extra, in_channels) + kernel, name=name + "_weight_pad")
    zeros_b = mx.sym.zeros(shape=(extra,), name=name + "_bias_pad")
    return (mx.sym.Concat(weight, zeros_w, dim=0, name=name + "_weight_padded"),
            mx.sym.Concat(bias, zeros_b, dim=0, name=name + "_bias_padded"),
            num_filter + extra)


def prediction_head(data, name, num_filter, in_channels):
    """3x3 conv predicting ``num_filter`` values per position, flattened position-major
    (N, H*W*num_filter) so that anchors of one position stay together."""
    conv_name = name + "_conv"
    weight, bias, padded = zero_padded_filters(conv_name, num_filter, in_channels, (3, 3))
    conv = mx.sym.Convolution(data=data, weight=weight, bias=bias, num_filter=padded,
                              kernel=(3, 3), pad=(1, 1), name=conv_name)
    if padded != num_filter:
        conv = mx.sym.slice_axis(conv, axis=1, begin=0, end=num_filter, name=conv_name + "_crop")
    nhwc = mx.sym.transpose(conv, axes=(0, 2, 3, 1), name=name + "_transpose")
    return mx.sym.Flatten(data=nhwc, name=name + "_flatten")


def anchors_per_position(sizes, ratios):
    """MultiBoxPrior's count: every size at ratio 1, then every other ratio at sizes[0]."""
    return len(sizes) - 1 + len(ratios)


def multibox_layer(features, data_shape, num_classes, sizes, ratios, normalizations, steps,
                   clip=False):
    """loc/cls heads and anchors over all feature maps.

    Returns ``(loc_preds (N, 4A), cls_preds (N, num_classes+1, A), anchors (1, A, 4))``.
    ``steps`` are anchor spacings as fractions of the image, one per layer; empty = automatic.
    """
    num_layers = len(features)
    for field, values in (("sizes", sizes), ("ratios", ratios),
                          ("normalizations", normalizations)):
        if len(values) != num_layers:
            raise ValueError("%s has %d entries for %d feature layers"
                             % (field, len(values), num_layers))
    if steps and len(steps) != num_layers:
        raise ValueError("steps has %d entries for %d feature layers" % (len(steps), num_layers))
    num_outputs = num_classes + 1  # class 0 is the background
    loc_layers, cls_layers, anchor_layers = [], [], []
    for k, (name, feature) in enumerate(features):
        channels = feature_shape(feature, data_shape)[0]
        if normalizations[k] > 0:
            feature = scaled_l2_normalization(feature, name, channels, normalizations[k])
        num_anchors = anchors_per_position(sizes[k], ratios[k])
        cls_layers.append(prediction_head(feature, name + "_cls_pred", num_anchors * num_outputs,
                                          channels))
        loc_layers.append(prediction_head(feature, name + "_loc_pred", num_anchors * 4, channels))
        step = (steps[k], steps[k]) if steps else (-1.0, -1.0)
        anchors = mx.sym.MultiBoxPrior(feature, sizes=tuple(sizes[k]), ratios=tuple(ratios[k]),
                                       clip=clip, steps=step, name=name + "_anchors")
        anchor_layers.append(mx.sym.Flatten(data=anchors, name=name + "_anchors_flatten"))
    loc_preds = mx.sym.Concat(*loc_layers, dim=1, name="multibox_loc_pred")
    cls_preds = mx.sym.Concat(*cls_layers, dim=1, name="multibox_cls_pred_concat")
    cls_preds = mx.sym.Reshape(cls_preds, shape=(0, -1, num_outputs),
                               name="multibox_cls_pred_reshape")
    cls_preds = mx.sym.transpose(cls_preds, axes=(0, 2, 1), name="multibox_cls_pred")
    anchors = mx.sym.Concat(*anchor_layers, dim=1, name="multibox_anchors_concat")
    anchors = mx.sym.Reshape(anchors, shape=(0, -1, 4), name="multibox_anchors")
    return loc_preds, cls_preds, anchors


# ---------------------------------------------------------------------------------------------
# Anchor sizes
# ---------------------------------------------------------------------------------------------
def caffe_ssd_sizes(min_scale, max_scale, num_layers):
    """Anchor sizes ``[s_k, sqrt(s_k * s_k+1)]`` per layer from Caffe SSD's scale formula:
    scales spread linearly (in whole percent) from min_scale to max_scale over layers 2..n,
    and the first layer gets half of min_scale."""
    if num_layers < 3:
        raise ValueError("the Caffe SSD scale formula needs at least 3 layers, got %d"
                         % num_layers)
    if not 0 < min_scale < max_scale:
        raise ValueError("need 0 < min_scale < max_scale, got (%s, %s)" % (min_scale, max_scale))
    min_percent = int(round(100 * min_scale))
    max_percent = int(round(100 * max_scale))
    step = (max_percent - min_percent) // (num_layers - 2)
    if step < 1:
        raise ValueError("scales (%s, %s) are too close for %d layers"
                         % (min_scale, max_scale, num_layers))
    pairs = [(int(100 * min_scale / 2) / 100.0, min_percent / 100.0)]
    pairs += [(p / 100.0, (p + step) / 100.0)
              for p in range(min_percent, max_percent + 1, step)]
    return [[low, math.sqrt(low * high)] for low, high in pairs[:num_layers]]
