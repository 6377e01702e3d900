"""Synthetic shapes: the project's offline stand-in for PASCAL VOC.

Images of about `data_shape` pixels (a side, or (height, width); each side varies by +-10%)
show 1-5 filled shapes (circle, square, triangle, cross), mildly stretched and rotated, 8%-60%
of the shorter image side (small ones less often than large ones), in random colours that
stand out from the local background, on textured backgrounds (smooth colour fields, stripes or
speckle, clutter lines, pixel noise).  Larger shapes are drawn
first and later ones may cover up to 30% of an earlier one's box.  About 5% of the images have
no objects.  In the training split, some images show the shapes over a crop of a real
photograph instead, and some are object-free photo crops (`dataset.photos`; the held-out photos
are never used), so that a shapes model learns that photographs are background; some have
unlabelled distractors (stars, shaded blobs) under the shapes, so that it learns that not
every compact thing is one of the shapes.  The validation split has neither (the same images
as generator version 1).  Everything is a
function of (seed, split, image number), so a dataset is reproducible and any image can be
regenerated alone.

`generate` writes a VOC-format tree (JPEGImages, Annotations, ImageSets/Main/{train,val}.txt);
`prepare` also packs both splits into RecordIO for `DetRecordIter`.
"""
import json
import math
import os
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
from tqdm import tqdm

from symbol.model_io import image_hw, shape_value

from . import photos
from .imdb import NAMES_DIR, load_class_names
from .pascal_voc import VocDirectory
from .prepare import prepare_imdb

NAMES_FILE = os.path.join(NAMES_DIR, 'synthetic.names')
CLASSES = load_class_names(NAMES_FILE)
SPLITS = ('train', 'val')
GENERATOR_VERSION = 2  # bump when the drawing changes, so cached trees are regenerated

# The difficulty of the task, in one place.
SETTINGS = dict(
    image_side_jitter=0.1,            # each image side is its data_shape side * (1 +- this)
    object_scale=(0.08, 0.6),         # box's longer side / shorter image side, drawn so that
    object_scale_power=0.5,           # side ** power is uniform: ~20% of objects below 15%
    objects_per_image=(1, 2, 3, 4, 5),
    objects_weights=(0.3, 0.3, 0.2, 0.12, 0.08),
    empty_image_prob=0.05,
    max_aspect_stretch=1.3,           # shapes are stretched by up to this factor along one axis
    max_box_covered=0.3,              # part of an earlier box later shapes may cover
    placement_trials=30,
    min_colour_distance=90.0,         # RGB distance between a shape and the background under it
    colour_trials=20,
    outline_prob=0.4,
    cross_arm_halfwidth=(0.25, 0.4),  # of the cross's half length
    background_cells=(2, 8),          # smooth colour field from a grid this coarse
    background_saturation=(0.0, 0.4),
    background_value=(0.15, 0.9),
    stripe_period=(6.0, 40.0),        # pixels
    texture_amplitude=(5.0, 25.0),
    clutter_lines=(0, 6),
    noise_sigma=(2.0, 10.0),
    blur_prob=0.3,
    jpeg_quality=90,
    # Real photographs (dataset.photos.TRAIN), off by default (the shipped model's recipe,
    # train.recipes.DEMO, turns them on with PHOTO_NEGATIVES).  Drawn from a separate random
    # stream, so with both probabilities 0 (or outside photo_splits) every image is as in
    # generator version 1.
    photo_splits=('train',),          # splits that use photos: validation measures the shapes
    photo_empty_prob=0.0,             # object-free crop of a photo
    photo_background_prob=0.0,        # the shapes drawn over a crop of a photo
    photo_crop_scale=(0.3, 1.0),      # crop's shorter side / photo's shorter side
    # Distractors: unlabelled things that are none of the classes, drawn under the shapes --
    # stars (pointed like a triangle, concave like a cross) and soft blobs with darker spots
    # and streaks (compact, shaded, with inner structure, as a face or a badge has).  Off by
    # default; drawn from their own random stream like the photos.
    distractor_splits=('train',),
    distractor_prob=0.0,              # images with distractors
    distractors_per_image=(1, 3),
    star_points=(5, 8),
    star_inner_radius=(0.35, 0.55),   # of the outer radius
    blob_spots=(2, 5),
    blob_wobble=(0.05, 0.18),         # amplitude of each of the outline's 3 slow bulges
    blob_edge_blur=(1.5, 4.0),        # sigma of the soft edge, pixels
)
# The photo mix measured in model/README.md ("Real photographs"), for --synthetic-settings.
PHOTO_NEGATIVES = dict(photo_empty_prob=0.15, photo_background_prob=0.25)
# Distractors in 40% of the training images (model/README.md, run G).
DISTRACTORS = dict(distractor_prob=0.4)


def settings_with(overrides=None):
    """SETTINGS with `overrides` (a dict of some of its keys) applied; an unknown key is an
    error naming it."""
    unknown = sorted(set(overrides or {}) - set(SETTINGS))
    if unknown:
        raise ValueError('unknown synthetic setting(s) %s (known: %s)'
                         % (', '.join(unknown), ', '.join(SETTINGS)))
    return dict(SETTINGS, **(overrides or {}))


def _unit_polygon(name, rng, s):
    """Vertices of a shape centred at 0 with radius about 1."""
    if name == 'circle':
        angles = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        return np.stack([np.cos(angles), np.sin(angles)], 1)
    if name == 'square':
        return np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], float)
    if name == 'triangle':
        angles = np.radians([-90, 30, 150])
        return np.stack([np.cos(angles), np.sin(angles)], 1)
    if name == 'cross':
        t = rng.uniform(*s['cross_arm_halfwidth'])
        return np.array([[-t, -1], [t, -1], [t, -t], [1, -t], [1, t], [t, t], [t, 1], [-t, 1],
                         [-t, t], [-1, t], [-1, -t], [-t, -t]], float)
    raise ValueError('no drawing for synthetic class %r' % name)


def _shape_polygon(name, box_side, rng, s):
    """A stretched, rotated shape whose box has longer side `box_side`, centred at 0."""
    stretch = _random_stretch(rng, s)  # drawn before the cross's arm width, as ever since v1
    return _fitted(_unit_polygon(name, rng, s), stretch, box_side, rng)


def _random_stretch(rng, s):
    return math.exp(rng.uniform(-1, 1) * math.log(s['max_aspect_stretch']))


def _fitted(unit, stretch, box_side, rng):
    """Polygon `unit` stretched by `stretch` along x, rotated at random and scaled so that its
    box has longer side `box_side`, centred at 0."""
    points = unit * [math.sqrt(stretch), 1 / math.sqrt(stretch)]
    angle = rng.uniform(0, 2 * np.pi)
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    points = points @ rotation.T
    extent = (points.max(0) - points.min(0)).max()
    points = points * (box_side / extent)
    return points - (points.max(0) + points.min(0)) / 2


def _hsv_colour(rng, saturation, value):
    hsv = np.uint8([[[rng.integers(0, 180), rng.uniform(*saturation) * 255,
                      rng.uniform(*value) * 255]]])
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def _background(rng, height, width, s):
    cells = rng.integers(s['background_cells'][0], s['background_cells'][1] + 1, size=2)
    grid = np.stack([[_hsv_colour(rng, s['background_saturation'], s['background_value'])
                      for _ in range(cells[1])] for _ in range(cells[0])])
    image = cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
    texture = rng.integers(3)
    amplitude = rng.uniform(*s['texture_amplitude'])
    if texture == 1:  # stripes in a random direction
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        angle, period = rng.uniform(0, np.pi), rng.uniform(*s['stripe_period'])
        phase = (xx * math.cos(angle) + yy * math.sin(angle)) * (2 * np.pi / period)
        image += amplitude * np.sin(phase)[..., None]
    elif texture == 2:  # speckle: blurred noise
        noise = rng.standard_normal((height, width), dtype=np.float32)
        speckle = cv2.GaussianBlur(noise, (0, 0), 1.5)
        image += amplitude * 2 * speckle[..., None]
    for _ in range(rng.integers(s['clutter_lines'][0], s['clutter_lines'][1] + 1)):
        p1, p2 = rng.uniform(0, [width, height]), rng.uniform(0, [width, height])
        colour = _hsv_colour(rng, (0, 1), (0, 1)).tolist()
        cv2.line(image, tuple(int(v) for v in p1), tuple(int(v) for v in p2), colour,
                 int(rng.integers(1, 3)), cv2.LINE_AA)
    return image


def _overlap_area(a, b):
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    return iw * ih if iw > 0 and ih > 0 else 0.0


def _place(polygon, placed, rng, height, width, s):
    """Translate `polygon` to a random spot inside the image (1 pixel margin) where, drawn on
    top, it leaves every earlier box at most `max_box_covered` hidden (counting what earlier
    shapes already cover).  `placed` holds [box, covered area] and is updated; returns the
    moved polygon and its box, or None if no spot is found."""
    low, high = polygon.min(0), polygon.max(0)
    for _ in range(s['placement_trials']):
        centre = rng.uniform(1 - low, [width - 1, height - 1] - high)
        box = np.concatenate([low + centre, high + centre])
        overlaps = [_overlap_area(box, other) for other, _ in placed]
        if all(covered + overlap <= s['max_box_covered'] * _area(other)
               for (other, covered), overlap in zip(placed, overlaps)):
            for entry, overlap in zip(placed, overlaps):
                entry[1] += overlap
            placed.append([box, 0.0])
            return polygon + centre, box
    return None


def _area(box):
    return (box[2] - box[0]) * (box[3] - box[1])


def _contrasting_colour(image, box, rng, s):
    x1, y1, x2, y2 = (int(v) for v in box)
    under = image[y1:y2 + 1, x1:x2 + 1].reshape(-1, 3).mean(0)
    best, best_distance = None, -1.0
    for _ in range(s['colour_trials']):
        colour = _hsv_colour(rng, (0.5, 1.0), (0.35, 1.0))
        distance = float(np.linalg.norm(colour - under))
        if distance >= s['min_colour_distance']:
            return colour
        if distance > best_distance:
            best, best_distance = colour, distance
    return best


def _draw(image, points, colour, rng, s):
    fixed = np.round(points * 16).astype(np.int32)  # 4 fractional bits: sub-pixel edges
    cv2.fillPoly(image, [fixed], colour.tolist(), cv2.LINE_AA, shift=4)
    if rng.random() < s['outline_prob']:
        edge = np.clip(colour * rng.choice([0.4, 1.6]), 0, 255)
        cv2.polylines(image, [fixed], True, edge.tolist(), int(rng.integers(1, 3)), cv2.LINE_AA,
                      shift=4)


def _object_sides(rng, height, width, s, count=None):
    """Longer box sides in pixels (one, or an array of ``count``) as SETTINGS
    ``object_scale`` and ``object_scale_power`` say."""
    power = s['object_scale_power']
    low, high = (v * min(height, width) for v in s['object_scale'])
    return rng.uniform(low ** power, high ** power, count) ** (1 / power)


def _star(points, inner):
    """Vertices of a star with `points` tips, centred at 0, outer radius 1."""
    angles = np.linspace(-np.pi / 2, 1.5 * np.pi, 2 * points, endpoint=False)
    radii = np.where(np.arange(2 * points) % 2 == 0, 1.0, inner)
    return np.stack([radii * np.cos(angles), radii * np.sin(angles)], 1)


def _wobbly_outline(rng, s):
    """A closed outline of radius about 1 with a few slow bulges: round, but no circle."""
    angles = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    radius = np.ones_like(angles)
    for k in (2, 3, 4):
        radius += rng.uniform(*s['blob_wobble']) * np.cos(k * angles + rng.uniform(0, 2 * np.pi))
    return np.stack([radius * np.cos(angles), radius * np.sin(angles)], 1)


def _draw_blob(image, points, box, colour, rng, s):
    """The outline `points` filled with shading and soft edges, with a few darker spots and
    streaks inside its `box`."""
    x1, y1, x2, y2 = box
    centre, axes = ((x1 + x2) / 2, (y1 + y2) / 2), ((x2 - x1) / 2, (y2 - y1) / 2)
    layer = np.zeros(image.shape[:2], np.float32)
    cv2.fillPoly(layer, [np.round(points * 16).astype(np.int32)], 1.0, cv2.LINE_AA, shift=4)
    yy, xx = np.mgrid[0:image.shape[0], 0:image.shape[1]].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    shade = 1 + 0.5 * ((xx - centre[0]) * math.cos(angle) + (yy - centre[1]) * math.sin(angle)) \
        / max(axes)
    paint = np.clip(colour[None, None] * shade[..., None], 0, 255)
    dark = (colour * rng.uniform(0.2, 0.5)).tolist()
    for _ in range(rng.integers(s['blob_spots'][0], s['blob_spots'][1] + 1)):
        spot = rng.uniform([x1, y1], [x2, y2]) * 0.6 + np.array(centre) * 0.4
        radius = max(1, int(rng.uniform(0.06, 0.15) * max(axes) * 2))
        if rng.random() < 0.5:
            cv2.circle(paint, tuple(int(v) for v in spot), radius, dark, -1, cv2.LINE_AA)
        else:
            end = spot + rng.uniform(-1, 1, 2) * max(axes) * 0.6
            cv2.line(paint, tuple(int(v) for v in spot), tuple(int(v) for v in end), dark,
                     max(1, radius // 2), cv2.LINE_AA)
    alpha = cv2.GaussianBlur(layer, (0, 0), rng.uniform(*s['blob_edge_blur']))[..., None]
    image[:] = np.clip(image * (1 - alpha) + paint * alpha, 0, 255).astype(np.uint8)


def _draw_distractors(image, rng, split, s):
    """Unlabelled stars and blobs (see SETTINGS), drawn before the shapes."""
    if split not in s['distractor_splits'] or rng.random() >= s['distractor_prob']:
        return
    height, width = image.shape[:2]
    placed = []
    for _ in range(rng.integers(s['distractors_per_image'][0],
                                s['distractors_per_image'][1] + 1)):
        side = _object_sides(rng, height, width, s)
        kind = 'star' if rng.random() < 0.5 else 'blob'
        if kind == 'star':
            unit = _star(int(rng.integers(s['star_points'][0], s['star_points'][1] + 1)),
                         rng.uniform(*s['star_inner_radius']))
        else:
            unit = _wobbly_outline(rng, s)
        polygon = _fitted(unit, _random_stretch(rng, s), side, rng)
        spot = _place(polygon, placed, rng, height, width, s)
        if spot is None:
            continue
        points, box = spot
        colour = _contrasting_colour(image, box, rng, s)
        if kind == 'star':
            _draw(image, points, colour, rng, s)
        else:
            _draw_blob(image, points, box, colour, rng, s)


def _photo_use(rng, split, s):
    """None, 'empty' (an object-free photo crop) or 'background' (shapes over one)."""
    if split not in s['photo_splits']:
        return None
    draw = rng.random()
    if draw < s['photo_empty_prob']:
        return 'empty'
    return 'background' if draw < s['photo_empty_prob'] + s['photo_background_prob'] else None


def render_image(seed, split, number, data_shape=300, settings=None):
    """(RGB uint8 image, [(class name, xmin, ymin, xmax, ymax) in pixels]) for one image;
    `data_shape`: the image size before jitter, an int or (height, width).
    `settings`: overrides of SETTINGS."""
    s = settings_with(settings)
    rng = np.random.default_rng([seed, SPLITS.index(split), number])
    photo_rng = np.random.default_rng([seed, SPLITS.index(split), number, 1])
    photo_use = _photo_use(photo_rng, split, s)
    jitter = s['image_side_jitter']
    height, width = (int(round(side * rng.uniform(1 - jitter, 1 + jitter)))
                     for side in image_hw(data_shape))
    if photo_use:
        background = photos.random_crop(photo_rng, height, width, scale=s['photo_crop_scale'])
    else:
        background = _background(rng, height, width, s)
    # uint8 while drawing: OpenCV anti-aliases only 8-bit images
    image = np.clip(background, 0, 255).astype(np.uint8)
    _draw_distractors(image, np.random.default_rng([seed, SPLITS.index(split), number, 2]),
                      split, s)
    count = 0 if rng.random() < s['empty_image_prob'] else rng.choice(
        s['objects_per_image'], p=np.array(s['objects_weights']) / sum(s['objects_weights']))
    if photo_use == 'empty':
        count = 0
    sides = sorted(_object_sides(rng, height, width, s, count), reverse=True)
    objects, placed = [], []
    for side in sides:
        name = CLASSES[rng.integers(len(CLASSES))]
        spot = _place(_shape_polygon(name, side, rng, s), placed, rng, height, width, s)
        if spot is None:
            continue
        points, box = spot
        _draw(image, points, _contrasting_colour(image, box, rng, s), rng, s)
        objects.append((name,) + tuple(float(v) for v in box))
    if rng.random() < s['blur_prob']:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.5, 1.0))
    noise = rng.standard_normal(image.shape, dtype=np.float32) * rng.uniform(*s['noise_sigma'])
    return np.clip(image + noise, 0, 255).astype(np.uint8), objects


def image_id(split, number):
    return '%s_%06d' % (split, number)


def voc_xml(filename, width, height, objects):
    """VOC annotation text.  Pixel coordinates are 1-based, as VOC readers expect (they subtract
    1), so the stored value is round(edge) + 1."""
    root = ET.Element('annotation')
    ET.SubElement(root, 'folder').text = 'synthetic'
    ET.SubElement(root, 'filename').text = filename
    size = ET.SubElement(root, 'size')
    for tag, value in (('width', width), ('height', height), ('depth', 3)):
        ET.SubElement(size, tag).text = str(value)
    for name, *box in objects:
        obj = ET.SubElement(root, 'object')
        ET.SubElement(obj, 'name').text = name
        ET.SubElement(obj, 'difficult').text = '0'
        bndbox = ET.SubElement(obj, 'bndbox')
        for tag, value in zip(('xmin', 'ymin', 'xmax', 'ymax'), box):
            ET.SubElement(bndbox, tag).text = str(int(round(value)) + 1)
    ET.indent(root)
    return ET.tostring(root, encoding='unicode')


def _write_image(root, seed, split, number, data_shape, settings):
    image, objects = render_image(seed, split, number, data_shape, settings)
    name = image_id(split, number)
    cv2.imwrite(os.path.join(root, 'JPEGImages', name + '.jpg'), image[:, :, ::-1],
                [cv2.IMWRITE_JPEG_QUALITY, settings['jpeg_quality']])
    with open(os.path.join(root, 'Annotations', name + '.xml'), 'w') as f:
        f.write(voc_xml(name + '.jpg', image.shape[1], image.shape[0], objects))


def generate(out_dir, num_train=1000, num_val=200, seed=0, data_shape=300, num_threads=None,
             progress=True, settings=None):
    """Write the VOC-format tree under `out_dir` (`settings`: overrides of SETTINGS); an
    existing tree made with the same settings is kept as it is.  Returns `out_dir`."""
    settings = settings_with(settings)
    data_shape = shape_value(data_shape)  # 300 and (300, 300) are the same tree
    manifest = dict(version=GENERATOR_VERSION, num_train=num_train, num_val=num_val, seed=seed,
                    data_shape=data_shape, classes=CLASSES, settings=settings,
                    photos=list(photos.TRAIN))
    manifest_path = os.path.join(out_dir, 'synthetic.json')
    if _read_json(manifest_path) == json.loads(json.dumps(manifest)):
        return out_dir
    if os.path.exists(manifest_path):
        os.remove(manifest_path)  # an interrupted run must not look complete
    for sub in ('JPEGImages', 'Annotations', os.path.join('ImageSets', 'Main')):
        os.makedirs(os.path.join(out_dir, sub), exist_ok=True)
    jobs = [(split, n) for split, count in zip(SPLITS, (num_train, num_val)) for n in range(count)]
    with ThreadPoolExecutor(num_threads or os.cpu_count() or 1) as pool:
        drawn = pool.map(lambda job: _write_image(out_dir, seed, job[0], job[1], data_shape,
                                                  settings), jobs)
        list(tqdm(drawn, total=len(jobs), desc='drawing synthetic images', unit='img',
                  disable=not progress))
    for split, count in zip(SPLITS, (num_train, num_val)):
        with open(os.path.join(out_dir, 'ImageSets', 'Main', split + '.txt'), 'w') as f:
            f.writelines(image_id(split, n) + '\n' for n in range(count))
    with open(manifest_path, 'w') as f:
        json.dump(manifest, f, indent=1)
    return out_dir


def _read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def load_split(root, split):
    """The Imdb of one split of a generated tree (object-free images kept)."""
    return VocDirectory(root, split, class_names=CLASSES, true_negative_images=True,
                        name='synthetic_' + split)


def prepare(out_dir, num_train=1000, num_val=200, seed=0, data_shape=300, num_threads=None,
            progress=True, settings=None):
    """Generate the dataset under `out_dir` (`settings`: overrides of SETTINGS) and pack
    `train` (shuffled) and `val` into `<out_dir>/<split>.{rec,idx,lst}`.  Returns the paths,
    `class_names`, `root`, the image counts and `label_width` (the label_pad_width fitting both
    splits)."""
    generate(out_dir, num_train, num_val, seed, data_shape, num_threads, progress, settings)
    info = dict(root=os.path.abspath(out_dir), class_names=list(CLASSES), names_file=NAMES_FILE)
    widths = []
    for split in SPLITS:
        result = prepare_imdb(load_split(out_dir, split), os.path.join(out_dir, split + '.lst'),
                              shuffle=split == 'train', seed=seed, num_threads=num_threads,
                              progress=progress)
        info.update({split + '_rec': result.rec, split + '_idx': result.idx,
                     split + '_lst': result.lst, 'num_' + split: result.num_images})
        widths.append(result.label_width)
    info['label_width'] = max(widths)
    return info
