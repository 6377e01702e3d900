"""PASCAL VOC: the VOCdevkit layout (VOC<year>/{Annotations,JPEGImages,ImageSets/Main}) and its
XML annotations.  `VocDirectory` reads any tree with that layout (the synthetic dataset writes
one); `PascalVoc` locates it inside a VOCdevkit; `load_pascal` combines years and sets."""
import os
import xml.etree.ElementTree as ET

from .concat_db import ConcatDB
from .imdb import BAD_ANNOTATION, MISSING_ANNOTATION, Imdb, load_class_names

VOC_NAMES = 'pascal_voc.names'
IMAGE_EXTENSION = '.jpg'


class AnnotationError(ValueError):
    """A VOC XML file that cannot be used; the message names the file and the field."""

    def __init__(self, path, detail):
        super().__init__('%s: %s' % (path, detail))
        self.path = path
        self.detail = detail


def parse_voc_xml(xml_path):
    """Read one VOC annotation: returns (filename, (width, height), objects) where objects are
    (name, xmin, ymin, xmax, ymax, difficult) with the XML's 1-based pixel coordinates."""
    try:
        root = ET.parse(xml_path).getroot()
    except (ET.ParseError, OSError) as err:
        raise AnnotationError(xml_path, 'not valid XML (%s)' % err)
    size = (_number(root, 'size/width', xml_path), _number(root, 'size/height', xml_path))
    if size[0] <= 0 or size[1] <= 0:
        raise AnnotationError(xml_path, '<size> must be positive, got %gx%g' % size)
    objects = []
    for k, obj in enumerate(root.findall('object')):
        name = (obj.findtext('name') or '').strip()
        where = 'object %d (%s)' % (k, name or 'no <name>')
        box = [_number(obj, 'bndbox/' + tag, xml_path, where)
               for tag in ('xmin', 'ymin', 'xmax', 'ymax')]
        difficult = int(_number(obj, 'difficult', xml_path, where, default=0))
        objects.append((name, *box, difficult))
    return (root.findtext('filename') or '').strip(), size, objects


def _number(node, path, xml_path, where='', default=None):
    text = node.findtext(path)
    field = '%s <%s>' % (where, path) if where else '<%s>' % path
    if text is None or not text.strip():
        if default is not None:
            return default
        raise AnnotationError(xml_path, 'missing %s' % field)
    try:
        return float(text)
    except ValueError:
        raise AnnotationError(xml_path, '%s is not a number: %r' % (field, text))


def normalised_voc_objects(objects, size):
    """VOC pixel indices are 1-based: shift to 0-based and divide by the image size (the
    original project's convention, which its released models were trained with)."""
    width, height = size
    return [(name, (x1 - 1) / width, (y1 - 1) / height, (x2 - 1) / width, (y2 - 1) / height, diff)
            for name, x1, y1, x2, y2, diff in objects]


def add_voc_annotation(imdb, index, xml_path, image_path_for):
    """Parse `xml_path` and add its image to `imdb`; bad or missing files are reported and the
    image dropped.  `image_path_for(filename)` locates the image named in the XML."""
    if not os.path.isfile(xml_path):
        imdb.issues.add(MISSING_ANNOTATION, xml_path, dropped_image=True)
        return None
    try:
        filename, size, objects = parse_voc_xml(xml_path)
    except AnnotationError as err:
        imdb.issues.add(BAD_ANNOTATION, xml_path, err.detail, dropped_image=True)
        return None
    path = image_path_for(filename)
    return imdb.add_image(index, path, normalised_voc_objects(objects, size),
                           size=(int(size[0]), int(size[1])), source=xml_path)


class VocDirectory(Imdb):
    """Images listed in `<data_path>/ImageSets/Main/<image_set>.txt`, annotations in
    `Annotations/<id>.xml`, images in `JPEGImages/<id>.jpg`."""

    def __init__(self, data_path, image_set, class_names=None, true_negative_images=False,
                 name=None):
        classes = load_class_names(class_names, default=VOC_NAMES)
        default_name = '%s_%s' % (os.path.basename(os.path.normpath(data_path)), image_set)
        super().__init__(name or default_name, classes, true_negative_images)
        self.data_path = data_path
        self.image_set = image_set
        for index in self._read_image_set():
            image_path = os.path.join(data_path, 'JPEGImages', index + IMAGE_EXTENSION)
            xml_path = os.path.join(data_path, 'Annotations', index + '.xml')
            add_voc_annotation(self, index, xml_path, lambda _filename, p=image_path: p)

    def _read_image_set(self):
        path = os.path.join(self.data_path, 'ImageSets', 'Main', self.image_set + '.txt')
        if not os.path.isfile(path):
            raise FileNotFoundError('image set list not found: %s' % path)
        with open(path) as f:
            return [line.split()[0] for line in f if line.strip()]


class PascalVoc(VocDirectory):
    """One VOC year and image set of a VOCdevkit, e.g. ('trainval', '2007', 'data/VOCdevkit')."""

    def __init__(self, image_set, year, devkit_path, class_names=None, true_negative_images=False):
        data_path = os.path.join(devkit_path, 'VOC' + str(year))
        if not os.path.isdir(data_path):
            raise FileNotFoundError('VOC%s not found in devkit %s (expected %s)'
                                    % (year, devkit_path, data_path))
        super().__init__(data_path, image_set, class_names, true_negative_images,
                         name='voc_%s_%s' % (year, image_set))
        self.year = str(year)


def split_list(spec):
    return [s.strip() for s in str(spec).split(',') if s.strip()]


def load_pascal(image_set, year, devkit_path, class_names=None, true_negative_images=False):
    """Every (year, set) pair from comma lists, e.g. ('trainval', '2007,2012'), as one Imdb."""
    imdbs = [PascalVoc(s, y, devkit_path, class_names, true_negative_images)
             for y in split_list(year) for s in split_list(image_set)]
    return imdbs[0] if len(imdbs) == 1 else ConcatDB(imdbs)
