"""Official-style, file-based PASCAL VOC evaluation over a VOCdevkit, for reporting on VOC.

Detections are written as the devkit's results files (``comp4_det_<set>_<class>.txt``, lines
``<image id> <score> <xmin> <ymin> <xmax> <ymax>`` in 1-based pixels) and scored against the
XML annotations with the devkit's rules: inclusive pixel boxes (width = xmax - xmin + 1),
difficult objects ignored, and the 11-point metric for VOC2007 (years before 2010).
Matching and AP are the same code as the in-memory metric (``average_precision``).
"""
import logging
import os
import pickle

import numpy as np

from dataset.pascal_voc import parse_voc_xml

from .average_precision import ClassRecords, match_detections
from .eval_metric import mean_of_defined

# Where things live inside a VOCdevkit (str.format templates).
DEVKIT_LAYOUT = {
    'annotation': os.path.join('VOC{year}', 'Annotations', '{image_id}.xml'),
    'image_set': os.path.join('VOC{year}', 'ImageSets', 'Main', '{image_set}.txt'),
    'results': os.path.join('results', 'VOC{year}', 'Main', '{comp_id}_det_{image_set}_{cls}.txt'),
}
COMP_ID = 'comp4'               # "any training data" competition, as the original used
PIXEL_OFFSET = 1.0              # devkit boxes are inclusive pixel indices
FIRST_YEAR_WITH_AREA_AP = 2010  # the devkit switched from 11-point to area AP in VOC2010
DET_LINE_FIELDS = 6

logger = logging.getLogger(__name__)


def parse_voc_rec(xml_path):
    """Objects of one annotation file: [{'name', 'difficult', 'bbox': [x1, y1, x2, y2]}]
    with the XML's 1-based pixel coordinates."""
    _, _, objects = parse_voc_xml(xml_path)
    return [{'name': name, 'difficult': int(diff), 'bbox': [x1, y1, x2, y2]}
            for name, x1, y1, x2, y2, diff in objects]


def read_image_set(imageset_file):
    with open(imageset_file) as f:
        return [line.split()[0] for line in f if line.strip()]


def load_annotations(annopath, image_ids, cache_file=None):
    """{image id: parse_voc_rec(...)} for every id; ``annopath`` is a template with ``{}``
    for the id.  With ``cache_file`` the parsed annotations are pickled there and reused
    while they cover the same ids."""
    if cache_file and os.path.isfile(cache_file):
        with open(cache_file, 'rb') as f:
            cached = pickle.load(f)
        if set(cached) == set(image_ids):
            return cached
        logger.info('annotation cache %s is for other images, rebuilding', cache_file)
    annotations = {image_id: parse_voc_rec(annopath.format(image_id)) for image_id in image_ids}
    if cache_file:
        os.makedirs(os.path.dirname(os.path.abspath(cache_file)), exist_ok=True)
        with open(cache_file, 'wb') as f:
            pickle.dump(annotations, f)
    return annotations


def read_detection_file(det_file):
    """(image ids, scores (N,), boxes (N, 4)) of a results file; bad lines raise with
    file:line."""
    image_ids, values = [], []
    with open(det_file) as f:
        for lineno, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != DET_LINE_FIELDS:
                raise ValueError('%s:%d: expected "image_id score xmin ymin xmax ymax", got %r'
                                 % (det_file, lineno, line.rstrip('\n')))
            try:
                values.append([float(v) for v in fields[1:]])
            except ValueError as err:
                raise ValueError('%s:%d: %s' % (det_file, lineno, err))
            image_ids.append(fields[0])
    values = np.array(values, dtype=np.float64).reshape(-1, DET_LINE_FIELDS - 1)
    return image_ids, values[:, 0], values[:, 1:]


def voc_eval(detpath, annopath, imageset_file, classname, cache_dir=None, ovthresh=0.5,
             use_07_metric=False, use_difficult=False):
    """Devkit-style evaluation of one class.

    ``detpath``: results file template with ``{}`` for the class name; ``annopath``:
    annotation template with ``{}`` for the image id; ``imageset_file``: the list of image
    ids evaluated.  Returns (recall, precision, ap)."""
    image_ids = read_image_set(imageset_file)
    cache_file = (os.path.join(cache_dir, os.path.basename(imageset_file) + '_annots.pkl')
                  if cache_dir else None)
    annotations = load_annotations(annopath, image_ids, cache_file)
    det_file = detpath.format(classname)
    det_ids, scores, boxes = read_detection_file(det_file)
    unknown = sorted(set(det_ids) - set(annotations))
    if unknown:
        raise ValueError('%s: image ids not in %s: %s'
                         % (det_file, imageset_file, ', '.join(unknown[:5])))
    records = ClassRecords()
    det_ids = np.array(det_ids, dtype=object)
    for image_id in image_ids:
        objects = [o for o in annotations[image_id] if o['name'] == classname]
        gt_boxes = np.array([o['bbox'] for o in objects], dtype=np.float64).reshape(-1, 4)
        ignored = np.array([o['difficult'] and not use_difficult for o in objects], dtype=bool)
        mine = det_ids == image_id
        order, flags = match_detections(boxes[mine], scores[mine], gt_boxes, ignored, ovthresh,
                                        PIXEL_OFFSET)
        records.add(scores[mine][order], flags, np.count_nonzero(~ignored))
    recall, precision = records.curve()
    return recall, precision, records.average_precision(use_07_metric)


def voc_pixel_boxes(boxes, width, height):
    """Normalised boxes -> the devkit's 1-based pixels (inverse of the dataset's
    ``(x - 1) / width``)."""
    scale = np.array([width, height, width, height], dtype=np.float64)
    return np.asarray(boxes, dtype=np.float64) * scale + PIXEL_OFFSET


def write_voc_results(results_template, image_ids, detections, image_sizes, class_names):
    """Write one devkit results file per class.

    ``results_template``: path with ``{}`` for the class name; ``detections``: per image an
    (N, 6) array [cls, score, xmin, ymin, xmax, ymax] normalised (rows with cls < 0 are
    skipped); ``image_sizes``: per image (width, height).  Returns the written paths."""
    if not len(image_ids) == len(detections) == len(image_sizes):
        raise ValueError('image_ids, detections and image_sizes differ in length: %d, %d, %d'
                         % (len(image_ids), len(detections), len(image_sizes)))
    lines = {cls: [] for cls in range(len(class_names))}
    for image_id, dets, (width, height) in zip(image_ids, detections, image_sizes):
        dets = np.asarray(dets, dtype=np.float64).reshape(-1, 6)
        dets = dets[dets[:, 0] >= 0]
        pixels = voc_pixel_boxes(dets[:, 2:6], width, height)
        for cls, score, box in zip(dets[:, 0].astype(int), dets[:, 1], pixels):
            if cls >= len(class_names):
                raise ValueError('image %s: detection class id %d out of range for %d class '
                                 'names' % (image_id, cls, len(class_names)))
            lines[cls].append('%s %.6f %.1f %.1f %.1f %.1f\n' % ((image_id, score) + tuple(box)))
    paths = []
    for cls, name in enumerate(class_names):
        path = results_template.format(name)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, 'w') as f:
            f.writelines(lines[cls])
        paths.append(path)
    return paths


def evaluate_voc_detections(devkit_path, year, image_set, class_names, image_ids, detections,
                            image_sizes, ovthresh=0.5, use_difficult=False, cache_dir=None):
    """Write the results files into the devkit and evaluate every class the way the devkit
    does for that year.  Returns {class name: AP} and 'mAP'."""
    fill = {'year': year, 'image_set': image_set, 'comp_id': COMP_ID}
    results_template = os.path.join(devkit_path, DEVKIT_LAYOUT['results'].format(cls='{}', **fill))
    annopath = os.path.join(devkit_path, DEVKIT_LAYOUT['annotation'].format(image_id='{}', **fill))
    imageset_file = os.path.join(devkit_path, DEVKIT_LAYOUT['image_set'].format(**fill))
    write_voc_results(results_template, image_ids, detections, image_sizes, class_names)
    use_07_metric = int(year) < FIRST_YEAR_WITH_AREA_AP
    aps = {name: voc_eval(results_template, annopath, imageset_file, name, cache_dir, ovthresh,
                          use_07_metric, use_difficult)[2]
           for name in class_names}
    aps['mAP'] = mean_of_defined(list(aps.values()))
    return aps
