"""The recipe of the shipped demo model (``model/``): dataset, network and schedule, used by
``bench/train.py`` and quoted in ``model/README.md``, plus the export of a training checkpoint
as the inference model ``demo.py`` loads."""
import json
import os
from dataclasses import dataclass
from typing import Optional, Tuple

import mxnet as mx

from dataset.synthetic import DISTRACTORS, PHOTO_NEGATIVES
from symbol import model_io


@dataclass(frozen=True)
class Recipe:
    network: str
    data_shape: int
    num_train: int
    num_val: int
    data_seed: int
    epochs: int
    batch_size: int
    optimizer: str
    lr: float
    wd: float
    lr_steps: Tuple[int, ...]
    lr_factor: float
    seed: int
    class_names: str = 'synthetic'
    num_class: int = 4
    nms_thresh: float = 0.45
    min_neg_samples: int = 0  # hard negatives mined at least per image (MultiBoxTarget)
    preset_overrides: Optional[dict] = None
    augment_overrides: Optional[dict] = None
    synthetic_settings: Optional[dict] = None  # overrides of dataset.synthetic.SETTINGS


# The network underfits the synthetic shapes in the time budget, so augmentation that changes
# what it must learn costs more than it teaches: random crops (30-100% of the image) enlarge
# the objects, leaving the small ones at their test-time size in few training images (20
# epochs at 224 pixels: mAP 0.61 with crops, 0.77 without); zooming out by up to 4x would
# shrink many below the smallest anchor (60 epochs at 192: 0.845 with, 0.866 without); the
# colours are random anyway.  Mirroring stays.
SYNTHETIC_AUGMENTATION = {'rand_crop_prob': 0, 'rand_pad_prob': 0, 'random_hue_prob': 0,
                          'random_saturation_prob': 0, 'random_illumination_prob': 0,
                          'random_contrast_prob': 0}

# In the same time, more images seen fewer times generalise better (one x0.1 step at about 5/6 of
# the run in each case): 1000 images x 48 epochs mAP 0.897, 2000 x 24 0.902, 3000 x 16 0.923.
# Real photographs (dataset.synthetic.PHOTO_NEGATIVES: 15% object-free photo crops, 25% shapes
# over a photo) teach that a photograph is background, but MultiBoxTarget mines no negatives in
# an image without objects unless min_neg_samples > 0; with 32 the full run gave mAP 0.911 and
# 2.25 false alarms per held-out photo (2 of 4 without any), without photos 0.923 and 3.75 (1 of
# 4), with photos and min_neg_samples 0 0.899 and 1.00 (1 of 4).  The two portraits still fired
# ("cross" on the faces, "triangle" on stars and badges): unlabelled distractors in 40% of the
# training images (stars; soft, shaded blobs with spots) took that to 0.25 (3 of 4 without any)
# at mAP 0.906 (model/README.md, run G).
DEMO = Recipe(network='mobilenet_0.25', data_shape=224, num_train=3000, num_val=200,
              data_seed=0, epochs=16, batch_size=16, optimizer='adam', lr=0.004, wd=0.0005,
              lr_steps=(13,), lr_factor=0.1, seed=0, augment_overrides=SYNTHETIC_AUGMENTATION,
              synthetic_settings=dict(PHOTO_NEGATIVES, **DISTRACTORS), min_neg_samples=32)


def recipe_argv(recipe, data, prefix, epochs=None):
    """train.py arguments of ``recipe`` on the prepared synthetic ``data`` (the dict of
    ``dataset.synthetic.prepare``)."""
    return [
        '--network', recipe.network, '--data-shape', str(recipe.data_shape),
        '--train-path', data['train_rec'], '--val-path', data['val_rec'],
        '--num-class', str(recipe.num_class), '--class-names', recipe.class_names,
        '--label-width', str(data['label_width']), '--pretrained', '', '--cpu',
        '--batch-size', str(recipe.batch_size), '--end-epoch', str(epochs or recipe.epochs),
        '--optimizer', recipe.optimizer, '--lr', str(recipe.lr), '--wd', str(recipe.wd),
        '--lr-steps', ','.join(map(str, recipe.lr_steps)), '--lr-factor', str(recipe.lr_factor),
        '--seed', str(recipe.seed), '--nms', str(recipe.nms_thresh), '--prefix', prefix,
        '--min-neg-samples', str(recipe.min_neg_samples),
    ] + (['--preset-overrides', json.dumps(recipe.preset_overrides)]
         if recipe.preset_overrides else []) \
      + (['--augment-overrides', json.dumps(recipe.augment_overrides)]
         if recipe.augment_overrides else [])


def inference_prefix(directory, recipe):
    """``<directory>/ssd_<network>_<shape>``, the name demo.py derives from its flags."""
    return os.path.join(directory, 'ssd_%s_%d' % (recipe.network, recipe.data_shape))


def export_inference_model(recipe, train_prefix, epoch, directory):
    """Write the test symbol (single ``detection`` output), the parameters of checkpoint
    ``epoch`` and the training run's model spec under ``inference_prefix(directory,
    recipe)``; returns the written paths."""
    spec = model_io.read_spec(train_prefix)
    net = model_io.inference_symbol(spec)
    arg_params, aux_params = model_io.load_params(train_prefix, epoch)
    prefix = inference_prefix(directory, recipe)
    return list(model_io.export_model(prefix, epoch, net, arg_params, aux_params, spec)) \
        + [model_io.spec_path(prefix)]


def check_inference_model(prefix, epoch, data_shape):
    """Bind the exported model once (raises if symbol and parameters disagree)."""
    net = model_io.load_symbol(prefix)
    arg_params, aux_params = model_io.load_params(prefix, epoch)
    return model_io.bind_for_inference(net, arg_params, aux_params,
                                       mx.io.DataDesc('data', (1, 3, data_shape, data_shape)),
                                       mx.cpu(), model_io.params_path(prefix, epoch))
