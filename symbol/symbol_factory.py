"""Network names -> SSD symbols: resolves a preset of ``presets.NETWORKS`` for an input shape
and builds the training or test symbol from it.

>>> net = get_symbol_train("vgg16_reduced", 300, num_classes=20)   # outputs cls_prob, ...
>>> net = get_symbol("mobilenet_0.25", (256, 320), num_classes=3)    # output detection
"""
import logging

from config import defaults

from . import presets
from .common import as_pair, caffe_ssd_sizes
from .symbol_builder import inference_symbol, training_symbol

DEFAULT_MIN_FILTER = 128
# Fields of a resolved config that callers may override through **kwargs.
OVERRIDABLE = ("backbone_kwargs", "from_layers", "num_filters", "strides", "pads", "kernels",
               "min_filter", "naming", "sizes", "ratios", "normalizations", "steps", "clip")


def known_networks():
    return sorted(presets.NETWORKS)


def network_entry(network):
    if network not in presets.NETWORKS:
        raise ValueError("unknown network %r; known networks: %s"
                         % (network, ", ".join(known_networks())))
    return presets.NETWORKS[network]


def pick_tier(network, tiers, shorter_side):
    usable = [tier for tier in tiers if tier["min_side"] <= shorter_side]
    if not usable:
        raise ValueError("network %r has no preset for inputs with a %d-pixel side"
                         % (network, shorter_side))
    return max(usable, key=lambda tier: tier["min_side"])


def per_layer_values(value, num_layers):
    """One number per layer; a scalar applies to every layer (normalizations)."""
    if isinstance(value, (int, float)):
        return [value] * num_layers
    return list(value)


def per_layer_lists(value, num_layers):
    """One list per layer; a single flat list applies to every layer (sizes, ratios)."""
    if value and all(isinstance(v, (int, float)) for v in value):
        return [list(value)] * num_layers
    return [list(v) for v in value]


def anchor_steps(network, tier, data_shape):
    """Steps as fractions of the image where the preset's pixel steps apply, else []."""
    native = tier.get("native_side")
    if native is None or not tier.get("steps"):
        return []
    if data_shape != (native, native):
        logging.getLogger(__name__).warning(
            "%s: anchor steps are tuned for %dx%d input; for %dx%d anchors are spaced one per "
            "feature-map cell", network, native, native, data_shape[0], data_shape[1])
        return []
    return [step / float(native) for step in tier["steps"]]


def scaled_filters(num_filters, scale):
    return [int(f * scale) if f > 0 else f for f in num_filters]


def get_config(network, data_shape, **kwargs):
    """The resolved preset of ``network`` for ``data_shape`` (int or (height, width)).

    Keys: network, backbone, backbone_kwargs, data_shape (h, w), from_layers, num_filters,
    strides, pads, kernels, min_filter, naming, sizes, ratios, normalizations, steps
    (fractions of the image, [] = automatic), clip. ``kwargs`` override any of those listed
    in ``OVERRIDABLE``.
    """
    entry = network_entry(network)
    height, width = as_pair(data_shape)
    if height < 1 or width < 1:
        raise ValueError("data_shape must be positive, got %r" % (data_shape,))
    tier = pick_tier(network, entry["tiers"], min(height, width))
    num_layers = len(tier["from_layers"])
    scale = entry.get("filter_scale", 1.0)
    sizes = tier.get("sizes") or caffe_ssd_sizes(tier["scales"][0], tier["scales"][1],
                                                 num_layers)
    config = {
        "network": network,
        "backbone": entry["backbone"],
        "backbone_kwargs": dict(entry.get("backbone_kwargs", {})),
        "data_shape": (height, width),
        "from_layers": list(tier["from_layers"]),
        "num_filters": scaled_filters(tier["num_filters"], scale),
        "strides": list(tier["strides"]),
        "pads": list(tier["pads"]),
        "kernels": list(tier.get("kernels", [3] * num_layers)),
        "min_filter": int(DEFAULT_MIN_FILTER * scale),
        "naming": entry.get("naming", "ssd"),
        "sizes": per_layer_lists(sizes, num_layers),
        "ratios": per_layer_lists(tier["ratios"], num_layers),
        "normalizations": per_layer_values(tier["normalizations"], num_layers),
        "steps": anchor_steps(network, tier, (height, width)),
        "clip": False,
    }
    unknown = sorted(set(kwargs) - set(OVERRIDABLE))
    if unknown:
        raise TypeError("unknown SSD config field(s) %s; fields that can be overridden: %s"
                        % (", ".join(unknown), ", ".join(OVERRIDABLE)))
    config.update(kwargs)
    num_layers = len(config["from_layers"])
    config["sizes"] = per_layer_lists(config["sizes"], num_layers)
    config["ratios"] = per_layer_lists(config["ratios"], num_layers)
    config["normalizations"] = per_layer_values(config["normalizations"], num_layers)
    return config


def get_symbol_train(network, data_shape, num_classes, nms_thresh=defaults.NMS_THRESH,
                     force_suppress=defaults.FORCE_NMS, nms_topk=defaults.NMS_TOPK,
                     minimum_negative_samples=0, **kwargs):
    """Training symbol: inputs ``data`` (N, 3, H, W) and ``label`` (N, M, >=5); outputs
    [cls_prob, loc_loss, cls_label, det_out]. ``kwargs`` override preset fields."""
    config = get_config(network, data_shape, **kwargs)
    return training_symbol(config, num_classes, nms_thresh=nms_thresh,
                           force_suppress=force_suppress, nms_topk=nms_topk,
                           minimum_negative_samples=minimum_negative_samples)


def get_symbol(network, data_shape, num_classes, nms_thresh=defaults.NMS_THRESH,
               force_suppress=defaults.FORCE_NMS, nms_topk=defaults.NMS_TOPK, **kwargs):
    """Test symbol: input ``data``; single output of the MultiBoxDetection node ``detection``,
    (N, A, 6) rows [cls, score, xmin, ymin, xmax, ymax], cls -1 for suppressed rows."""
    config = get_config(network, data_shape, **kwargs)
    return inference_symbol(config, num_classes, nms_thresh=nms_thresh,
                            force_suppress=force_suppress, nms_topk=nms_topk)
