"""VGG16-reduced backbone (Liu et al., SSD): the VGG16 convolutions with fc6/fc7 turned into
convolutions — fc6 a 3x3 atrous conv (dilation 6), fc7 a 1x1 conv — and no dropout.

Parameter names are those of the converted Caffe ``VGG_ILSVRC_16_layers_fc_reduced`` model and
of the released SSD models: ``conv1_1_weight`` ... ``conv5_3_bias``, ``fc6_*``, ``fc7_*``
(``conv6_*``/``conv7_*`` in the first released models, see ``fc_names``)."""
import mxnet as mx

from .common import conv_relu

# (block, number of 3x3 convs, filters); block b has convs conv{b}_1.. and ReLUs relu{b}_1..
CONV_BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 3, 256), (4, 3, 512), (5, 3, 512))
# pool3 rounds up (Caffe's ceil mode) so that 75x75 becomes 38x38 at 300x300.
CEIL_MODE_POOLS = (3,)
FC_FILTERS = 1024
FC6_DILATION = 6


def vgg_pool(data, block):
    convention = "full" if block in CEIL_MODE_POOLS else "valid"
    return mx.sym.Pooling(data=data, pool_type="max", kernel=(2, 2), stride=(2, 2),
                          pooling_convention=convention, name="pool%d" % block)


def get_symbol(fc_names=("fc6", "fc7")):
    """Backbone up to ``relu7`` (stride 16 from pool4 on; pool5 keeps the resolution).

    ``fc_names`` names the two converted fully connected layers: ``("conv6", "conv7")`` gives
    the graph of the first released VGG SSD models.
    """
    body = mx.sym.Variable("data")
    for block, num_convs, num_filter in CONV_BLOCKS:
        for i in range(1, num_convs + 1):
            body = conv_relu(body, "conv%d_%d" % (block, i), "relu%d_%d" % (block, i),
                             num_filter, kernel=3, pad=1)
        if block != CONV_BLOCKS[-1][0]:
            body = vgg_pool(body, block)
    # 3x3 stride 1 (instead of 2x2 stride 2) keeps pool5 at the resolution fc6's dilation expects.
    body = mx.sym.Pooling(data=body, pool_type="max", kernel=(3, 3), stride=(1, 1), pad=(1, 1),
                          name="pool5")
    fc6, fc7 = fc_names
    body = conv_relu(body, fc6, "relu6", FC_FILTERS, kernel=3, pad=FC6_DILATION,
                     dilate=FC6_DILATION)
    return conv_relu(body, fc7, "relu7", FC_FILTERS, kernel=1)
