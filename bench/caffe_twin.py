"""A project SSD graph written out as an SSD-Caffe deploy model with random weights.

``write_caffe_twin`` walks the MXNet test graph of a VGG-style SSD (Convolution, ReLU,
Pooling, L2Normalization + scale, multibox heads, MultiBoxPrior, MultiBoxDetection) and emits
the same network as Caffe layers: convolutions keep the MXNet names, so the converter
(``tools/caffe_converter``) turns the caffemodel back into parameters that load straight into
the project's symbol.  OpenCV's Caffe importer then runs exactly the network, and exactly the
weights, that MXNet runs.
"""
import ast
import json
import math

import numpy as np

from tools.caffe_converter.netspec import NetWriter

VARIANCES = [0.1, 0.1, 0.2, 0.2]
# Random weights are He-initialised times these gains so that activations stay O(1) for raw
# (mean-subtracted) pixels and some detections score high enough to compare.
GAINS = {"image": 0.01, "_loc_pred_conv": 0.3, "_cls_pred_conv": 1.2}
BIAS_STD = 0.1
NORMALIZE_SCALE = 20.0  # SSD's L2-normalisation scale init, varied per channel
SUPPORTED_OPS = ("null", "Convolution", "Activation", "Pooling", "L2Normalization",
                 "broadcast_mul", "transpose", "Flatten", "MultiBoxPrior", "Concat", "Reshape",
                 "softmax", "MultiBoxDetection", "_zeros", "slice_axis")


def _attr(node, key, default=None):
    value = node.get("attrs", {}).get(key)
    if value is None:
        return default
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return value  # plain strings such as 'relu' or 'full'


def _pair(value):
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


class _Graph:
    """The nodes of a symbol's JSON with the lookups the translation needs."""

    def __init__(self, symbol):
        self.nodes = json.loads(symbol.tojson())["nodes"]
        unsupported = sorted({n["op"] for n in self.nodes} - set(SUPPORTED_OPS))
        if unsupported:
            raise ValueError("cannot write a Caffe twin of a graph with %s"
                             % ", ".join(unsupported))
        self.by_name = {n["name"]: n for n in self.nodes}

    def inputs(self, node):
        return [self.nodes[i] for i, _, _ in node["inputs"]]

    def first_op(self, op):
        return next(n for n in self.nodes if n["op"] == op)

    def head_conv(self, flatten_node):
        """Flatten <- transpose [<- slice_axis] <- Convolution of one multibox head (heads run
        with zero-padded filters, cropped by slice_axis: common.zero_padded_filters)."""
        node = self.inputs(self.inputs(flatten_node)[0])[0]
        return self.inputs(node)[0] if node["op"] == "slice_axis" else node


def _gain(name, reads_image):
    if reads_image:
        return GAINS["image"]
    return next((g for suffix, g in GAINS.items() if name.endswith(suffix)), 1.0)


class _Writer:
    def __init__(self, graph, arg_shapes, data_shape, rng):
        self.graph, self.arg_shapes, self.rng = graph, arg_shapes, rng
        self.height, self.width = data_shape
        self.net = NetWriter("ssd_caffe_twin")
        self.tops = {}  # MXNet node name -> Caffe blob carrying its output

    def top(self, node):
        return self.tops[node["name"]]

    def convolution(self, node):
        source = self.graph.inputs(node)[0]
        weight_shape = self.arg_shapes[node["name"] + "_weight"]
        fan_in = np.prod(weight_shape[1:])
        scale = _gain(node["name"], source["name"] == "data") * math.sqrt(2.0 / fan_in)
        weight = self.rng.standard_normal(weight_shape, dtype=np.float32) * np.float32(scale)
        bias = self.rng.standard_normal(weight_shape[0], dtype=np.float32) * np.float32(BIAS_STD)
        kernel, stride = _pair(_attr(node, "kernel")), _pair(_attr(node, "stride", 1))
        pad, dilate = _pair(_attr(node, "pad", 0)), _pair(_attr(node, "dilate", 1))
        params = dict(num_output=weight_shape[0], kernel_h=kernel[0],
                      kernel_w=kernel[1], stride_h=stride[0], stride_w=stride[1],
                      pad_h=pad[0], pad_w=pad[1])
        if dilate != (1, 1):
            if dilate[0] != dilate[1]:
                raise ValueError("%s: Caffe twin needs equal dilations" % node["name"])
            params["dilation"] = dilate[0]
        self.tops[node["name"]] = self.net.add("Convolution", node["name"], [self.top(source)],
                                               blobs=[weight, bias],
                                               convolution_param=params)

    def activation(self, node):
        if _attr(node, "act_type") != "relu":
            raise ValueError("%s: only ReLU activations have a Caffe twin" % node["name"])
        self.tops[node["name"]] = self.net.add("ReLU", node["name"] + "_layer",
                                               [self.top(self.graph.inputs(node)[0])],
                                               tops=[node["name"]])

    def pooling(self, node):
        # Caffe pools in ceil mode; the converter checks the output sizes agree with MXNet's.
        kernel, stride = _pair(_attr(node, "kernel")), _pair(_attr(node, "stride", 1))
        pad = _pair(_attr(node, "pad", 0))
        params = dict(pool="MAX" if _attr(node, "pool_type") == "max" else "AVE",
                      kernel_h=kernel[0], kernel_w=kernel[1], stride_h=stride[0],
                      stride_w=stride[1], pad_h=pad[0], pad_w=pad[1])
        self.tops[node["name"]] = self.net.add("Pooling", node["name"],
                                               [self.top(self.graph.inputs(node)[0])],
                                               pooling_param=params)

    def scaled_normalization(self, node):
        """broadcast_mul(scale variable, L2Normalization(x)) -> one Normalize layer named
        after the variable, so the converter's ``<layer>_scale`` is the MXNet name."""
        scale, norm = self.graph.inputs(node)
        channels = self.arg_shapes[scale["name"]][1]
        values = np.float32(NORMALIZE_SCALE) + self.rng.standard_normal(channels,
                                                                       dtype=np.float32)
        layer = scale["name"][:-len("_scale")]
        self.tops[node["name"]] = self.net.add(
            "Normalize", layer, [self.top(self.graph.inputs(norm)[0])], tops=[node["name"]],
            blobs=[values], norm_param=dict(across_spatial=False, channel_shared=False))

    def prior_box(self, node):
        sizes, ratios = _attr(node, "sizes"), _attr(node, "ratios")
        steps = _pair(_attr(node, "steps", (-1.0, -1.0)))
        if abs(ratios[0] - 1) > 1e-6 or len(sizes) > 2:
            raise ValueError("%s: Caffe PriorBox needs ratio 1 first and at most 2 sizes"
                             % node["name"])
        params = dict(min_size=sizes[0] * self.height, clip=bool(_attr(node, "clip", False)),
                      variance=VARIANCES, offset=0.5, flip=True,
                      aspect_ratio=[r for r in ratios[1:] if r > 1])
        if len(sizes) == 2:
            params["max_size"] = sizes[1] ** 2 / sizes[0] * self.height
        if steps[0] > 0:
            params.update(step_h=steps[0] * self.height, step_w=steps[1] * self.width)
        feature = self.graph.inputs(node)[0]
        return self.net.add("PriorBox", node["name"], [self.top(feature), "data"],
                            prior_box_param=params)

    def head(self, flatten_node):
        conv = self.graph.head_conv(flatten_node)
        self.convolution(conv)
        permuted = self.net.add("Permute", conv["name"] + "_perm", [self.top(conv)],
                                permute_param=dict(order=[0, 2, 3, 1]))
        return self.net.add("Flatten", conv["name"] + "_flat", [permuted],
                            flatten_param=dict(axis=1))

    def concat(self, name, bottoms, axis):
        return self.net.add("Concat", name, bottoms, concat_param=dict(axis=axis))

    def detection_tail(self):
        """Heads, priors, softmax and DetectionOutput in SSD-Caffe's layout."""
        detection = self.graph.first_op("MultiBoxDetection")
        loc_concat = self.graph.by_name["multibox_loc_pred"]
        cls_concat = self.graph.by_name["multibox_cls_pred_concat"]
        anchor_concat = self.graph.by_name["multibox_anchors_concat"]
        loc = self.concat("mbox_loc", [self.head(f) for f in self.graph.inputs(loc_concat)], 1)
        conf = self.concat("mbox_conf", [self.head(f) for f in self.graph.inputs(cls_concat)],
                           1)
        priors = self.concat("mbox_priorbox",
                             [self.prior_box(self.graph.inputs(f)[0])
                              for f in self.graph.inputs(anchor_concat)], 2)
        num_classes = _attr(self.graph.by_name["multibox_cls_pred_reshape"], "shape")[2]
        reshaped = self.net.add("Reshape", "mbox_conf_reshape", [conf],
                                reshape_param=dict(shape=dict(dim=[0, -1, num_classes])))
        prob = self.net.add("Softmax", "mbox_conf_softmax", [reshaped],
                            softmax_param=dict(axis=2))
        flat = self.net.add("Flatten", "mbox_conf_flatten", [prob], flatten_param=dict(axis=1))
        self.net.add("DetectionOutput", "detection_out", [loc, flat, priors],
                     detection_output_param=dict(
                         num_classes=num_classes, share_location=True, background_label_id=0,
                         code_type="CENTER_SIZE", keep_top_k=_attr(detection, "nms_topk"),
                         confidence_threshold=_attr(detection, "threshold", 0.01),
                         nms_param=dict(nms_threshold=_attr(detection, "nms_threshold"),
                                        top_k=_attr(detection, "nms_topk"))))

    def write(self):
        self.net.input("data", (1, 3, self.height, self.width))
        self.tops["data"] = "data"
        handlers = {"Convolution": self.convolution, "Activation": self.activation,
                    "Pooling": self.pooling, "broadcast_mul": self.scaled_normalization}
        head_convs = {self.graph.head_conv(f)["name"]
                      for concat in ("multibox_loc_pred", "multibox_cls_pred_concat")
                      for f in self.graph.inputs(self.graph.by_name[concat])}
        for node in self.graph.nodes:
            if node["op"] in handlers and node["name"] not in head_convs:
                handlers[node["op"]](node)
        self.detection_tail()
        return self.net


def write_caffe_twin(symbol, data_shape, prototxt, caffemodel, seed=0):
    """Write the Caffe twin of SSD test graph ``symbol`` for a (height, width) input; returns
    (prototxt, caffemodel).  Head convolutions are emitted in the order of the graph's concat
    nodes, so the flattened predictions line up with the anchors exactly as in MXNet."""
    height, width = data_shape
    arg_shapes, _, _ = symbol.infer_shape(data=(1, 3, height, width))
    shapes = dict(zip(symbol.list_arguments(), arg_shapes))
    writer = _Writer(_Graph(symbol), shapes, (height, width), np.random.default_rng(seed))
    return writer.write().save(prototxt, caffemodel)
