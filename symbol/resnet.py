"""Pre-activation ResNet v2 backbone (He et al. 2016, "Identity Mappings"), bottleneck units.

Layer names follow the ImageNet models the released SSD ResNets were fine-tuned from:
``bn_data``, ``conv0``, ``bn0``, units ``stage<i>_unit<j>_{bn,relu,conv}{1,2,3}`` with the
projection shortcut ``stage<i>_unit<j>_sc``, final ``bn1``/``relu1``.

Residual sums are named ``_plus<k>`` (k = unit index over the whole network). The original
left them anonymous, so their names came from a process-wide counter and were only right for
the first network built in a process; naming them explicitly keeps building repeatable while
matching the released heads (``_plus12_loc_pred_conv_weight`` ...). The end of stage 3
(stride 16) and of stage 4 (stride 32) are the SSD taps, see ``stage_end_names``."""
import mxnet as mx

# Bottleneck units per stage for each depth.
UNITS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
STAGE_FILTERS = (256, 512, 1024, 2048)  # unit output channels; the bottleneck is 1/4 of it
STEM_FILTERS = 64
BN_EPS = 2e-5
BN_MOMENTUM = 0.9


def batch_norm(data, name, fix_gamma=False):
    return mx.sym.BatchNorm(data=data, fix_gamma=fix_gamma, eps=BN_EPS, momentum=BN_MOMENTUM,
                            name=name)


def conv(data, name, num_filter, kernel, stride=1, pad=0):
    return mx.sym.Convolution(data=data, num_filter=num_filter, kernel=(kernel, kernel),
                              stride=(stride, stride), pad=(pad, pad), no_bias=True, name=name)


def bn_relu_conv(data, name, index, num_filter, kernel, stride=1, pad=0):
    """The pre-activation triple; returns (activation, conv) since the shortcut reuses the
    first activation."""
    prefix = "%s_%%s%d" % (name, index)
    act = mx.sym.Activation(data=batch_norm(data, prefix % "bn"), act_type="relu",
                            name=prefix % "relu")
    return act, conv(act, prefix % "conv", num_filter, kernel, stride, pad)


def bottleneck_unit(data, name, sum_name, num_filter, stride, project):
    """1x1 reduce, 3x3 (strided), 1x1 expand; identity or 1x1 projection shortcut."""
    act1, body = bn_relu_conv(data, name, 1, num_filter // 4, 1)
    _, body = bn_relu_conv(body, name, 2, num_filter // 4, 3, stride, 1)
    _, body = bn_relu_conv(body, name, 3, num_filter, 1)
    shortcut = conv(act1, name + "_sc", num_filter, 1, stride) if project else data
    return mx.sym.elemwise_add(body, shortcut, name=sum_name)


def units_for(num_layers):
    if num_layers not in UNITS:
        raise ValueError("ResNet depth must be one of %s, got %r" % (sorted(UNITS), num_layers))
    return UNITS[num_layers]


def stage_end_names(num_layers):
    """Names of the residual sums ending each stage, e.g. resnet50 -> _plus2, _plus6,
    _plus12, _plus15."""
    ends, total = [], 0
    for count in units_for(num_layers):
        total += count
        ends.append("_plus%d" % (total - 1))
    return ends


def get_symbol(num_layers=50):
    """Feature extractor up to ``relu1`` (stride 32) for a 224x224-style ImageNet stem."""
    units = units_for(num_layers)
    data = mx.sym.identity(data=mx.sym.Variable("data"), name="id")
    body = batch_norm(data, "bn_data", fix_gamma=True)
    body = conv(body, "conv0", STEM_FILTERS, 7, 2, 3)
    body = mx.sym.Activation(data=batch_norm(body, "bn0"), act_type="relu", name="relu0")
    body = mx.sym.Pooling(data=body, kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type="max",
                          name="pool0")
    unit_index = 0
    for stage, (count, filters) in enumerate(zip(units, STAGE_FILTERS), start=1):
        for j in range(1, count + 1):
            stride = 2 if (j == 1 and stage > 1) else 1
            body = bottleneck_unit(body, "stage%d_unit%d" % (stage, j), "_plus%d" % unit_index,
                                   filters, stride, project=(j == 1))
            unit_index += 1
    body = batch_norm(body, "bn1")
    return mx.sym.Activation(data=body, act_type="relu", name="relu1")
