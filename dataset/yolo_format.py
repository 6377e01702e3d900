"""YOLO/darknet labels: one `<image stem>.txt` per image with lines `cls cx cy w h`
(0-based class id, box centre and size normalised to [0, 1])."""
import os

from .imdb import BAD_ANNOTATION, MISSING_ANNOTATION, Imdb, load_class_names

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp')


class LabelFileError(ValueError):
    pass


class YoloFormat(Imdb):
    """Images listed in `list_file` (one per line: an id, or a path relative to `image_dir`;
    `extension` is appended to ids without one), labels in `label_dir/<id><label_extension>`."""

    def __init__(self, list_file, image_dir, label_dir, class_names, extension='.jpg',
                 label_extension='.txt', true_negative_images=False, name=None):
        super().__init__(name or os.path.splitext(os.path.basename(list_file))[0],
                         load_class_names(class_names), true_negative_images)
        for entry in _read_list(list_file):
            has_ext = os.path.splitext(entry)[1].lower() in IMAGE_EXTENSIONS
            image_path = os.path.join(image_dir, entry if has_ext else entry + extension)
            stem = os.path.splitext(entry)[0] if has_ext else entry
            label_path = os.path.join(label_dir, (os.path.basename(stem) if os.path.isabs(stem)
                                                  else stem) + label_extension)
            self._add_labelled_image(stem, image_path, label_path)

    def _add_labelled_image(self, index, image_path, label_path):
        if not os.path.isfile(label_path):
            self.issues.add(MISSING_ANNOTATION, label_path, dropped_image=True)
            return
        try:
            objects = parse_yolo_labels(label_path)
        except LabelFileError as err:
            self.issues.add(BAD_ANNOTATION, label_path, str(err), dropped_image=True)
            return
        self.add_image(index, image_path, objects, source=label_path)


def parse_yolo_labels(label_path):
    """Objects (cls_id, xmin, ymin, xmax, ymax, 0) of one label file; LabelFileError names the
    line that is not `cls cx cy w h`."""
    objects = []
    with open(label_path) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            fields = line.split()
            try:
                cls, cx, cy, w, h = (float(v) for v in fields)
            except ValueError:
                raise LabelFileError('line %d: expected 5 numbers "cls cx cy w h", got %r'
                                     % (lineno, line.strip()))
            if cls != int(cls):
                raise LabelFileError('line %d: class id %r is not an integer' % (lineno, fields[0]))
            objects.append((int(cls), cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, 0))
    return objects


def _read_list(list_file):
    with open(list_file) as f:
        return [line.strip() for line in f if line.strip()]
