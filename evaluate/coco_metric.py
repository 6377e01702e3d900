"""COCO detection metrics (AP@[.5:.95], AP50, AP75, AP small/medium/large) through pycocotools,
as an MXNet ``EvalMetric``.

Ground truth is a COCO instances set (a JSON file, its dict, or a ``pycocotools.coco.COCO``);
the model's normalised detections are turned into pixel ``[x, y, w, h]`` results with each
image's size from that set, and their contiguous class ids into COCO category ids.  Images come
in the order the record file holds them: ``image_ids`` says which COCO image each record is
(``image_ids_from_imglist`` reads it from the .lst the record file was packed from).  For a set
that has no COCO JSON, ``coco_from_imglist`` builds one from the .lst and the images.
"""
import contextlib
import io
import os

import mxnet as mx
import numpy as np

from .eval_metric import DET_WIDTH, _to_numpy

# Names of the first six COCOeval.stats, in its order.
STAT_NAMES = ['AP', 'AP50', 'AP75', 'APs', 'APm', 'APl']
ALL_AREAS = 0          # index of area range 'all' in COCOeval.params.areaRng
IOU_FOR_PR_CURVE = 0   # index of IoU 0.5 in COCOeval.params.iouThrs
DIFFICULT_COLUMN = 5


def _quiet(function, *args, **kwargs):
    """Call a pycocotools function, keeping its prints (returned as text) off stdout."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        result = function(*args, **kwargs)
    return result, out.getvalue()


def load_coco(coco_gt):
    """A ``pycocotools.coco.COCO`` from a path, a dataset dict or a COCO object."""
    from pycocotools.coco import COCO
    if isinstance(coco_gt, COCO):
        return coco_gt
    if isinstance(coco_gt, dict):
        coco = COCO()
        coco.dataset = coco_gt
        _quiet(coco.createIndex)
        return coco
    if not os.path.isfile(str(coco_gt)):
        raise FileNotFoundError('COCO annotation file not found: %s' % coco_gt)
    return _quiet(COCO, str(coco_gt))[0]


def category_ids_for(coco, class_names=None):
    """COCO category id of each contiguous class id.  With ``class_names`` classes are matched
    by name (as the dataset readers do); without, categories in ascending id order."""
    by_name = {c['name']: c['id'] for c in coco.loadCats(coco.getCatIds())}
    if class_names is None:
        return sorted(by_name.values())
    missing = [n for n in class_names if n not in by_name]
    if missing:
        raise ValueError('class names not among the COCO categories: %s (categories: %s)'
                         % (', '.join(missing[:5]), ', '.join(sorted(by_name)[:10])))
    return [by_name[n] for n in class_names]


class CocoMetric(mx.metric.EvalMetric):
    """COCO box AP of the detections ``preds[pred_idx]`` (B, N, 6) rows [cls, score, xmin,
    ymin, xmax, ymax] (cls < 0 ignored); labels are not used, the ground truth is ``coco_gt``.

    ``image_ids``: the COCO image id of each record, in iteration order; ``class_names``: the
    model's classes (matched to categories by name; None: ascending category ids)."""

    def __init__(self, coco_gt, image_ids, class_names=None, pred_idx=0):
        self.coco = load_coco(coco_gt)
        self.image_ids = list(image_ids)
        self.category_ids = category_ids_for(self.coco, class_names)
        categories = {c['id']: c['name'] for c in self.coco.loadCats(self.category_ids)}
        self.class_names = (list(class_names) if class_names is not None
                            else [categories[c] for c in self.category_ids])
        self.pred_idx = int(pred_idx)
        self._sizes = {i['id']: (i['width'], i['height']) for i in self.coco.dataset['images']}
        unknown = [i for i in self.image_ids if i not in self._sizes]
        if unknown:
            raise ValueError('image ids not in the COCO set: %s' % unknown[:5])
        self._results, self._seen, self._eval, self.summary_text = [], [], None, ''
        super(CocoMetric, self).__init__('coco')

    def reset(self):
        super(CocoMetric, self).reset()
        self._results, self._seen, self._eval, self.summary_text = [], [], None, ''

    def reset_local(self):
        """COCO AP is a statistic of the whole data set: nothing is local."""

    def update(self, labels, preds):
        dets = _to_numpy(preds[self.pred_idx])
        if dets.ndim != 3 or dets.shape[2] != DET_WIDTH:
            raise ValueError('detections must be (batch, boxes, %d), got shape %s'
                             % (DET_WIDTH, dets.shape))
        if len(self._seen) + dets.shape[0] > len(self.image_ids):
            raise ValueError('more images evaluated (%d) than image ids given (%d)'
                             % (len(self._seen) + dets.shape[0], len(self.image_ids)))
        for image_dets in dets:
            image_id = self.image_ids[len(self._seen)]
            self._results.extend(self._to_results(image_id, image_dets))
            self._seen.append(image_id)
        self._eval = None
        self.num_inst += dets.shape[0]
        self.global_num_inst += dets.shape[0]

    def _to_results(self, image_id, dets):
        dets = dets[dets[:, 0] >= 0].astype(np.float64)
        if dets.size and dets[:, 0].max() >= len(self.category_ids):
            raise ValueError('detection class id %d out of range for %d classes'
                             % (dets[:, 0].max(), len(self.category_ids)))
        width, height = self._sizes[image_id]
        x1, x2 = dets[:, 2] * width, dets[:, 4] * width
        y1, y2 = dets[:, 3] * height, dets[:, 5] * height
        return [{'image_id': image_id, 'category_id': self.category_ids[int(c)],
                 'bbox': [float(a), float(b), float(w), float(h)], 'score': float(s)}
                for c, s, a, b, w, h in zip(dets[:, 0], dets[:, 1], x1, y1, x2 - x1, y2 - y1)]

    def evaluate(self):
        """The pycocotools ``COCOeval`` over the images seen so far (None before any)."""
        from pycocotools.cocoeval import COCOeval
        if self._eval is None and self._seen:
            # loadRes cannot take an empty list; without detections every AP is 0 anyway
            coco_dt = (_quiet(self.coco.loadRes, self._results)[0] if self._results
                       else load_coco({'images': self.coco.dataset['images'], 'annotations': [],
                                       'categories': self.coco.dataset['categories']}))
            evaluator = COCOeval(self.coco, coco_dt, 'bbox')
            evaluator.params.imgIds = sorted(set(self._seen))
            evaluator.params.catIds = sorted(self.category_ids)
            _quiet(evaluator.evaluate)
            _quiet(evaluator.accumulate)
            _, self.summary_text = _quiet(evaluator.summarize)
            self._eval = evaluator
        return self._eval

    def names(self):
        return list(self.class_names)

    def summary(self):
        return self.stats()

    def stats(self):
        """{'AP', 'AP50', 'AP75', 'APs', 'APm', 'APl'}; -1 where COCO has no ground truth."""
        evaluator = self.evaluate()
        if evaluator is None:
            return {name: float('nan') for name in STAT_NAMES}
        return {name: float(v) for name, v in zip(STAT_NAMES, evaluator.stats)}

    def _category_slot(self, cls):
        return sorted(self.category_ids).index(self.category_ids[cls])

    def class_aps(self):
        """AP@[.5:.95] per class (all areas, 100 detections), NaN without ground truth."""
        evaluator = self.evaluate()
        aps = []
        for cls in range(len(self.category_ids)):
            if evaluator is None:
                aps.append(float('nan'))
                continue
            precision = evaluator.eval['precision'][:, :, self._category_slot(cls), ALL_AREAS, -1]
            valid = precision[precision > -1]
            aps.append(float(valid.mean()) if valid.size else float('nan'))
        return aps

    def pr_curves(self):
        """{class name: (recall, precision)} at IoU 0.5 on COCO's 101 recall points."""
        evaluator = self.evaluate()
        if evaluator is None:
            return {}
        recall = np.asarray(evaluator.params.recThrs)
        curves = {}
        for cls, name in enumerate(self.class_names):
            precision = evaluator.eval['precision'][IOU_FOR_PR_CURVE, :,
                                                    self._category_slot(cls), ALL_AREAS, -1]
            if np.all(precision > -1):
                curves[name] = (recall, precision)
        return curves

    def get(self):
        stats = self.stats()
        return list(stats), list(stats.values())


def image_ids_from_imglist(lst_path, coco):
    """COCO image id of each .lst line, matching the .lst path to an image's file_name
    exactly, else by base name."""
    from dataset.imdb import read_imglist
    images = coco.dataset['images']
    by_file = {i['file_name']: i['id'] for i in images}
    by_base = {}
    for image in images:
        by_base.setdefault(os.path.basename(image['file_name']), []).append(image['id'])
    ids = []
    for lineno, (_, _, path) in enumerate(read_imglist(lst_path), 1):
        candidates = ([by_file[path]] if path in by_file
                      else by_base.get(os.path.basename(path), []))
        if len(candidates) != 1:
            raise ValueError('%s:%d: image %r is %s in the COCO set' % (
                lst_path, lineno, path, 'ambiguous' if candidates else 'not found'))
        ids.append(candidates[0])
    return ids


def coco_from_imglist(lst_path, image_root, class_names, use_difficult=False):
    """A COCO ground-truth dict for a detection .lst (normalised labels): image sizes are read
    from the image files under ``image_root``, image ids are the .lst line numbers (0-based),
    category ids are class id + 1.  Difficult objects become crowd regions (which COCO
    neither requires nor penalises) unless ``use_difficult``."""
    from dataset.imdb import read_imglist
    from PIL import Image
    images, annotations = [], []
    for image_id, (_, label, path) in enumerate(read_imglist(lst_path)):
        full_path = os.path.join(image_root, path)
        if not os.path.isfile(full_path):
            raise FileNotFoundError('%s line %d: image not found: %s'
                                    % (lst_path, image_id + 1, full_path))
        with Image.open(full_path) as image:
            width, height = image.size
        images.append({'id': image_id, 'file_name': path, 'width': width, 'height': height})
        for row in label[label[:, 0] >= 0]:
            x, y = float(row[1]) * width, float(row[2]) * height
            w, h = float(row[3]) * width - x, float(row[4]) * height - y
            crowd = int(row.size > DIFFICULT_COLUMN and row[DIFFICULT_COLUMN] > 0
                        and not use_difficult)
            annotations.append({'id': len(annotations) + 1, 'image_id': image_id,
                                'category_id': int(row[0]) + 1, 'bbox': [x, y, w, h],
                                'area': w * h, 'iscrowd': crowd})
    categories = [{'id': i + 1, 'name': n} for i, n in enumerate(class_names)]
    return {'images': images, 'annotations': annotations, 'categories': categories}
