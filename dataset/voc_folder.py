"""A folder of VOC-style XML annotations (as written by labelImg and similar tools), with the
images next to them or in a separate folder; no ImageSets lists needed."""
import glob
import os

from .imdb import Imdb, load_class_names
from .pascal_voc import AnnotationError, add_voc_annotation, parse_voc_xml

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.JPG', '.JPEG', '.PNG')


class VocFolder(Imdb):
    """Every `*.xml` in `anno_dir` (sorted); the image is the XML's <filename> in `image_dir`
    (default: `anno_dir`), or failing that an image with the XML's stem.  Without
    `class_names` the classes are all object names found, sorted alphabetically."""

    def __init__(self, anno_dir, image_dir=None, class_names=None, true_negative_images=False):
        xml_files = sorted(glob.glob(os.path.join(anno_dir, '*.xml')))
        if not xml_files:
            raise FileNotFoundError('no .xml annotation files in %s' % anno_dir)
        classes = (load_class_names(class_names) if class_names
                   else sorted(_object_names(xml_files)))
        name = os.path.basename(os.path.normpath(anno_dir))
        super().__init__(name, classes, true_negative_images)
        self.image_dir = image_dir or anno_dir
        for xml_path in xml_files:
            stem = os.path.splitext(os.path.basename(xml_path))[0]
            add_voc_annotation(self, stem, xml_path,
                               lambda filename, s=stem: self._image_path(filename, s))

    def _image_path(self, filename, stem):
        candidates = [os.path.join(self.image_dir, filename)] if filename else []
        candidates += [os.path.join(self.image_dir, stem + ext) for ext in IMAGE_EXTENSIONS]
        return next((p for p in candidates if os.path.isfile(p)), candidates[0])


def _object_names(xml_files):
    names = set()
    for xml_path in xml_files:
        try:
            names.update(obj[0] for obj in parse_voc_xml(xml_path)[2] if obj[0])
        except AnnotationError:
            pass  # reported when the file is loaded
    return names
