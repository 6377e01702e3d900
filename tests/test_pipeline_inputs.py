"""demo.py's inputs that decode badly: truncated and empty images, text files given as
videos, videos without a decodable frame.  Each is reported by name and skipped; it is never
detected on (OpenCV decodes a truncated JPEG into grey rows without an error)."""
import cv2
import numpy as np
import pytest

from detect import pipeline


class NoDetections:
    """Stands in for a Detector: counts the images it is given and finds nothing."""
    batch_size = 2
    last_detection_seconds = 0.0

    def __init__(self):
        self.images = 0

    def detect_batch(self, images):
        self.images += len(images)
        return [np.full((1, 6), -1.0, np.float32) for _ in images]


def jpeg_bytes(tmp_path, progressive=False):
    rng = np.random.RandomState(0)
    image = rng.randint(0, 255, (120, 160, 3)).astype(np.uint8)
    path = str(tmp_path / 'full.jpg')
    cv2.imwrite(path, image, [cv2.IMWRITE_JPEG_PROGRESSIVE, int(progressive)])
    with open(path, 'rb') as f:
        return f.read()


def write(path, data):
    with open(path, 'wb') as f:
        f.write(data)
    return str(path)


@pytest.mark.parametrize('progressive', [False, True])
def test_a_jpeg_cut_anywhere_after_its_header_is_refused(tmp_path, progressive):
    data = jpeg_bytes(tmp_path, progressive)
    assert pipeline.read_image(write(tmp_path / 'whole.jpg', data)).shape == (120, 160, 3)
    for fraction in (0.3, 0.6, 0.9, 0.999):
        cut = write(tmp_path / 'cut.jpg', data[:int(len(data) * fraction)])
        assert cv2.imread(cut) is not None          # what OpenCV alone would have used
        with pytest.raises(pipeline.UnreadableInput, match='truncated JPEG'):
            pipeline.read_image(cut)


def test_data_after_the_end_marker_is_allowed(tmp_path):
    data = jpeg_bytes(tmp_path) + b'camera maker trailer \xff\x00\x01'
    assert pipeline.read_image(write(tmp_path / 'trailer.jpg', data)).shape == (120, 160, 3)


def test_empty_missing_and_non_image_files(tmp_path):
    with pytest.raises(pipeline.UnreadableInput, match=r'empty \(0 bytes\)'):
        pipeline.read_image(write(tmp_path / 'empty.jpg', b''))
    with pytest.raises(pipeline.UnreadableInput, match='cannot read image'):
        pipeline.read_image(str(tmp_path / 'missing.jpg'))
    with pytest.raises(pipeline.UnreadableInput, match='corrupt or not an image'):
        pipeline.read_image(write(tmp_path / 'notes.png', b'not an image at all'))


def test_demo_run_reports_the_truncated_image_and_detects_on_the_others(tmp_path):
    data = jpeg_bytes(tmp_path)
    good = write(tmp_path / 'good.jpg', data)
    cut = write(tmp_path / 'cut.jpg', data[:len(data) // 2])
    detector = NoDetections()
    run = pipeline.DemoRun(detector, ['a'], verbose=False)
    run.run_images([cut, good])
    assert detector.images == 1
    assert [e['source'] for e in run.log.results] == [good]
    assert [e['source'] for e in run.log.errors] == [cut]
    assert 'truncated JPEG' in run.log.errors[0]['error']


def test_a_text_file_is_not_a_video(tmp_path):
    text = write(tmp_path / 'notes.txt', b'hello\n' * 100)
    # FFmpeg's tty demuxer would "play" it as three frames of ANSI art
    assert cv2.VideoCapture(text).isOpened()
    with pytest.raises(pipeline.UnreadableInput, match='is a text file, not a video'):
        pipeline.open_capture(text)
    assert pipeline.looks_like_text(write(tmp_path / 'utf8.txt', 'é'.encode() * 3000))
    assert not pipeline.looks_like_text(write(tmp_path / 'bin', b'\x00\x01ftyp' * 10))


class NoFrames:
    """A capture that opened but yields nothing (as a video with an unsupported codec)."""

    def get(self, prop):
        return 0

    def read(self):
        return False, None


def test_a_video_without_a_decodable_frame_is_an_error(tmp_path):
    run = pipeline.DemoRun(NoDetections(), ['a'], save_dir=str(tmp_path / 'out'), verbose=False)
    with pytest.raises(pipeline.UnreadableInput, match='no frame could be decoded from v.mp4'):
        run.run_capture(NoFrames(), 'v.mp4')
    assert not (tmp_path / 'out' / 'v.mp4').exists()
