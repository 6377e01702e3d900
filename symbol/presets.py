"""SSD presets: one table per network, data only (``symbol_factory`` resolves them).

A network entry names its backbone (a module of this package with ``get_symbol(**kwargs)``)
and lists one or more geometry tiers; the tier with the largest ``min_side`` not above the
input's shorter side is used. Per feature layer, a tier gives:

* ``from_layers``: backbone layer to tap, or ``''`` for an extra block (1x1 reduce to
  ``max(min_filter, filters // 2)`` + ``kernels`` conv with ``num_filters``/``strides``/``pads``);
  -1 marks "not applicable" for tapped layers.
* ``scales`` (min, max) for the Caffe SSD anchor-size formula, or explicit ``sizes``.
* ``ratios``; ``normalizations`` (> 0: L2-normalise with a learnable scale initialised to it).
* ``steps``: anchor spacing in pixels, used only at ``native_side`` x ``native_side`` input;
  elsewhere MultiBoxPrior spaces anchors one per feature-map cell.
"""
R3 = (1.0, 2.0, 0.5)
R5 = (1.0, 2.0, 0.5, 3.0, 1.0 / 3.0)

VGG16_REDUCED_300 = {
    "min_side": 0,
    "native_side": 300,
    "from_layers": ("relu4_3", "relu7", "", "", "", ""),
    "num_filters": (512, -1, 512, 256, 256, 256),
    "strides": (-1, -1, 2, 2, 1, 1),
    "pads": (-1, -1, 1, 1, 0, 0),
    "scales": (0.2, 0.9),
    "ratios": (R3, R5, R5, R5, R3, R3),
    "normalizations": (20, -1, -1, -1, -1, -1),
    "steps": (8, 16, 32, 64, 100, 300),
}

# Caffe SSD512 geometry: the last extra layer is a 4x4 conv taking 2x2 to 1x1 (24564 anchors).
VGG16_REDUCED_512 = {
    "min_side": 448,
    "native_side": 512,
    "from_layers": ("relu4_3", "relu7", "", "", "", "", ""),
    "num_filters": (512, -1, 512, 256, 256, 256, 256),
    "strides": (-1, -1, 2, 2, 2, 2, 1),
    "pads": (-1, -1, 1, 1, 1, 1, 1),
    "kernels": (-1, -1, 3, 3, 3, 3, 4),
    "scales": (0.15, 0.9),
    "ratios": (R3, R5, R5, R5, R5, R3, R3),
    "normalizations": (20, -1, -1, -1, -1, -1, -1),
    "steps": (8, 16, 32, 64, 128, 256, 512),
}

# The first released VGG models hard-coded rounded anchor sizes; keep them for those weights
# (explicit ``sizes`` take precedence over ``scales``).
LEGACY_VGG16_SSD_300 = dict(VGG16_REDUCED_300, sizes=(
    (0.1, 0.141), (0.2, 0.272), (0.37, 0.447), (0.54, 0.619), (0.71, 0.79), (0.88, 0.961)))
LEGACY_VGG16_SSD_512 = dict(VGG16_REDUCED_512, min_side=0, sizes=(
    (0.07, 0.1025), (0.15, 0.2121), (0.3, 0.3674), (0.45, 0.5196), (0.6, 0.6708),
    (0.75, 0.8216), (0.9, 0.9721)))

# Large inputs tap deeper blocks, small ones add the 35x35-class mixed_2.
INCEPTIONV3_SMALL = {
    "min_side": 0,
    "from_layers": ("ch_concat_mixed_2_chconcat", "ch_concat_mixed_7_chconcat",
                    "ch_concat_mixed_10_chconcat", "", "", ""),
    "num_filters": (-1, -1, -1, 256, 256, 128),
    "strides": (-1, -1, -1, 2, 2, 2),
    "pads": (-1, -1, -1, 1, 1, 1),
    "scales": (0.2, 0.9),
    "ratios": (R3, R5, R5, R5, R3, R3),
    "normalizations": (-1, -1, -1, -1, -1, -1),
}
INCEPTIONV3_LARGE = {
    "min_side": 448,
    "from_layers": ("ch_concat_mixed_7_chconcat", "ch_concat_mixed_10_chconcat",
                    "", "", "", ""),
    "num_filters": (-1, -1, 512, 256, 256, 128),
    "strides": (-1, -1, 2, 2, 2, 2),
    "pads": (-1, -1, 1, 1, 1, 1),
    "scales": (0.2, 0.9),
    "ratios": (R3, R5, R5, R5, R3, R3),
    "normalizations": (-1, -1, -1, -1, -1, -1),
}


def _resnet_tier(stage3_end, stage4_end):
    return {
        "min_side": 0,
        "from_layers": (stage3_end, stage4_end, "", "", "", ""),
        "num_filters": (-1, -1, 512, 256, 256, 128),
        "strides": (-1, -1, 2, 2, 2, 2),
        "pads": (-1, -1, 1, 1, 1, 1),
        "scales": (0.2, 0.9),
        "ratios": (R3, R5, R5, R5, R3, R3),
        "normalizations": (-1, -1, -1, -1, -1, -1),
    }


# Taps: ends of stage 3 (stride 16) and stage 4 (stride 32), see resnet.stage_end_names.
RESNET50 = _resnet_tier("_plus12", "_plus15")
RESNET101 = _resnet_tier("_plus29", "_plus32")

# Below 448 pixels the original's layout (for its 512/608 models) leaves objects under ~20 px
# without anchors on a map fine enough to place them: small inputs also tap the stride-8
# stage, with SSD300's scales.  (Scales (0.15, 0.9), i.e. first anchors of 7% of the image,
# learned more slowly on the synthetic shapes at 192 pixels: mAP 0.54 vs 0.67 after 35 epochs.)
MOBILENET_SMALL = {
    "min_side": 0,
    "from_layers": ("conv_6_relu", "conv_12_relu", "conv_14_relu", "", ""),
    "num_filters": (-1, -1, -1, 512, 256),
    "strides": (-1, -1, -1, 2, 2),
    "pads": (-1, -1, -1, 1, 1),
    "scales": (0.2, 0.9),
    "ratios": (R3, R5, R5, R3, R3),
    "normalizations": (-1, -1, -1, -1, -1),
}
MOBILENET = {
    "min_side": 448,
    "from_layers": ("conv_12_relu", "conv_14_relu", "", "", "", "", ""),
    "num_filters": (-1, -1, 512, 256, 256, 256, 256),
    "strides": (-1, -1, 2, 2, 2, 2, 2),
    "pads": (-1, -1, 1, 1, 1, 1, 1),
    "scales": (0.15, 0.9),
    "ratios": (R3, R5, R5, R5, R5, R3, R3),
    "normalizations": (-1, -1, -1, -1, -1, -1, -1),
}


def _mobilenet(width):
    # Thin MobileNets also thin their extra layers (filter_scale), or those would dominate.
    return {"backbone": "mobilenet", "backbone_kwargs": {"multiplier": width},
            "filter_scale": width, "tiers": (MOBILENET_SMALL, MOBILENET)}


# network name -> backbone module, its arguments, extra-layer naming, filter scale, tiers
NETWORKS = {
    "vgg16_reduced": {"backbone": "vgg16_reduced",
                      "tiers": (VGG16_REDUCED_300, VGG16_REDUCED_512)},
    "legacy_vgg16_ssd_300": {"backbone": "vgg16_reduced",
                             "backbone_kwargs": {"fc_names": ("conv6", "conv7")},
                             "naming": "legacy", "tiers": (LEGACY_VGG16_SSD_300,)},
    "legacy_vgg16_ssd_512": {"backbone": "vgg16_reduced",
                             "backbone_kwargs": {"fc_names": ("conv6", "conv7")},
                             "naming": "legacy", "tiers": (LEGACY_VGG16_SSD_512,)},
    "inceptionv3": {"backbone": "inceptionv3", "tiers": (INCEPTIONV3_SMALL, INCEPTIONV3_LARGE)},
    "resnet50": {"backbone": "resnet", "backbone_kwargs": {"num_layers": 50},
                 "tiers": (RESNET50,)},
    "resnet101": {"backbone": "resnet", "backbone_kwargs": {"num_layers": 101},
                  "tiers": (RESNET101,)},
    "mobilenet": _mobilenet(1.0),
    "mobilenet_0.75": _mobilenet(0.75),
    "mobilenet_0.5": _mobilenet(0.5),
    "mobilenet_0.25": _mobilenet(0.25),
}
