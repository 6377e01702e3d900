"""demo.py end to end: annotated images and JSON that match the Detector, video in and out,
bad inputs skipped with a message, model errors, flags, and the no-argument run on the
shipped model."""
import json
import os
import runpy
import subprocess
import sys

import cv2
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
THRESH = 0.35   # the random test model scores 0.2-0.8
CLASSES = 'circle,square,triangle,cross'


@pytest.fixture(scope='module')
def setup(tmp_path_factory, random_model):
    workspace = random_model.workspace(tmp_path_factory.mktemp('demo'), 3)
    return dict(workspace, model=random_model)


def demo_main(argv):
    return runpy.run_path(os.path.join(ROOT, 'demo.py'))['main'](argv)


def model_args(setup, *extra):
    model = setup['model']
    return ['--network', model.network, '--prefix', setup['folder'],
            '--data-shape', str(model.shape), '--class-names', CLASSES, '--cpu',
            '--thresh', str(THRESH)] + list(extra)


def read_video(path):
    capture = cv2.VideoCapture(path)
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            return frames
        frames.append(frame)


def assert_boxes_match(entry, dets, image_shape):
    """The JSON entry holds exactly the detections scoring >= THRESH, in pixels."""
    height, width = image_shape[:2]
    assert (entry['width'], entry['height']) == (width, height)
    kept = dets[dets[:, 1] >= THRESH]
    assert len(entry['detections']) == len(kept) > 0
    names = CLASSES.split(',')
    for found, row in zip(entry['detections'], kept):
        assert found['class_id'] == int(row[0]) and found['class_name'] == names[int(row[0])]
        assert found['score'] == pytest.approx(row[1], abs=1e-4)
        np.testing.assert_allclose(found['box'], row[2:] * [width, height, width, height],
                                   atol=0.01)


def test_save_dir_and_json_match_the_detections(setup, tmp_path, capsys):
    model = setup['model']
    out = tmp_path / 'out'
    status = demo_main(model_args(setup, '--images', ','.join(setup['paths']),
                                  '--save-dir', str(out), '--batch-size', '2'))
    assert status == 0
    printed = capsys.readouterr().out
    assert 'Detection time for 3 images' in printed
    assert 'detections (pixel coordinates) in %s' % (out / 'detections.json') in printed
    document = json.loads((out / 'detections.json').read_text())
    assert document['model']['epoch'] == model.epoch and document['thresh'] == THRESH
    assert document['errors'] == []
    expected = model.detector(setup['prefix']).im_detect(setup['paths'])
    assert [e['source'] for e in document['results']] == setup['paths']
    for entry, dets, path in zip(document['results'], expected, setup['paths']):
        original = cv2.imread(path)
        assert_boxes_match(entry, dets, original.shape)
        annotated = cv2.imread(entry['output'])
        assert entry['output'] == str(out / os.path.basename(path))
        assert annotated.shape == original.shape
        assert np.abs(annotated.astype(int) - original).mean() > 2   # boxes were drawn


def test_corrupt_image_is_skipped_with_a_message(setup, tmp_path, capsys):
    bad = tmp_path / 'broken.jpg'
    bad.write_bytes(b'\xff\xd8 this is not really a JPEG')
    images = [setup['paths'][0], str(bad), setup['paths'][1], str(tmp_path / 'gone.jpg')]
    status = demo_main(model_args(setup, '--images', ','.join(images),
                                  '--save-dir', str(tmp_path / 'out')))
    assert status == 1
    err = capsys.readouterr().err
    assert 'error: %s: truncated JPEG' % bad in err   # header, then no scan
    assert 'error: %s: file not found' % (tmp_path / 'gone.jpg') in err
    assert '2 input(s) could not be processed' in err
    document = json.loads((tmp_path / 'out' / 'detections.json').read_text())
    assert [e['source'] for e in document['results']] == setup['paths'][:2]
    assert sorted(e['source'] for e in document['errors']) == [str(bad), str(tmp_path / 'gone.jpg')]
    assert sorted(os.listdir(tmp_path / 'out')) == sorted(
        ['detections.json'] + [os.path.basename(p) for p in setup['paths'][:2]])


def test_video_gives_an_annotated_video_with_the_same_frames(setup, tmp_path):
    model = setup['model']
    frames = [cv2.imread(p) for p in setup['paths']]
    height, width = frames[0].shape[:2]
    frames = [cv2.resize(f, (width, height)) for f in frames] * 3
    video = str(tmp_path / 'clip.mp4')
    writer = cv2.VideoWriter(video, cv2.VideoWriter_fourcc(*'mp4v'), 5, (width, height))
    for frame in frames:
        writer.write(frame)
    writer.release()
    decoded = read_video(video)
    assert len(decoded) == 9
    out = tmp_path / 'out'
    assert demo_main(model_args(setup, '--video', video, '--save-dir', str(out),
                                '--batch-size', '4')) == 0
    annotated = read_video(str(out / 'clip.mp4'))
    assert len(annotated) == len(decoded)
    assert annotated[0].shape == decoded[0].shape
    capture = cv2.VideoCapture(str(out / 'clip.mp4'))
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(5)
    document = json.loads((out / 'detections.json').read_text())
    assert [e['frame'] for e in document['results']] == list(range(9))
    expected = model.detector(setup['prefix']).detect_batch(decoded)
    for entry, dets in zip(document['results'], expected):
        assert entry['source'] == video and entry['output'] == str(out / 'clip.mp4')
        assert_boxes_match(entry, dets, decoded[0].shape)
    # drawn frames differ from the input frames (beyond video compression noise)
    assert np.abs(annotated[4].astype(int) - decoded[4]).mean() > 2


def test_max_frames_and_missing_video(setup, tmp_path, capsys):
    video = str(tmp_path / 'clip.mp4')
    writer = cv2.VideoWriter(video, cv2.VideoWriter_fourcc(*'mp4v'), 5, (96, 80))
    for k in range(6):
        writer.write(np.full((80, 96, 3), 40 * k, np.uint8))
    writer.release()
    out = tmp_path / 'out'
    assert demo_main(model_args(setup, '--video', video, '--max-frames', '4',
                                '--save-dir', str(out), '--no-timer')) == 0
    assert len(read_video(str(out / 'clip.mp4'))) == 4
    assert 'Detection time' not in capsys.readouterr().out
    missing = str(tmp_path / 'nope.mp4')
    assert demo_main(model_args(setup, '--video', missing, '--save-dir', '')) == 1
    assert 'error: %s: video not found: %s' % (missing, missing) in capsys.readouterr().err
    assert demo_main(model_args(setup, '--camera', '97', '--save-dir', '')) == 1
    assert 'error: camera97: cannot open camera 97' in capsys.readouterr().err


def test_missing_model_names_the_expected_files(setup, tmp_path, capsys):
    model = setup['model']
    args = model_args(setup, '--images', setup['paths'][0], '--epoch', '7')
    assert demo_main(args) == 1
    err = capsys.readouterr().err
    assert 'model file(s) not found: %s-0007.params' % setup['prefix'] in err
    assert 'epochs found for this prefix: %d' % model.epoch in err
    assert demo_main(model_args(setup, '--images', setup['paths'][0], '--class-names',
                                'a,b,c,d,e')) == 1
    assert 'conv_6_relu_cls_pred_conv_weight is (20, 64, 3, 3), network needs (24, 64, 3, 3)' \
        in capsys.readouterr().err


def test_flags(setup, monkeypatch, capsys):
    namespace = runpy.run_path(os.path.join(ROOT, 'demo.py'))
    parse = namespace['parse_args']
    args = parse(['--prefix', 'm/ssd_', '--network', 'x', '--data-shape', '128,96'])
    assert args.data_shape == (128, 96)
    # None: taken from the model spec (or the project default without one)
    assert (args.force_nms, args.timer, args.show, args.deploy) == (None, True, False, False)
    assert args.images.endswith(os.path.join('data', 'demo'))
    assert args.json == os.path.join('output', 'demo', 'detections.json')
    args = parse(['--prefix', 'm/ssd_', '--network', 'x', '--data-shape', '128', '--deploy',
                  '--no-force-nms', '--no-timer', '--save-dir', '', '--video', 'v.mp4'])
    assert (args.force_nms, args.timer, args.json, args.images) == (False, False, '', None)
    monkeypatch.delenv('DISPLAY', raising=False)
    monkeypatch.delenv('WAYLAND_DISPLAY', raising=False)
    assert demo_main(model_args(setup, '--images', setup['paths'][0], '--show',
                                '--save-dir', '')) == 0
    assert 'no display here, --show ignored' in capsys.readouterr().err


def test_no_arguments_runs_the_shipped_model_on_the_demo_images(tmp_path, shipped_model):
    """What a fresh clone does: `python demo.py` (here from another working directory)."""
    proc = subprocess.run([sys.executable, os.path.join(ROOT, 'demo.py')], cwd=str(tmp_path),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    from detect.shipped import SHIPPED_NOTICE
    assert proc.stdout.splitlines()[0] == SHIPPED_NOTICE   # says what the model is, first
    out = tmp_path / 'output' / 'demo'
    document = json.loads((out / 'detections.json').read_text())
    demo_images = sorted(f for f in os.listdir(os.path.join(ROOT, 'data', 'demo'))
                         if f.endswith('.jpg'))
    assert [os.path.basename(e['source']) for e in document['results']] == demo_images
    assert sorted(os.listdir(out)) == sorted(demo_images + ['detections.json'])
    synthetic = [e for e in document['results'] if os.path.basename(e['source'])
                 .startswith('shapes')]
    assert all(e['detections'] for e in synthetic)
    assert 'annotated results in output/demo' in proc.stdout


def test_released_network_without_its_files_names_the_archive(tmp_path):
    """`python demo.py --network vgg16_reduced` on a fresh clone: one line saying which
    release archive to get and where to unpack it (detect.released), no traceback."""
    proc = subprocess.run([sys.executable, os.path.join(ROOT, 'demo.py'), '--network',
                           'vgg16_reduced', '--save-dir', ''], cwd=str(tmp_path),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=300)
    assert proc.returncode == 1
    assert proc.stderr.count('\n') == 1 and proc.stderr.startswith('error: no released '
                                                                   'vgg16_reduced model in ')
    assert 'vgg16_ssd_300_voc0712_trainval.zip' in proc.stderr and 'unzip' in proc.stderr
