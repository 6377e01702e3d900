"""Real photographs without any of the synthetic shapes: backgrounds and object-free images
for the synthetic generator (``dataset.synthetic``), and a held-out set on which a shapes
model should detect nothing (``evaluate.real_photos``).

The photos are committed under ``data/photos/`` (about 400 kB), each one public domain or CC0
(sources and licences in ``data/photos/README.md`` and in ``PHOTOS`` below), downscaled to at
most 384 pixels a side.  Grey photos are used as grey 3-channel images.  The HELD_OUT photos
never reach training.
"""
import os
from functools import lru_cache

import cv2
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PHOTO_DIR = os.path.join(ROOT, 'data', 'photos')


# name: (role, where it comes from, licence).  'train' photos may be drawn into training
# images; 'heldout' ones only measure false alarms: natural scenes (a portrait, an astronaut,
# a cat, a rocket launch), the kind of photo a new user tries first.
PHOTOS = {
    'camera': ('train', 'scikit-image 0.21 data/camera.png (Lav Varshney)', 'CC0'),
    'coffee': ('train', 'scikit-image 0.21 data/coffee.png (Rachel Michetti)', 'CC0'),
    'hubble_deep_field': ('train', 'scikit-image 0.21 data/hubble_deep_field.jpg (NASA)',
                          'public domain'),
    'retina': ('train', 'scikit-image 0.21 data/retina.jpg (Mikael Haggstrom, Wikimedia)',
               'CC0'),
    'brick': ('train', 'scikit-image 0.21 data/brick.png (CC0Textures)', 'CC0'),
    'grass': ('train', 'scikit-image 0.21 data/grass.png (linolafett, DeviantArt)', 'CC0'),
    'gravel': ('train', 'scikit-image 0.21 data/gravel.png (CC0Textures)', 'CC0'),
    'clock_motion': ('train', 'scikit-image 0.21 data/clock_motion.png (Stefan van der Walt)',
                     'public domain'),
    'text': ('train', 'scikit-image 0.21 data/text.png (Wikipedia File:Corner.png)',
             'public domain'),
    'cell': ('train', 'scikit-image 0.21 data/cell.png (quantitative phase image)', 'CC0'),
    'grace_hopper': ('heldout', "matplotlib 3.10 sample_data/grace_hopper.jpg (US Navy)",
                     'public domain'),
    'astronaut': ('heldout', 'scikit-image 0.21 data/astronaut.png (NASA)', 'public domain'),
    'chelsea': ('heldout', 'scikit-image 0.21 data/chelsea.png (Stefan van der Walt)', 'CC0'),
    'rocket': ('heldout', 'scikit-image 0.21 data/rocket.jpg (SpaceX)', 'public domain'),
}
TRAIN = tuple(name for name, (role, _, _) in PHOTOS.items() if role == 'train')
HELD_OUT = tuple(name for name, (role, _, _) in PHOTOS.items() if role == 'heldout')


def photo_path(name):
    if name not in PHOTOS:
        raise ValueError('unknown photo %r (known: %s)' % (name, ', '.join(PHOTOS)))
    return os.path.join(PHOTO_DIR, name + '.jpg')


@lru_cache(maxsize=None)
def load_photo(name):
    """The photo as an RGB uint8 array (read once per process; do not modify it)."""
    path = photo_path(name)
    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    if bgr is None:
        raise OSError('%s: photo missing or unreadable (it is part of the repository)' % path)
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    rgb.setflags(write=False)
    return rgb


def random_crop(rng, height, width, names=TRAIN, scale=(0.3, 1.0)):
    """A height x width RGB float32 crop of one of the photos `names`, chosen by `rng`: a
    window of the target's aspect ratio whose shorter side is `scale` of the photo's shorter
    side (as large as fits), at a random spot, mirrored half of the time, with its colour
    channels in a random order (more colour variety from few photos), resized to the target."""
    photo = load_photo(names[rng.integers(len(names))])
    photo_h, photo_w = photo.shape[:2]
    fraction = rng.uniform(*scale)
    crop_h = fraction * min(photo_h, photo_w) * (height / min(height, width))
    crop_w = crop_h * width / height
    shrink = min(1.0, photo_h / crop_h, photo_w / crop_w)  # keep the window inside the photo
    crop_h, crop_w = max(1, int(crop_h * shrink)), max(1, int(crop_w * shrink))
    top = int(rng.integers(photo_h - crop_h + 1))
    left = int(rng.integers(photo_w - crop_w + 1))
    window = photo[top:top + crop_h, left:left + crop_w]
    if rng.random() < 0.5:
        window = window[:, ::-1]
    window = np.ascontiguousarray(window[:, :, rng.permutation(3)])
    interpolation = cv2.INTER_AREA if crop_w > width else cv2.INTER_LINEAR
    return cv2.resize(window, (width, height), interpolation=interpolation).astype(np.float32)
