"""False alarms on real photographs: a model trained on the synthetic shapes should find
nothing in a photograph without them, so every detection there at a confident score is a
false alarm.  Measured on the held-out photos (``dataset.photos.HELD_OUT``), which never reach
training."""
import cv2
import numpy as np

from dataset import photos

CONFIDENT_SCORE = 0.5  # demo.py's default drawing threshold


def count_confident(detections, thresh=CONFIDENT_SCORE):
    """Rows of one image's detections (``[cls, score, ...]``, cls -1 = suppressed) that hold a
    detection scoring >= ``thresh``."""
    rows = np.asarray(detections).reshape(-1, 6)
    return int(np.count_nonzero((rows[:, 0] >= 0) & (rows[:, 1] >= thresh)))


def false_alarms_on_photos(detector, names=photos.HELD_OUT, thresh=CONFIDENT_SCORE):
    """{photo name: (number of detections scoring >= thresh, highest score or 0)} for a
    ``detect.detector.Detector`` (anything with ``detect_batch(list of BGR images)``)."""
    images = [cv2.cvtColor(photos.load_photo(name), cv2.COLOR_RGB2BGR) for name in names]
    results = {}
    for name, dets in zip(names, detector.detect_batch(images)):
        valid = dets[dets[:, 0] >= 0] if len(dets) else dets
        top = float(valid[:, 1].max()) if len(valid) else 0.0
        results[name] = (count_confident(valid, thresh), top)
    return results


def mean_false_alarms(results):
    """False alarms per photo of a ``false_alarms_on_photos`` result."""
    return sum(count for count, _ in results.values()) / max(1, len(results))
