"""What demo.py does with a Detector: find the images (files, folders, globs), read video
files and cameras, detect in batches, and write annotated pictures / video and a JSON file of
the detections in pixel coordinates.

Bad inputs do not stop a run: an image that cannot be found, decoded or is truncated, and a
video that yields no frame, are reported on stderr, recorded under "errors" in the JSON, and
the others are still processed.
"""
import glob
import json
import os
import sys

import cv2
import numpy as np
from tqdm import tqdm

from . import visualize

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')
GLOB_CHARACTERS = '*?['
JSON_NAME = 'detections.json'
VIDEO_CODEC = 'mp4v'         # written by every OpenCV wheel (bundled FFmpeg), plays widely
VIDEO_EXTENSION = '.mp4'
FALLBACK_FPS = 25.0          # when a capture does not report its frame rate
JPEG_QUALITY = 95
MAX_LISTED = 8               # detections named per image on the console
JPEG_START, JPEG_SCAN, JPEG_END = b'\xff\xd8', b'\xff\xda', b'\xff\xd9'
TEXT_PROBE_BYTES = 4096      # how much of a --video file is looked at to tell text from video


class UnreadableInput(IOError):
    """An image or video that cannot be decoded completely; the message says why."""


def jpeg_is_complete(data):
    """False for JPEG bytes cut before the end-of-image marker that follows the last scan.

    OpenCV decodes a truncated JPEG without an error (libjpeg fills the missing rows with
    grey and only prints a warning), so the cut has to be found in the bytes.  Inside
    entropy-coded data every 0xFF byte is followed by 0x00 or a restart marker, so the last
    start-of-scan marker really is the last scan's, and a complete file has an end-of-image
    marker after it (cameras may append data after that marker: allowed)."""
    if not data.startswith(JPEG_START):
        return True
    last_scan = data.rfind(JPEG_SCAN)
    return last_scan >= 0 and data.find(JPEG_END, last_scan) >= 0


def read_image(path):
    """The BGR image in ``path``; raises UnreadableInput for an empty, undecodable or
    truncated file (instead of detecting on OpenCV's grey fill)."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as err:
        raise UnreadableInput('cannot read image: %s' % (err.strerror or err))
    if data.size == 0:
        raise UnreadableInput('cannot read image: the file is empty (0 bytes)')
    if not jpeg_is_complete(data.tobytes()):
        raise UnreadableInput('truncated JPEG: the file ends before its last scan does '
                              '(%d bytes; incomplete download or copy?)' % data.size)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None:
        raise UnreadableInput('cannot read image (corrupt or not an image format OpenCV '
                              'decodes)')
    return image


def looks_like_text(path):
    """True when the start of ``path`` is UTF-8 text without NUL bytes.  FFmpeg "plays" text
    files (its tty demuxer renders them as ANSI art), so OpenCV opens them as videos."""
    with open(path, 'rb') as f:
        head = f.read(TEXT_PROBE_BYTES)
    if not head or b'\0' in head:
        return False
    try:
        head.decode('utf-8')
    except UnicodeDecodeError as err:
        # a multi-byte character cut by the probe's end is still text
        return err.start >= len(head) - 3
    return True


def split_list(spec):
    if isinstance(spec, str):
        return [s.strip() for s in spec.split(',') if s.strip()]
    return list(spec)


def expand_images(spec, root_dir=None, extension=None):
    """Image paths from a comma-separated list (or list) of files, folders (their image files,
    sorted) and glob patterns; each item is joined to ``root_dir`` and, for files and patterns,
    given ``extension`` (for folders it filters the files).  Returns (paths, problems) where
    problems are (item, reason) for items that name nothing."""
    paths, problems = [], []
    for item in split_list(spec):
        path = os.path.join(root_dir, item) if root_dir else item
        if any(c in item for c in GLOB_CHARACTERS):
            found = sorted(p for p in glob.glob(path + (extension or '')) if os.path.isfile(p))
            paths += found
            if not found:
                problems.append((path + (extension or ''), 'no file matches this pattern'))
        elif os.path.isdir(path):
            suffixes = (extension,) if extension else IMAGE_EXTENSIONS
            found = sorted(os.path.join(path, f) for f in os.listdir(path)
                           if f.lower().endswith(tuple(s.lower() for s in suffixes))
                           and os.path.isfile(os.path.join(path, f)))
            paths += found
            if not found:
                problems.append((path, 'folder holds no image files (%s)' % ', '.join(suffixes)))
        elif os.path.isfile(path + (extension or '')):
            paths.append(path + (extension or ''))
        else:
            problems.append((path + (extension or ''), 'file not found'))
    return paths, problems


class DetectionLog:
    """Detections in pixel coordinates and the inputs that failed, for the JSON file."""

    def __init__(self, class_names, thresh):
        self.class_names = list(class_names)
        self.thresh = thresh
        self.results = []
        self.errors = []

    def add(self, source, image, dets, output=None, frame=None):
        height, width = image.shape[:2]
        entry = {'source': source, 'width': width, 'height': height}
        if frame is not None:
            entry['frame'] = frame
        if output:
            entry['output'] = output
        entry['detections'] = [
            {'class_id': int(cls), 'class_name': visualize.class_name(cls, self.class_names),
             'score': round(float(score), 4), 'box': [round(float(v), 2) for v in box]}
            for cls, score, *box in visualize.to_pixels(
                visualize.above_threshold(dets, self.thresh), width, height)]
        self.results.append(entry)
        return entry

    def add_error(self, source, reason):
        self.errors.append({'source': source, 'error': reason})
        tqdm.write('error: %s: %s (skipped)' % (source, reason), file=sys.stderr)

    def write(self, path, model):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        document = {'model': model, 'thresh': self.thresh, 'class_names': self.class_names,
                    'box_format': '[xmin, ymin, xmax, ymax] in pixels of the input image',
                    'results': self.results, 'errors': self.errors}
        with open(path, 'w') as f:
            json.dump(document, f, indent=1)
        return path


class OutputNames:
    """File names in the save folder: the input's name, made unique within a run and never
    the input file itself."""

    def __init__(self, save_dir):
        self.save_dir = save_dir
        self.used = set()

    def for_source(self, source, extension):
        stem = os.path.splitext(os.path.basename(str(source)))[0] or 'output'
        candidate, k = stem, 1
        while True:
            path = os.path.join(self.save_dir, candidate + extension)
            if path not in self.used and not _same_file(path, source):
                self.used.add(path)
                return path
            candidate, k = '%s_%d' % (stem, k), k + 1


def _same_file(a, b):
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def describe(entry, max_listed=MAX_LISTED):
    """'<source>: 2 objects: circle 0.98, cross 0.91' (the best few when there are many)."""
    dets = entry['detections']
    found = ', '.join('%s %.2f' % (d['class_name'], d['score']) for d in dets[:max_listed])
    if len(dets) > max_listed:
        found += ', ... (%d more)' % (len(dets) - max_listed)
    where = entry['source'] + ('' if 'frame' not in entry else ' frame %d' % entry['frame'])
    if not dets:
        return '%s: nothing found' % where
    return '%s: %d object%s: %s' % (where, len(dets), '' if len(dets) == 1 else 's', found)


class DemoRun:
    """One demo.py run: detector, drawing and output settings, and what came out."""

    def __init__(self, detector, class_names, thresh=0.5, save_dir=None, show=False,
                 verbose=True):
        self.detector = detector
        self.class_names = list(class_names)
        self.thresh = thresh
        self.save_dir = save_dir or None
        self.show = show
        self.verbose = verbose
        self.log = DetectionLog(class_names, thresh)
        self.names = OutputNames(save_dir) if save_dir else None
        self.num_inputs = 0
        self.detection_seconds = 0.0
        if save_dir:
            os.makedirs(save_dir, exist_ok=True)

    def _detect(self, images):
        dets = self.detector.detect_batch(images)
        self.detection_seconds += self.detector.last_detection_seconds
        self.num_inputs += len(images)
        return dets

    def _annotate(self, image, dets, title, wait=True):
        """The drawn copy; shown when asked (``wait``: until the window is closed, for
        pictures; video frames replace each other)."""
        annotated = visualize.draw_detections(image, dets, self.class_names, self.thresh)
        if self.show:
            visualize.show_image(annotated, title, block=wait)
        return annotated

    def _say(self, entry):
        if self.verbose:
            tqdm.write(describe(entry))

    def run_images(self, paths):
        """Detect in image files, batch by batch; unreadable files are reported and skipped."""
        batch_size = self.detector.batch_size
        for first in tqdm(range(0, len(paths), batch_size), desc='images', unit='batch',
                          disable=len(paths) <= batch_size or None):
            loaded = []
            for path in paths[first:first + batch_size]:
                try:
                    loaded.append((path, read_image(path)))
                except UnreadableInput as err:
                    self.log.add_error(path, str(err))
            if not loaded:
                continue
            for (path, image), dets in zip(loaded, self._detect([im for _, im in loaded])):
                annotated = self._annotate(image, dets, path)
                output = None
                if self.names:
                    output = self.names.for_source(path, '.jpg')
                    if not cv2.imwrite(output, annotated,
                                       [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]):
                        raise IOError('cannot write %s' % output)
                self._say(self.log.add(path, image, dets, output))

    def run_capture(self, capture, source, max_frames=0):
        """Detect in the frames of an opened cv2.VideoCapture (file or camera) until it ends,
        ``max_frames`` frames (0: no limit) or Ctrl-C; writes the annotated video when saving,
        named after ``source`` (the video path or e.g. 'camera0').  Returns the number of
        frames processed; raises UnreadableInput when not even the first frame decodes."""
        total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        if max_frames:
            total = min(total, max_frames) if total > 0 else max_frames
        fps = capture.get(cv2.CAP_PROP_FPS) or FALLBACK_FPS
        output = self.names.for_source(source, VIDEO_EXTENSION) if self.names else None
        writer, frame_no = None, 0
        bar = tqdm(total=total if total > 0 else None, desc=str(source), unit='frame')
        try:
            while not max_frames or frame_no < max_frames:
                frames = read_frames(capture, self.detector.batch_size,
                                     max_frames - frame_no if max_frames else None)
                if not frames:
                    break
                for frame, dets in zip(frames, self._detect(frames)):
                    annotated = self._annotate(frame, dets, '%s frame %d' % (source, frame_no),
                                               wait=False)
                    if output:
                        writer = writer or open_video_writer(output, fps, frame.shape)
                        writer.write(annotated)
                    # frames are not listed one by one on the console: they are in the JSON
                    self.log.add(str(source), frame, dets, output, frame=frame_no)
                    frame_no += 1
                bar.update(len(frames))
        except KeyboardInterrupt:
            tqdm.write('stopped after %d frames' % frame_no)
        finally:
            bar.close()
            if writer is not None:
                writer.release()
        if output and frame_no:
            tqdm.write('annotated video (%d frames): %s' % (frame_no, output))
        if not frame_no:
            raise UnreadableInput('no frame could be decoded from %s' % source)
        return frame_no


def read_frames(capture, count, limit=None):
    frames = []
    for _ in range(count if limit is None else min(count, limit)):
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    return frames


def open_video_writer(path, fps, frame_shape):
    height, width = frame_shape[:2]
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*VIDEO_CODEC), fps, (width, height))
    if not writer.isOpened():
        raise IOError('cannot write video %s (OpenCV has no %s encoder here)'
                      % (path, VIDEO_CODEC))
    return writer


def open_capture(source):
    """cv2.VideoCapture of a video file path or a camera id (int); raises when it does not
    open."""
    if isinstance(source, str) and not os.path.isfile(source):
        raise FileNotFoundError('video not found: %s' % source)
    if isinstance(source, str) and looks_like_text(source):
        raise UnreadableInput('%s is a text file, not a video' % source)
    capture = cv2.VideoCapture(source)
    if not capture.isOpened():
        raise IOError('cannot open %s' % ('camera %d' % source if isinstance(source, int)
                                          else 'video %s' % source))
    return capture
