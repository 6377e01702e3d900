"""Inception-v3 backbone (Szegedy et al. 2016) with the MXNet model-zoo layer names used by the
released SSD Inception-v3 model: convs ``<tower>_conv2d`` (no bias) + ``<tower>_batchnorm`` +
``<tower>_relu``, blocks ``mixed`` ... ``mixed_10`` concatenated into
``ch_concat_<block>_chconcat`` (the SSD taps). Unpadded convs and pools ("valid") throughout,
as in the original network."""
import mxnet as mx

from .common import conv_bn_relu

# (name, filters, kernel, stride, pad); a None filter count is a 3x3 stride-2 max pool.
STEM = (
    ("conv", 32, 3, 2, 0),
    ("conv_1", 32, 3, 1, 0),
    ("conv_2", 64, 3, 1, 1),
    ("pool", None, 3, 2, 0),
    ("conv_3", 80, 1, 1, 0),
    ("conv_4", 192, 3, 1, 0),
    ("pool1", None, 3, 2, 0),
)


def pool(data, name, pool_type, stride, pad):
    return mx.sym.Pooling(data=data, kernel=(3, 3), stride=(stride, stride), pad=(pad, pad),
                          pool_type=pool_type, name=name)


def chain(data, name, specs):
    """Consecutive convs ``<name><suffix>`` given (suffix, filters, kernel, stride, pad)."""
    for suffix, filters, kernel, stride, pad in specs:
        data = conv_bn_relu(data, name + suffix, filters, kernel, stride, pad)
    return data


def pooled_projection(data, name, pool_type, proj):
    pooled = pool(data, "%s_pool_%s_pool" % (pool_type, name), pool_type, 1, 1)
    return conv_bn_relu(pooled, name + "_tower_2_conv", proj)


def concat(towers, name):
    return mx.sym.Concat(*towers, dim=1, name="ch_concat_%s_chconcat" % name)


def block_a(data, name, n1x1, n3x3_red, n3x3_1, n3x3_2, n5x5_red, n5x5, pool_type, proj):
    """35x35 block: 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | pool-1x1."""
    return concat([
        conv_bn_relu(data, name + "_conv", n1x1),
        chain(data, name + "_tower", [("_conv", n5x5_red, 1, 1, 0),
                                      ("_conv_1", n5x5, 5, 1, 2)]),
        chain(data, name + "_tower_1", [("_conv", n3x3_red, 1, 1, 0),
                                        ("_conv_1", n3x3_1, 3, 1, 1),
                                        ("_conv_2", n3x3_2, 3, 1, 1)]),
        pooled_projection(data, name, pool_type, proj),
    ], name)


def block_b(data, name, n3x3, nd3x3_red, nd3x3_1, nd3x3_2):
    """35 -> 17 reduction: strided 3x3 | 1x1-3x3-strided 3x3 | strided max pool."""
    return concat([
        conv_bn_relu(data, name + "_conv", n3x3, 3, 2, 0),
        chain(data, name + "_tower", [("_conv", nd3x3_red, 1, 1, 0),
                                      ("_conv_1", nd3x3_1, 3, 1, 1),
                                      ("_conv_2", nd3x3_2, 3, 2, 0)]),
        pool(data, "max_pool_%s_pool" % name, "max", 2, 0),
    ], name)


def block_c(data, name, n1x1, nd7_red, nd7_1, nd7_2, nq7_red, nq7_1, nq7_2, nq7_3, nq7_4,
            pool_type, proj):
    """17x17 block with factorised 7x7 convs: 1x1 | 1x7-7x1 | 7x1-1x7-7x1-1x7 | pool-1x1."""
    return concat([
        conv_bn_relu(data, name + "_conv", n1x1),
        chain(data, name + "_tower", [("_conv", nd7_red, 1, 1, 0),
                                      ("_conv_1", nd7_1, (1, 7), 1, (0, 3)),
                                      ("_conv_2", nd7_2, (7, 1), 1, (3, 0))]),
        chain(data, name + "_tower_1", [("_conv", nq7_red, 1, 1, 0),
                                        ("_conv_1", nq7_1, (7, 1), 1, (3, 0)),
                                        ("_conv_2", nq7_2, (1, 7), 1, (0, 3)),
                                        ("_conv_3", nq7_3, (7, 1), 1, (3, 0)),
                                        ("_conv_4", nq7_4, (1, 7), 1, (0, 3))]),
        pooled_projection(data, name, pool_type, proj),
    ], name)


def block_d(data, name, n3x3_red, n3x3, nd7_red, nd7_1, nd7_2, nd7_3x3):
    """17 -> 8 reduction: 1x1-strided 3x3 | 1x1-1x7-7x1-strided 3x3 | strided max pool."""
    return concat([
        chain(data, name + "_tower", [("_conv", n3x3_red, 1, 1, 0),
                                      ("_conv_1", n3x3, 3, 2, 0)]),
        chain(data, name + "_tower_1", [("_conv", nd7_red, 1, 1, 0),
                                        ("_conv_1", nd7_1, (1, 7), 1, (0, 3)),
                                        ("_conv_2", nd7_2, (7, 1), 1, (3, 0)),
                                        ("_conv_3", nd7_3x3, 3, 2, 0)]),
        pool(data, "max_pool_%s_pool" % name, "max", 2, 0),
    ], name)


def block_e(data, name, n1x1, nd3_red, nd3_1, nd3_2, n3x3_red, n3x3, n3x3_d3_1, n3x3_d3_2,
            pool_type, proj):
    """8x8 block with split 1x3/3x1 outputs: 1x1 | 1x1-(1x3,3x1) | 1x1-3x3-(1x3,3x1) | pool-1x1."""
    tower = conv_bn_relu(data, name + "_tower_conv", nd3_red)
    tower_1 = chain(data, name + "_tower_1", [("_conv", n3x3_red, 1, 1, 0),
                                              ("_conv_1", n3x3, 3, 1, 1)])
    return concat([
        conv_bn_relu(data, name + "_conv", n1x1),
        conv_bn_relu(tower, name + "_tower_mixed_conv", nd3_1, (1, 3), 1, (0, 1)),
        conv_bn_relu(tower, name + "_tower_mixed_conv_1", nd3_2, (3, 1), 1, (1, 0)),
        conv_bn_relu(tower_1, name + "_tower_1_mixed_conv", n3x3_d3_1, (1, 3), 1, (0, 1)),
        conv_bn_relu(tower_1, name + "_tower_1_mixed_conv_1", n3x3_d3_2, (3, 1), 1, (1, 0)),
        pooled_projection(data, name, pool_type, proj),
    ], name)


# (block builder, name, filter arguments) in network order.
BLOCKS = (
    (block_a, "mixed", (64, 64, 96, 96, 48, 64, "avg", 32)),
    (block_a, "mixed_1", (64, 64, 96, 96, 48, 64, "avg", 64)),
    (block_a, "mixed_2", (64, 64, 96, 96, 48, 64, "avg", 64)),
    (block_b, "mixed_3", (384, 64, 96, 96)),
    (block_c, "mixed_4", (192, 128, 128, 192, 128, 128, 128, 128, 192, "avg", 192)),
    (block_c, "mixed_5", (192, 160, 160, 192, 160, 160, 160, 160, 192, "avg", 192)),
    (block_c, "mixed_6", (192, 160, 160, 192, 160, 160, 160, 160, 192, "avg", 192)),
    (block_c, "mixed_7", (192, 192, 192, 192, 192, 192, 192, 192, 192, "avg", 192)),
    (block_d, "mixed_8", (192, 320, 192, 192, 192, 192)),
    (block_e, "mixed_9", (320, 384, 384, 384, 448, 384, 384, 384, "avg", 192)),
    (block_e, "mixed_10", (320, 384, 384, 384, 448, 384, 384, 384, "max", 192)),
)


def get_symbol():
    """Feature extractor up to ``ch_concat_mixed_10_chconcat`` (stride 32)."""
    body = mx.sym.Variable("data")
    for name, filters, kernel, stride, pad in STEM:
        if filters is None:
            body = pool(body, name, "max", stride, pad)
        else:
            body = conv_bn_relu(body, name, filters, kernel, stride, pad)
    for build, name, arguments in BLOCKS:
        body = build(body, name, *arguments)
    return body
