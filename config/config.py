"""SSD data-augmentation settings: keyword arguments of `dataset.iterator.DetRecordIter`
(and so of MXNet's `ImageDetRecordIter`), for training (`cfg.train`) and validation
(`cfg.valid`).  Numbers follow the SSD paper / the original mxnet-ssd.

The zoom-out canvas is filled with the mean pixel: `DetRecordIter` derives `fill_value` from its
`mean_pixels` unless one is passed explicitly, so after mean subtraction the padding is ~0.
MXNet applies, in this order: colour jitter, mirror, zoom-out, crop, then a forced resize to
the data shape.  `shuffle` reorders images within each chunk the C++ reader loads (8 MB), so
records are also shuffled once when packed (tools/prepare_dataset.py --shuffle).
"""
import os
from types import SimpleNamespace

NUM_CROP_SAMPLERS = 5

# One sampler per minimum IoU: each tries 25 crops of 30-100% of the image with aspect ratio
# 1/2..2 and accepts one that overlaps some object with at least that IoU.  Crops are applied
# with probability 5/6 (the sixth "sampler" of the paper keeps the whole image).  Objects whose
# centre falls outside the crop are dropped, the others clipped to it.
_RANDOM_CROP = dict(
    rand_crop_prob=5 / 6,
    num_crop_sampler=NUM_CROP_SAMPLERS,
    min_crop_overlaps=(0.1, 0.3, 0.5, 0.7, 0.9),
    max_crop_overlaps=(1.0,) * NUM_CROP_SAMPLERS,
    min_crop_scales=(0.3,) * NUM_CROP_SAMPLERS,
    max_crop_scales=(1.0,) * NUM_CROP_SAMPLERS,
    min_crop_aspect_ratios=(0.5,) * NUM_CROP_SAMPLERS,
    max_crop_aspect_ratios=(2.0,) * NUM_CROP_SAMPLERS,
    min_crop_sample_coverages=(0.0,) * NUM_CROP_SAMPLERS,
    max_crop_sample_coverages=(1.0,) * NUM_CROP_SAMPLERS,
    min_crop_object_coverages=(0.0,) * NUM_CROP_SAMPLERS,
    max_crop_object_coverages=(1.0,) * NUM_CROP_SAMPLERS,
    max_crop_trials=(25,) * NUM_CROP_SAMPLERS,
    crop_emit_mode='center',
)

# Zoom out: place the image on a canvas up to 4x its size (teaches small objects).
_RANDOM_PAD = dict(rand_pad_prob=0.5, max_pad_scale=4.0)

# Photometric jitter in HSL space and contrast, each applied with probability 0.5.
_COLOR_JITTER = dict(
    random_hue_prob=0.5, max_random_hue=18,
    random_saturation_prob=0.5, max_random_saturation=32,
    random_illumination_prob=0.5, max_random_illumination=32,
    random_contrast_prob=0.5, max_random_contrast=0.5,
)

INTER_BILINEAR, INTER_RANDOM = 1, 10
# MXNet decodes with at most (CPUs - 1) threads whatever is asked; ask for all.
PREPROCESS_THREADS = os.cpu_count() or 1

cfg = SimpleNamespace(
    train=dict(
        **_RANDOM_CROP, **_RANDOM_PAD, **_COLOR_JITTER,
        rand_mirror_prob=0.5,
        inter_method=INTER_RANDOM,
        resize_mode='force',
        shuffle=True,
        seed=233,
        preprocess_threads=PREPROCESS_THREADS,
    ),
    valid=dict(
        rand_crop_prob=0.0,
        num_crop_sampler=0,
        rand_pad_prob=0.0,
        max_pad_scale=1.0,
        rand_mirror_prob=0.0,
        inter_method=INTER_BILINEAR,
        resize_mode='force',
        shuffle=False,
        seed=0,
        preprocess_threads=PREPROCESS_THREADS,
    ),
)
