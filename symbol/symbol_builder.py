"""Builds SSD training and test symbols from a resolved preset (``symbol_factory.get_config``)."""
import numbers

import mxnet as mx

from config import defaults

from . import inceptionv3, mobilenet, operators, resnet, vgg16_reduced
from .common import multi_layer_feature, multibox_layer
from .model_io import mxnet_reason

BACKBONES = {
    "vgg16_reduced": vgg16_reduced.get_symbol,
    "inceptionv3": inceptionv3.get_symbol,
    "resnet": resnet.get_symbol,
    "mobilenet": mobilenet.get_symbol,
}

VARIANCES = defaults.VARIANCES
IGNORE_LABEL = -1
TARGET_SETTINGS = {
    "overlap_threshold": defaults.MATCH_IOU,
    "ignore_label": IGNORE_LABEL,
    "negative_mining_ratio": defaults.NEGATIVE_MINING_RATIO,
    "negative_mining_thresh": defaults.NEGATIVE_MINING_THRESH,
    "variances": VARIANCES,
}


def build_backbone(config):
    name = config["backbone"]
    if name not in BACKBONES:
        raise ValueError("unknown backbone %r; known: %s" % (name, ", ".join(sorted(BACKBONES))))
    return BACKBONES[name](**config["backbone_kwargs"])


# Backbone strides are measured on an input this large (every backbone takes it).
STRIDE_PROBE_SIDE = 512


def tapped_layer_strides(config, body):
    """{backbone layer the heads tap: its stride in input pixels}."""
    internals = body.get_internals()
    available = set(internals.list_outputs())
    strides = {}
    # unknown names are left to multi_layer_feature, which names the backbone's layers
    for layer in (name for name in config["from_layers"] if name + "_output" in available):
        _, (shape,), _ = internals[layer + "_output"].infer_shape(
            data=(1, 3, STRIDE_PROBE_SIDE, STRIDE_PROBE_SIDE))
        strides[layer] = STRIDE_PROBE_SIDE // shape[2]
    return strides


def check_input_size(config, body):
    """Every tapped backbone layer must see at least one whole cell of its stride, or its
    feature map is an artefact of padding (e.g. 17 pixels at a stride of 32)."""
    strides = tapped_layer_strides(config, body)
    if not strides:
        return
    layer, stride = max(strides.items(), key=lambda kv: kv[1])
    height, width = config["data_shape"]
    if min(height, width) < stride:
        raise ValueError("data shape %dx%d is too small for %s: its feature layer %s has a "
                         "stride of %d pixels, so each side needs at least %d"
                         % (height, width, config["network"], layer, stride, stride))


def multibox_predictions(config, num_classes):
    """(loc_preds, cls_preds, anchors) of the network described by ``config``."""
    if not isinstance(num_classes, numbers.Integral) or num_classes < 1:
        raise ValueError("num_classes must be a positive int (background excluded), got %r"
                         % (num_classes,))
    operators.load()  # the heads use MultiBoxPrior (and the outputs the other two)
    body = build_backbone(config)
    check_input_size(config, body)
    try:
        features = multi_layer_feature(body, config["data_shape"], config["from_layers"],
                                       config["num_filters"], config["strides"], config["pads"],
                                       kernels=config["kernels"],
                                       min_filter=config["min_filter"], naming=config["naming"])
    except mx.base.MXNetError as err:   # an extra layer's kernel exceeds its input
        raise ValueError("data shape %dx%d is too small for %s: its extra feature layers do "
                         "not fit (%s)" % (config["data_shape"] + (config["network"],
                                                                   mxnet_reason(err))))
    return multibox_layer(features, config["data_shape"], int(num_classes), config["sizes"],
                          config["ratios"], config["normalizations"], config["steps"],
                          clip=config["clip"])


def detection(cls_prob, loc_preds, anchors, nms_thresh, force_suppress, nms_topk):
    return mx.sym.MultiBoxDetection(cls_prob, loc_preds, anchors, nms_threshold=nms_thresh,
                                    force_suppress=force_suppress, variances=VARIANCES,
                                    nms_topk=nms_topk, name="detection")


def training_symbol(config, num_classes, nms_thresh=defaults.NMS_THRESH,
                    force_suppress=defaults.FORCE_NMS, nms_topk=defaults.NMS_TOPK,
                    minimum_negative_samples=0):
    """Outputs [cls_prob (N, C+1, A), loc_loss (N, 4A), cls_label (N, A), det_out (N, A, 6)];
    only the first two carry gradients, the others are for metrics and monitoring."""
    loc_preds, cls_preds, anchors = multibox_predictions(config, num_classes)
    label = mx.sym.Variable("label")
    targets = mx.sym.MultiBoxTarget(anchors, label, cls_preds,
                                    minimum_negative_samples=minimum_negative_samples,
                                    name="multibox_target", **TARGET_SETTINGS)
    loc_target, loc_mask, cls_target = targets[0], targets[1], targets[2]
    # Softmax over the class axis; gradient averaged over positives + mined negatives.
    cls_prob = mx.sym.SoftmaxOutput(data=cls_preds, label=cls_target, ignore_label=IGNORE_LABEL,
                                    use_ignore=True, grad_scale=1.0, multi_output=True,
                                    normalization="valid", name="cls_prob")
    loc_diff = mx.sym.elemwise_sub(loc_preds, loc_target, name="loc_diff")
    masked_diff = mx.sym.elemwise_mul(loc_mask, loc_diff, name="loc_masked_diff")
    loc_loss_ = mx.sym.smooth_l1(data=masked_diff, scalar=1.0, name="loc_loss_")
    loc_loss = mx.sym.MakeLoss(loc_loss_, grad_scale=1.0, normalization="valid", name="loc_loss")
    cls_label = mx.sym.MakeLoss(data=cls_target, grad_scale=0, name="cls_label")
    det = detection(cls_prob, loc_preds, anchors, nms_thresh, force_suppress, nms_topk)
    det_out = mx.sym.MakeLoss(data=det, grad_scale=0, name="det_out")
    return mx.sym.Group([cls_prob, loc_loss, cls_label, det_out])


def inference_symbol(config, num_classes, nms_thresh=defaults.NMS_THRESH,
                     force_suppress=defaults.FORCE_NMS, nms_topk=defaults.NMS_TOPK):
    """Single output ``detection_output`` (N, A, 6): [cls, score, xmin, ymin, xmax, ymax]."""
    loc_preds, cls_preds, anchors = multibox_predictions(config, num_classes)
    cls_prob = mx.sym.softmax(cls_preds, axis=1, name="cls_prob")
    return detection(cls_prob, loc_preds, anchors, nms_thresh, force_suppress, nms_topk)
