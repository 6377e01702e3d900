"""Per-layer translation from Caffe to MXNet symbols and parameters.

Each handler takes ``(ctx, layer, bottoms)`` -- the converter context, a
:class:`~.caffe_io.LayerView` and the :class:`Blob` of each bottom -- and returns one
:class:`Blob` per top.  ``ctx`` (see ``converter.Converter``) supplies weights, parameter
storage, shape inference and error reporting.  ``LAYER_HANDLERS`` is the table of
supported layer types.
"""
import math
from dataclasses import dataclass

import mxnet as mx
import numpy as np


# Caffe enum values used below (PoolingParameter.PoolMethod, EltwiseParameter.EltwiseOp,
# LRNParameter.NormRegion, PriorBoxParameter.CodeType).
POOL_TYPES = {0: "max", 1: "avg"}
ELTWISE_PROD, ELTWISE_SUM, ELTWISE_MAX = 0, 1, 2
LRN_ACROSS_CHANNELS = 0
CODE_TYPE_CENTER_SIZE = 2
# Caffe's defaults where a field's absence means something other than its proto default.
DEFAULT_PRIOR_VARIANCE = 0.1
SUPPORTED_VARIANCE_COUNTS = (1, 4)

# Layers that keep the input image's channel order and pixel scale, so the BGR->RGB swap
# (and the input scale) can still be folded into a convolution further down.
IMAGE_PASSTHROUGH_TYPES = ("Split", "Dropout", "Pooling", "ReLU", "Crop")
# Per-channel layers whose parameters are reordered along with the image channels.
IMAGE_CHANNEL_PARAM_TYPES = ("BatchNorm", "Scale")
# Layers whose weights absorb the swap and the scale (their output is no longer the image).
IMAGE_CONSUMER_TYPES = ("Convolution", "Deconvolution")
# Layers that read only the image's shape.
IMAGE_SHAPE_READER_TYPES = ("PriorBox",)


@dataclass
class Blob:
    """A Caffe blob during conversion.

    kind "prior" marks PriorBox output, held as MXNet's (1, A, 4) anchors instead of Caffe's
    (1, 2, 4A) boxes+variances; ``variances`` then carries the second half.  ``image`` marks
    blobs that still carry the input image's channels, whose order (RGB) and scale differ
    from what the Caffe weights expect until a convolution absorbs the difference.
    """
    sym: object
    shape: tuple
    kind: str = "tensor"
    variances: tuple = None
    image: bool = False


def mx_name(caffe_name):
    """Caffe layer/blob names may hold '/', '-', '.'; MXNet parameter files want plain names."""
    return "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in caffe_name)


def format_float(value):
    """Shortest text that parses back to the same float32 (MXNet reads attributes as text)."""
    return np.format_float_positional(np.float32(value), unique=True, trim="-")


def format_tuple(values):
    return "(" + ",".join(format_float(v) for v in values) + ")"


# ---------------------------------------------------------------------------- helpers

def _spatial(ctx, layer, values, h_w, what, default=None):
    """Caffe's per-axis settings: explicit (h, w) if given, else 1 or 2 repeated values."""
    if h_w is not None:
        return h_w
    values = [int(v) for v in values]
    if not values:
        return None if default is None else (default, default)
    if len(values) > 2:
        ctx.fail(layer, "only 2-D layers are supported, %s has %d values" % (what, len(values)))
    return (values[0], values[-1])


def _conv_geometry(ctx, layer, p):
    has = p.HasField
    kernel = _spatial(ctx, layer, p.kernel_size,
                      (p.kernel_h, p.kernel_w) if has("kernel_h") else None, "kernel_size")
    if kernel is None:
        ctx.fail(layer, "kernel_size (or kernel_h/kernel_w) is required")
    stride = _spatial(ctx, layer, p.stride,
                      (p.stride_h, p.stride_w) if has("stride_h") else None, "stride", 1)
    pad = _spatial(ctx, layer, p.pad,
                   (p.pad_h, p.pad_w) if has("pad_h") or has("pad_w") else None, "pad", 0)
    dilate = _spatial(ctx, layer, p.dilation, None, "dilation", 1)
    if p.axis != 1:
        ctx.fail(layer, "convolution over axis %d is not supported (only axis 1)" % p.axis)
    return dict(kernel=kernel, stride=stride, pad=pad, dilate=dilate)


def _single_bottom(ctx, layer, bottoms):
    if len(bottoms) != 1:
        ctx.fail(layer, "expects 1 bottom, got %d" % len(bottoms))
    return bottoms[0]


def _tensor(sym, ctx, image=False):
    return Blob(sym, ctx.shape_of(sym), image=image)


def _normalize_axis(ctx, layer, axis, ndim):
    if not -ndim <= axis < ndim:
        ctx.fail(layer, "axis %d out of range for a %d-D blob" % (axis, ndim))
    return axis % ndim


def _channel_param(ctx, layer, name, values, ndim):
    """A per-channel parameter (C,) stored as an MXNet variable broadcastable over NC..."""
    shape = (1, len(values)) + (1,) * (ndim - 2)
    ctx.add_arg(name, values.reshape(shape))
    return mx.sym.Variable(name, shape=shape)


# ---------------------------------------------------------------------------- core layers

def convert_convolution(ctx, layer, bottoms):
    bottom = _single_bottom(ctx, layer, bottoms)
    p = layer.param.convolution_param
    geometry = _conv_geometry(ctx, layer, p)
    in_channels, group = bottom.shape[1], p.group
    if group < 1 or in_channels % group or p.num_output % group:
        ctx.fail(layer, "group %d does not divide %d input / %d output channels"
                 % (group, in_channels, p.num_output))
    deconv = layer.type == "Deconvolution"
    op = mx.sym.Deconvolution if deconv else mx.sym.Convolution
    name = mx_name(layer.name)
    sym = op(bottom.sym, num_filter=p.num_output, num_group=group, no_bias=not p.bias_term,
             name=name, **geometry)
    if deconv:
        weight_shape = (in_channels, p.num_output // group) + geometry["kernel"]
    else:
        weight_shape = (p.num_output, in_channels // group) + geometry["kernel"]
    blobs = ctx.layer_blobs(layer, 2 if p.bias_term else 1)
    if blobs is not None:
        weight = ctx.check_blob(layer, 0, blobs[0], weight_shape)
        if bottom.image:
            weight = ctx.adapt_to_rgb_input(layer, weight, channel_axis=0 if deconv else 1,
                                            in_channels=in_channels, group=group)
        ctx.add_arg(name + "_weight", weight)
        if p.bias_term:
            ctx.add_arg(name + "_bias", ctx.check_blob(layer, 1, blobs[1], (p.num_output,)))
    return [_tensor(sym, ctx)]


def _pooled_size_caffe(size, kernel, pad, stride, padded):
    out = -(-(size + 2 * pad - kernel) // stride) + 1
    # Caffe drops a last window that would start inside the padding, on both axes as soon
    # as either axis is padded (pooling_layer.cpp; OpenCV checks each axis on its own).
    if padded and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def _pooled_size_mxnet(size, kernel, pad, stride, convention):
    span = size + 2 * pad - kernel
    return (-(-span // stride) if convention == "full" else span // stride) + 1


def _pooling_convention(ctx, layer, spatial, kernel, pad, stride):
    """MXNet convention ('full' = ceil, 'valid' = floor) that yields Caffe's output size."""
    wanted = [_pooled_size_caffe(*args, padded=any(pad))
              for args in zip(spatial, kernel, pad, stride)]
    for convention in ("full", "valid"):
        got = [_pooled_size_mxnet(*args, convention)
               for args in zip(spatial, kernel, pad, stride)]
        if got == wanted:
            return convention
    ctx.fail(layer, "Caffe's output size %s for input %s cannot be reproduced by MXNet "
             "pooling (kernel %s, pad %s, stride %s)" % (tuple(wanted), tuple(spatial),
                                                         kernel, pad, stride))


def convert_pooling(ctx, layer, bottoms):
    bottom = _single_bottom(ctx, layer, bottoms)
    p = layer.param.pooling_param
    if p.pool not in POOL_TYPES:
        ctx.fail(layer, "STOCHASTIC pooling is not supported")
    name = mx_name(layer.name)
    if p.global_pooling:
        sym = mx.sym.Pooling(bottom.sym, kernel=(1, 1), global_pool=True,
                             pool_type=POOL_TYPES[p.pool], name=name)
        return [_tensor(sym, ctx)]
    has = p.HasField
    kernel = (p.kernel_h, p.kernel_w) if has("kernel_h") else (p.kernel_size,) * 2
    if not all(kernel):
        ctx.fail(layer, "kernel_size (or kernel_h/kernel_w) is required")
    pad = (p.pad_h, p.pad_w) if has("pad_h") or has("pad_w") else (p.pad,) * 2
    stride = (p.stride_h, p.stride_w) if has("stride_h") else (p.stride,) * 2
    if not all(stride):
        ctx.fail(layer, "stride must be >= 1, got %s" % (stride,))
    convention = _pooling_convention(ctx, layer, bottom.shape[2:], kernel, pad, stride)
    sym = mx.sym.Pooling(bottom.sym, kernel=kernel, stride=stride, pad=pad,
                         pool_type=POOL_TYPES[p.pool], pooling_convention=convention,
                         count_include_pad=True, name=name)
    return [_tensor(sym, ctx, image=bottom.image)]


def convert_inner_product(ctx, layer, bottoms):
    bottom = _single_bottom(ctx, layer, bottoms)
    p = layer.param.inner_product_param
    if _normalize_axis(ctx, layer, p.axis, len(bottom.shape)) != 1:
        ctx.fail(layer, "only axis 1 is supported, got %d" % p.axis)
    name = mx_name(layer.name)
    sym = mx.sym.FullyConnected(bottom.sym, num_hidden=p.num_output, no_bias=not p.bias_term,
                                flatten=True, name=name)
    in_features = int(np.prod(bottom.shape[1:]))
    blobs = ctx.layer_blobs(layer, 2 if p.bias_term else 1)
    if blobs is not None:
        if p.transpose:
            weight = ctx.check_blob(layer, 0, blobs[0], (in_features, p.num_output)).T
        else:
            weight = ctx.check_blob(layer, 0, blobs[0], (p.num_output, in_features))
        ctx.add_arg(name + "_weight", np.ascontiguousarray(weight))
        if p.bias_term:
            ctx.add_arg(name + "_bias", ctx.check_blob(layer, 1, blobs[1], (p.num_output,)))
    return [_tensor(sym, ctx)]


def convert_relu(ctx, layer, bottoms):
    bottom = _single_bottom(ctx, layer, bottoms)
    slope = layer.param.relu_param.negative_slope
    name = mx_name(layer.name)
    if slope == 0:
        sym = mx.sym.Activation(bottom.sym, act_type="relu", name=name)
    else:
        sym = mx.sym.LeakyReLU(bottom.sym, act_type="leaky", slope=slope, name=name)
    return [_tensor(sym, ctx, image=bottom.image)]


def convert_prelu(ctx, layer, bottoms):
    bottom = _single_bottom(ctx, layer, bottoms)
    name = mx_name(layer.name)
    count = 1 if layer.param.prelu_param.channel_shared else bottom.shape[1]
    gamma = mx.sym.Variable(name + "_gamma", shape=(count,))
    sym = mx.sym.LeakyReLU(bottom.sym, gamma=gamma, act_type="prelu", name=name)
    blobs = ctx.layer_blobs(layer, 1)
    if blobs is not None:
        ctx.add_arg(name + "_gamma", ctx.check_blob(layer, 0, blobs[0], (count,)))
    return [_tensor(sym, ctx)]


def _activation(act_type):
    def convert(ctx, layer, bottoms):
        bottom = _single_bottom(ctx, layer, bottoms)
        sym = mx.sym.Activation(bottom.sym, act_type=act_type, name=mx_name(layer.name))
        return [_tensor(sym, ctx)]
    return convert


def convert_lrn(ctx, layer, bottoms):
    bottom = _single_bottom(ctx, layer, bottoms)
    p = layer.param.lrn_param
    if p.norm_region != LRN_ACROSS_CHANNELS:
        ctx.fail(layer, "only ACROSS_CHANNELS normalisation is supported")
    sym = mx.sym.LRN(bottom.sym, nsize=p.local_size, alpha=p.alpha, beta=p.beta, knorm=p.k,
                     name=mx_name(layer.name))
    return [_tensor(sym, ctx)]


def convert_identity(ctx, layer, bottoms):
    """Split and (test-time) Dropout: every top is the bottom itself."""
    bottom = _single_bottom(ctx, layer, bottoms)
    return [bottom] * len(layer.tops)


def convert_softmax(ctx, layer, bottoms):
    bottom = _single_bottom(ctx, layer, bottoms)
    axis = _normalize_axis(ctx, layer, layer.param.softmax_param.axis, len(bottom.shape))
    sym = mx.sym.softmax(bottom.sym, axis=axis, name=mx_name(layer.name))
    return [_tensor(sym, ctx)]


def convert_flatten(ctx, layer, bottoms):
    bottom = _single_bottom(ctx, layer, bottoms)
    p = layer.param.flatten_param
    ndim = len(bottom.shape)
    axis = _normalize_axis(ctx, layer, p.axis, ndim)
    end_axis = _normalize_axis(ctx, layer, p.end_axis, ndim)
    name = mx_name(layer.name)
    if axis == 1 and end_axis == ndim - 1:
        sym = mx.sym.flatten(bottom.sym, name=name)
    else:
        # Leading axes copied (0 keeps the batch size free), merged axes inferred (-1),
        # trailing axes explicit.
        target = (0,) * axis + (-1,) + tuple(bottom.shape[end_axis + 1:])
        sym = mx.sym.reshape(bottom.sym, shape=target, name=name)
    return [_tensor(sym, ctx)]


def convert_reshape(ctx, layer, bottoms):
    bottom = _single_bottom(ctx, layer, bottoms)
    p = layer.param.reshape_param
    ndim = len(bottom.shape)
    spec = tuple(int(d) for d in p.shape.dim)
    axis = p.axis if p.axis >= 0 else p.axis + ndim + 1
    end = ndim if p.num_axes == -1 else axis + p.num_axes
    if not 0 <= axis <= end <= ndim:
        ctx.fail(layer, "axis %d / num_axes %d out of range for a %d-D blob"
                 % (p.axis, p.num_axes, ndim))
    # MXNet's 0 (copy the input dimension at the same index) and -1 (infer) mean what
    # Caffe's do; only the dimensions outside [axis, end) need spelling out.
    target = (0,) * axis + spec + tuple(bottom.shape[end:])
    sym = mx.sym.reshape(bottom.sym, shape=target, name=mx_name(layer.name))
    try:
        return [_tensor(sym, ctx)]
    except mx.base.MXNetError:
        ctx.fail(layer, "cannot reshape %s to %s" % (bottom.shape, spec))


def convert_permute(ctx, layer, bottoms):
    bottom = _single_bottom(ctx, layer, bottoms)
    ndim = len(bottom.shape)
    order = [int(o) for o in layer.param.permute_param.order]
    order += [axis for axis in range(ndim) if axis not in order]
    if sorted(order) != list(range(ndim)):
        ctx.fail(layer, "order %s is not a permutation of %d axes"
                 % (list(layer.param.permute_param.order), ndim))
    sym = mx.sym.transpose(bottom.sym, axes=tuple(order), name=mx_name(layer.name))
    return [_tensor(sym, ctx)]


def convert_concat(ctx, layer, bottoms):
    p = layer.param.concat_param
    axis = p.axis if p.HasField("axis") or not p.HasField("concat_dim") else p.concat_dim
    name = mx_name(layer.name)
    kinds = {b.kind for b in bottoms}
    if kinds == {"prior"}:
        return [_concat_priors(ctx, layer, bottoms, axis)]
    if "prior" in kinds:
        ctx.fail(layer, "mixes PriorBox outputs with other blobs")
    axis = _normalize_axis(ctx, layer, axis, len(bottoms[0].shape))
    sym = mx.sym.concat(*[b.sym for b in bottoms], dim=axis, name=name)
    try:
        return [_tensor(sym, ctx)]
    except mx.base.MXNetError:
        ctx.fail(layer, "bottom shapes %s do not concatenate along axis %d"
                 % ([b.shape for b in bottoms], axis))


def _concat_priors(ctx, layer, bottoms, axis):
    if axis != 2:
        ctx.fail(layer, "PriorBox outputs can only be concatenated along axis 2, got %d" % axis)
    variances = {b.variances for b in bottoms}
    if len(variances) != 1:
        ctx.fail(layer, "concatenates priors with different variances %s; MultiBoxDetection "
                 "takes one set" % sorted(variances))
    sym = mx.sym.concat(*[b.sym for b in bottoms], dim=1, name=mx_name(layer.name))
    return Blob(sym, ctx.shape_of(sym), kind="prior", variances=variances.pop())


def convert_eltwise(ctx, layer, bottoms):
    p = layer.param.eltwise_param
    shapes = {b.shape for b in bottoms}
    if len(shapes) != 1:
        ctx.fail(layer, "bottom shapes differ: %s" % [b.shape for b in bottoms])
    name = mx_name(layer.name)
    syms = [b.sym for b in bottoms]
    if p.operation == ELTWISE_SUM:
        coeffs = list(p.coeff) or [1.0] * len(syms)
        if len(coeffs) != len(syms):
            ctx.fail(layer, "has %d coeff values for %d bottoms" % (len(coeffs), len(syms)))
        syms = [s if c == 1 else mx.sym.broadcast_mul(s, mx.sym.full((1,), float(c)),
                                                      name="%s_coeff%d" % (name, i))
                for i, (s, c) in enumerate(zip(syms, coeffs))]
        sym = mx.sym.add_n(*syms, name=name)
    else:
        combine = mx.sym.broadcast_mul if p.operation == ELTWISE_PROD else mx.sym.broadcast_maximum
        sym = syms[0]
        for i, other in enumerate(syms[1:], start=1):
            sym = combine(sym, other, name=name if i == len(syms) - 1 else "%s_%d" % (name, i))
    return [_tensor(sym, ctx)]


def convert_crop(ctx, layer, bottoms):
    if len(bottoms) != 2:
        ctx.fail(layer, "expects 2 bottoms (blob, reference), got %d" % len(bottoms))
    data, reference = bottoms
    p = layer.param.crop_param
    ndim = len(data.shape)
    axis = _normalize_axis(ctx, layer, p.axis, ndim)
    offsets = [int(o) for o in p.offset]
    cropped = ndim - axis
    if len(offsets) in (0, 1):
        offsets = (offsets or [0]) * cropped
    elif len(offsets) != cropped:
        ctx.fail(layer, "has %d offsets for %d cropped axes" % (len(offsets), cropped))
    begin = [None] * axis + offsets
    end = [None] * axis + [o + reference.shape[axis + i] for i, o in enumerate(offsets)]
    for i, stop in enumerate(end[axis:]):
        if stop > data.shape[axis + i]:
            ctx.fail(layer, "crop of %s to %s at offsets %s leaves the blob"
                     % (data.shape, reference.shape, offsets))
    sym = mx.sym.slice(data.sym, begin=tuple(begin), end=tuple(end), name=mx_name(layer.name))
    return [_tensor(sym, ctx, image=data.image)]


# ---------------------------------------------------------------------------- BatchNorm/Scale

def _batch_norm_statistics(ctx, layer, blobs, channels):
    mean = ctx.check_blob(layer, 0, blobs[0], (channels,))
    var = ctx.check_blob(layer, 1, blobs[1], (channels,))
    factor = float(ctx.check_blob(layer, 2, blobs[2], (1,))[0])
    # Caffe keeps running sums; blob 2 is the normaliser (0 means "no statistics yet").
    scale = 0.0 if factor == 0 else 1.0 / factor
    return mean * scale, var * scale


def _scale_arrays(ctx, scale_layer, channels):
    """(gamma, beta) of a Scale layer; beta is zero without bias_term."""
    blobs = ctx.layer_blobs(scale_layer, 2 if scale_layer.param.scale_param.bias_term else 1)
    gamma = ctx.check_blob(scale_layer, 0, blobs[0], (channels,))
    beta = (ctx.check_blob(scale_layer, 1, blobs[1], (channels,)) if len(blobs) > 1
            else np.zeros(channels, np.float32))
    return gamma, beta


def convert_batch_norm(ctx, layer, bottoms):
    """Caffe BatchNorm has no affine part; a Scale layer right after it (the usual ResNet
    pairing) is folded in as MXNet's gamma/beta, otherwise gamma=1, beta=0."""
    bottom = _single_bottom(ctx, layer, bottoms)
    p = layer.param.batch_norm_param
    if p.HasField("use_global_stats") and not p.use_global_stats:
        ctx.fail(layer, "use_global_stats: false (batch statistics at test time) is not "
                 "supported")
    channels = bottom.shape[1]
    scale_layer = ctx.fused_scale(layer)
    name = mx_name(layer.name)
    sym = mx.sym.BatchNorm(bottom.sym, eps=p.eps, fix_gamma=scale_layer is None,
                           use_global_stats=True, name=name)
    blobs = ctx.layer_blobs(layer, 3)
    if blobs is not None:
        mean, var = _batch_norm_statistics(ctx, layer, blobs, channels)
        if scale_layer is None:
            gamma, beta = np.ones(channels, np.float32), np.zeros(channels, np.float32)
        else:
            gamma, beta = _scale_arrays(ctx, scale_layer, channels)
        if bottom.image:
            mean, var, gamma, beta = ctx.adapt_channel_params(layer, mean, var, gamma, beta)
        ctx.add_arg(name + "_gamma", gamma)
        ctx.add_arg(name + "_beta", beta)
        ctx.add_aux(name + "_moving_mean", mean)
        ctx.add_aux(name + "_moving_var", var)
    return [_tensor(sym, ctx, image=bottom.image)]


def convert_scale(ctx, layer, bottoms):
    bottom = _single_bottom(ctx, layer, bottoms)
    if ctx.is_fused_scale(layer):
        return [bottom]
    p = layer.param.scale_param
    ndim = len(bottom.shape)
    if _normalize_axis(ctx, layer, p.axis, ndim) != 1 or p.num_axes != 1:
        ctx.fail(layer, "only per-channel scaling (axis 1, num_axes 1) is supported")
    name = mx_name(layer.name)
    channels = bottom.shape[1]
    blobs = ctx.layer_blobs(layer, 2 if p.bias_term else 1)
    gamma = beta = None
    if blobs is not None:
        gamma, beta = _scale_arrays(ctx, layer, channels)
        if bottom.image:
            gamma, beta = ctx.adapt_channel_params(layer, gamma, beta)
    else:
        gamma, beta = np.ones(channels, np.float32), np.zeros(channels, np.float32)
    sym = mx.sym.broadcast_mul(bottom.sym, _channel_param(ctx, layer, name + "_gamma", gamma,
                                                          ndim), name=name + "_mul")
    if p.bias_term:
        sym = mx.sym.broadcast_add(sym, _channel_param(ctx, layer, name + "_beta", beta, ndim),
                                   name=name)
    return [_tensor(sym, ctx, image=bottom.image)]


# ---------------------------------------------------------------------------- SSD layers

def convert_normalize(ctx, layer, bottoms):
    """SSD's Normalize -> L2Normalization followed by a learned scale ``<name>_scale``."""
    bottom = _single_bottom(ctx, layer, bottoms)
    p = layer.param.norm_param
    name = mx_name(layer.name)
    channels = bottom.shape[1]
    count = 1 if p.channel_shared else channels
    normed = mx.sym.L2Normalization(bottom.sym, mode="instance" if p.across_spatial else "channel",
                                    eps=p.eps, name=name + "_norm")
    shape = (1, count) + (1,) * (len(bottom.shape) - 2)
    sym = mx.sym.broadcast_mul(normed, mx.sym.Variable(name + "_scale", shape=shape), name=name)
    blobs = ctx.layer_blobs(layer, 1)
    if blobs is not None:
        ctx.add_arg(name + "_scale", ctx.check_blob(layer, 0, blobs[0], (count,)).reshape(shape))
    return [_tensor(sym, ctx)]


def _check_prior_values(ctx, layer, p):
    """Caffe's own PriorBox checks: sizes, ratios, steps and variances positive (and finite),
    so that a bad value is refused by name rather than dividing by zero."""
    positive = {"min_size": p.min_size, "max_size": p.max_size,
                "aspect_ratio": p.aspect_ratio, "variance": p.variance}
    positive.update((name, [getattr(p, name)]) for name in
                    ("step", "step_h", "step_w", "img_size", "img_h", "img_w") if p.HasField(name))
    for name, values in positive.items():
        bad = [v for v in values if not (math.isfinite(v) and v > 0)]
        if bad:
            ctx.fail(layer, "%s must be positive, got %g" % (name, bad[0]))
    if not math.isfinite(p.offset):
        ctx.fail(layer, "offset must be finite, got %g" % p.offset)


def _aspect_ratios(p):
    """Caffe's list: 1 first, then each new ratio (and its inverse when flip)."""
    ratios = [1.0]
    for ar in p.aspect_ratio:
        if any(abs(ar - r) < 1e-6 for r in ratios):
            continue
        ratios.append(float(ar))
        if p.flip:
            ratios.append(1.0 / float(ar))
    return ratios


def _prior_image_size(p, image_shape):
    if p.HasField("img_h") or p.HasField("img_w"):
        return p.img_h, p.img_w
    if p.HasField("img_size"):
        return p.img_size, p.img_size
    return image_shape[2], image_shape[3]


def _prior_steps(p, image_hw, feature_hw):
    if p.HasField("step_h") or p.HasField("step_w"):
        step_h, step_w = p.step_h, p.step_w
    elif p.HasField("step"):
        step_h = step_w = p.step
    else:
        step_h, step_w = image_hw[0] / feature_hw[0], image_hw[1] / feature_hw[1]
    return step_h / image_hw[0], step_w / image_hw[1]


def _prior_variances(ctx, layer, p):
    values = [float(v) for v in p.variance] or [DEFAULT_PRIOR_VARIANCE]
    if len(values) not in SUPPORTED_VARIANCE_COUNTS:
        ctx.fail(layer, "needs 1 or 4 variance values, got %d" % len(values))
    return tuple(values * 4 if len(values) == 1 else values)


def _prior_sizes(ctx, layer, p, image_h, ratios):
    """MultiBoxPrior sizes (relative to the image height) in Caffe's prior order."""
    min_sizes, max_sizes = list(p.min_size), list(p.max_size)
    if not min_sizes:
        ctx.fail(layer, "min_size is required")
    if max_sizes and len(max_sizes) != len(min_sizes):
        ctx.fail(layer, "has %d max_size values for %d min_size values"
                 % (len(max_sizes), len(min_sizes)))
    if len(min_sizes) > 1 and len(ratios) > 1:
        ctx.fail(layer, "several min_size values combined with aspect ratios are not "
                 "supported: MultiBoxPrior applies aspect ratios to the first size only")
    sizes = []
    for i, min_size in enumerate(min_sizes):
        sizes.append(min_size)
        if max_sizes:
            if max_sizes[i] <= min_size:
                ctx.fail(layer, "max_size %g must exceed min_size %g" % (max_sizes[i], min_size))
            sizes.append(math.sqrt(min_size * max_sizes[i]))
    return [s / image_h for s in sizes]


def convert_prior_box(ctx, layer, bottoms):
    """PriorBox -> MultiBoxPrior.  MXNet's anchors are (1, A, 4); the variances, which Caffe
    writes as a second channel, travel with the blob to DetectionOutput."""
    if len(bottoms) != 2:
        ctx.fail(layer, "expects 2 bottoms (feature map, image), got %d" % len(bottoms))
    feature, image = bottoms
    p = layer.param.prior_box_param
    _check_prior_values(ctx, layer, p)
    image_hw = _prior_image_size(p, image.shape)
    feature_hw = feature.shape[2:4]
    # MultiBoxPrior scales widths by the feature map's H/W; Caffe by the image's.
    if image_hw[1] * feature_hw[0] != image_hw[0] * feature_hw[1]:
        ctx.fail(layer, "image %s and feature map %s have different aspect ratios; "
                 "MultiBoxPrior cannot reproduce these box widths"
                 % (tuple(image_hw), tuple(feature_hw)))
    ratios = _aspect_ratios(p)
    sizes = _prior_sizes(ctx, layer, p, image_hw[0], ratios)
    if len(sizes) + len(ratios) - 1 > ctx.MAX_ANCHORS_PER_CELL:
        ctx.fail(layer, "%d priors per cell exceed MultiBoxPrior's limit of %d"
                 % (len(sizes) + len(ratios) - 1, ctx.MAX_ANCHORS_PER_CELL))
    steps = _prior_steps(p, image_hw, feature_hw)
    sym = ctx.ops.MultiBoxPrior(feature.sym, sizes=format_tuple(sizes),
                                ratios=format_tuple(ratios), clip=str(bool(p.clip)),
                                steps=format_tuple(steps),
                                offsets=format_tuple((p.offset, p.offset)),
                                name=mx_name(layer.name))
    return [Blob(sym, ctx.shape_of(sym), kind="prior",
                 variances=_prior_variances(ctx, layer, p))]


def _check_detection_params(ctx, layer, p):
    nms = p.nms_param
    checks = [
        (p.HasField("num_classes"), "num_classes is required"),
        (p.share_location, "share_location: false is not supported"),
        (p.background_label_id == 0, "background_label_id must be 0, got %d"
         % p.background_label_id),
        (p.code_type == CODE_TYPE_CENTER_SIZE, "code_type must be CENTER_SIZE"),
        (not p.variance_encoded_in_target, "variance_encoded_in_target: true is not supported"),
        (nms.eta == 1.0, "adaptive NMS (eta %g) is not supported" % nms.eta),
    ]
    for ok, message in checks:
        if not ok:
            ctx.fail(layer, message)


def convert_detection_output(ctx, layer, bottoms):
    """DetectionOutput(loc, conf, priors) -> MultiBoxDetection(cls_prob, loc, anchors).

    The outputs agree with Caffe for detections scoring >= 0.5 whenever there are fewer of
    them than top_k / keep_top_k; see README ("DetectionOutput") for why lower-scoring rows
    can differ.
    """
    if len(bottoms) != 3:
        ctx.fail(layer, "expects 3 bottoms (loc, conf, priors), got %d" % len(bottoms))
    loc, conf, priors = bottoms
    if priors.kind != "prior" or "prior" in (loc.kind, conf.kind):
        ctx.fail(layer, "bottom 3 must be the (concatenated) PriorBox output and bottoms 1-2 "
                 "the location and confidence predictions")
    p = layer.param.detection_output_param
    _check_detection_params(ctx, layer, p)
    num_anchors, num_classes = priors.shape[1], p.num_classes
    loc_size, conf_size = int(np.prod(loc.shape[1:])), int(np.prod(conf.shape[1:]))
    if loc_size != 4 * num_anchors or conf_size != num_classes * num_anchors:
        ctx.fail(layer, "%d priors with %d classes need loc %s and conf %s values per image, "
                 "got loc %s and conf %s" % (num_anchors, num_classes, 4 * num_anchors,
                                             num_classes * num_anchors, loc.shape, conf.shape))
    ctx.warn_detection_semantics(layer, p)
    name = mx_name(layer.name)
    cls_prob = mx.sym.transpose(mx.sym.reshape(conf.sym, shape=(0, -1, num_classes),
                                               name=name + "_conf"),
                                axes=(0, 2, 1), name=name + "_cls_prob")
    loc_pred = mx.sym.reshape(loc.sym, shape=(0, -1), name=name + "_loc_pred")
    nms = p.nms_param
    sym = ctx.ops.MultiBoxDetection(
        cls_prob, loc_pred, priors.sym, name=name, clip="False",
        threshold=format_float(p.confidence_threshold if p.HasField("confidence_threshold")
                               else 0.0),
        background_id="0", nms_threshold=format_float(nms.nms_threshold),
        force_suppress="False", variances=format_tuple(priors.variances),
        nms_topk=str(nms.top_k if nms.HasField("top_k") else -1))
    return [_tensor(sym, ctx)]


LAYER_HANDLERS = {
    "Convolution": convert_convolution,
    "Deconvolution": convert_convolution,
    "Pooling": convert_pooling,
    "InnerProduct": convert_inner_product,
    "ReLU": convert_relu,
    "PReLU": convert_prelu,
    "TanH": _activation("tanh"),
    "Sigmoid": _activation("sigmoid"),
    "LRN": convert_lrn,
    "Dropout": convert_identity,
    "Split": convert_identity,
    "Softmax": convert_softmax,
    "Flatten": convert_flatten,
    "Reshape": convert_reshape,
    "Permute": convert_permute,
    "Concat": convert_concat,
    "Eltwise": convert_eltwise,
    "Crop": convert_crop,
    "BatchNorm": convert_batch_norm,
    "Scale": convert_scale,
    "Normalize": convert_normalize,
    "PriorBox": convert_prior_box,
    "DetectionOutput": convert_detection_output,
}
