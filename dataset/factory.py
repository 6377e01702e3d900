"""Build an image database by dataset kind, the way tools/prepare_dataset.py names them."""
import os

from . import synthetic
from .concat_db import ConcatDB
from .mscoco import Coco
from .pascal_voc import load_pascal, split_list
from .voc_folder import VocFolder
from .yolo_format import YoloFormat

DEFAULT_ROOTS = {
    'pascal': os.path.join('data', 'VOCdevkit'),
    'coco': os.path.join('data', 'coco'),
    'yolo': os.path.join('data', 'yolo'),
    'voc-folder': os.path.join('data', 'voc-folder'),
    'synthetic': os.path.join('data', 'synthetic'),
}
DATASETS = tuple(DEFAULT_ROOTS)


def load_imdb(dataset, image_set, root, year='2007,2012', class_names=None,
              true_negative_images=False, synthetic_options=None):
    """The Imdb of `dataset` (one of DATASETS); `image_set` may list several sets, "a,b".

    pascal: <root>/VOC<year>/... for every year and set.  coco: <root>/annotations/
    instances_<set>.json with images in <root>/<set>/ (or <root>/images/<set>/).  yolo:
    <root>/<set>.txt lists images in <root>/images/, labels in <root>/labels/, class names from
    `class_names` or <root>/classes.names.  voc-folder: XML files in <root>/Annotations/ (or
    <root>), images in <root>/JPEGImages/ (or beside the XML).  synthetic: generated into
    <root> first (`synthetic_options`: num_train, num_val, seed, data_shape); object-free
    images are always kept.
    """
    if dataset == 'pascal':
        return load_pascal(image_set, year, root, class_names, true_negative_images)
    if dataset == 'synthetic':
        synthetic.generate(root, **(synthetic_options or {}))
        return _concat([synthetic.load_split(root, s) for s in split_list(image_set)])
    if dataset == 'voc-folder':
        anno_dir = _first_dir(os.path.join(root, 'Annotations'), root)
        image_dir = _first_dir(os.path.join(root, 'JPEGImages'), anno_dir)
        return VocFolder(anno_dir, image_dir, class_names, true_negative_images)
    if dataset == 'coco':
        return _concat([Coco(os.path.join(root, 'annotations', 'instances_%s.json' % s),
                             _first_dir(os.path.join(root, s), os.path.join(root, 'images', s)),
                             class_names or 'mscoco.names', true_negative_images)
                        for s in split_list(image_set)])
    if dataset == 'yolo':
        names = class_names or os.path.join(root, 'classes.names')
        return _concat([YoloFormat(os.path.join(root, s + '.txt'), os.path.join(root, 'images'),
                                   os.path.join(root, 'labels'), names,
                                   true_negative_images=true_negative_images)
                        for s in split_list(image_set)])
    raise ValueError('unknown dataset %r; choose one of %s' % (dataset, ', '.join(DATASETS)))


def _concat(imdbs):
    return imdbs[0] if len(imdbs) == 1 else ConcatDB(imdbs)


def _first_dir(preferred, fallback):
    return preferred if os.path.isdir(preferred) else fallback
