"""MS COCO instances JSON (`annotations/instances_<set>.json`).

Category ids are not contiguous (1..90 with gaps); classes are matched by name against the
class list, which for the default `mscoco.names` is the official category order, so ids map to
0..79.  Crowd regions (`iscrowd`) are kept as `difficult` objects, which the metric ignores."""
import json
import os

from .imdb import Imdb, load_class_names

COCO_NAMES = 'mscoco.names'


class Coco(Imdb):
    """Images of one COCO annotation file; `image_dir` holds the files named in the JSON.
    `class_names=None` takes the JSON's own categories in ascending id order."""

    def __init__(self, anno_file, image_dir, class_names=COCO_NAMES, true_negative_images=False):
        data = _load_json(anno_file)
        categories = {c['id']: c['name'] for c in _field(data, 'categories', anno_file)}
        classes = (load_class_names(class_names) if class_names
                   else [categories[i] for i in sorted(categories)])
        super().__init__(os.path.splitext(os.path.basename(anno_file))[0], classes,
                         true_negative_images)
        objects_by_image = {}
        for k, ann in enumerate(_field(data, 'annotations', anno_file)):
            where = '%s: annotations[%d]' % (anno_file, k)
            x, y, w, h = _field(ann, 'bbox', where)
            category_id = _field(ann, 'category_id', where)
            name = categories.get(category_id, 'category id %s' % category_id)
            objects_by_image.setdefault(_field(ann, 'image_id', where), []).append(
                (name, x, y, x + w, y + h, ann.get('iscrowd', 0)))
        for k, image in enumerate(_field(data, 'images', anno_file)):
            where = '%s: images[%d]' % (anno_file, k)
            file_name, width, height = (_field(image, f, where)
                                        for f in ('file_name', 'width', 'height'))
            if width <= 0 or height <= 0:
                raise ValueError('%s: image size must be positive, got %sx%s'
                                 % (where, width, height))
            objects = [(name, x1 / width, y1 / height, x2 / width, y2 / height, crowd)
                       for name, x1, y1, x2, y2, crowd in objects_by_image.get(image['id'], [])]
            self.add_image(image['id'], os.path.join(image_dir, file_name), objects,
                           size=(int(width), int(height)),
                           source='%s (%s)' % (file_name, anno_file))


def _load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as err:
        raise ValueError('cannot read COCO annotation file %s: %s' % (path, err))


def _field(record, key, where):
    try:
        return record[key]
    except (KeyError, TypeError):
        raise ValueError('%s: missing field %r' % (where, key))
