"""Shared pytest set-up: make the repository root importable, pin thread counts, register the
operators; fixtures: ``shipped_model`` (the demo model's prefix, or skip) and ``random_model``
(a freshly initialised small SSD: its settings and helpers, see ``RANDOM_MODEL``)."""
import os
import sys
from types import SimpleNamespace

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
os.environ.setdefault("OMP_NUM_THREADS", "2")
from config.threads import set_default_threads  # noqa: E402

set_default_threads()  # as every script does (single-threaded copies)
import mxssd_compat  # noqa: E402,F401  (before MXNet: numpy aliases, Python 3.9 `symbol`)

import cv2  # noqa: E402
import mxnet as mx  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

# The tests use mx.sym.MultiBox* directly; register them once for the whole session.
from symbol import operators  # noqa: E402

operators.load()


NETWORK, SHAPE, NUM_CLASSES, EPOCH = 'mobilenet_0.25', 128, 4, 3
MEAN = (123, 117, 104)
# Not the synthetic training seed (0): images the shipped model has never seen.
UNSEEN_SEED = 2468
HEAD_SCALE = 0.01


def save_random_model(folder, network=NETWORK, shape=SHAPE, num_classes=NUM_CLASSES,
                      epoch=EPOCH, training_graph=False):
    """A freshly initialised SSD checkpoint '<folder>/ssd_<network>_<shape>-<epoch>'.
    He init gives varied scores and boxes (MXNet's default Xavier leaves an untrained SSD's
    outputs nearly constant, which would make comparisons trivially equal); the prediction
    heads are scaled down so that scores spread over 0.2-0.8 instead of saturating at 1.0,
    where ties would make the order of detections arbitrary."""
    from symbol.symbol_factory import get_symbol, get_symbol_train
    test_graph = get_symbol(network, shape, num_classes)
    module = mx.mod.Module(test_graph, label_names=None)
    module.bind([('data', (1, 3, shape, shape))], for_training=False)
    mx.random.seed(0)
    module.init_params(mx.init.Xavier('gaussian', 'in', 2))
    prefix = os.path.join(str(folder), 'ssd_%s_%d' % (network, shape))
    graph = get_symbol_train(network, shape, num_classes) if training_graph else test_graph
    arg_params, aux_params = module.get_params()
    arg_params = {name: value * HEAD_SCALE if '_pred_conv_' in name else value
                  for name, value in arg_params.items()}
    mx.model.save_checkpoint(prefix, epoch, graph, arg_params, aux_params)
    return prefix


def write_synthetic_images(folder, count, seed=UNSEEN_SEED, side=160):
    """JPEG files of synthetic shapes; returns (paths, objects per image in pixels)."""
    from dataset.synthetic import render_image
    paths, objects = [], []
    for n in range(count):
        image, objs = render_image(seed, 'val', n, side)
        path = os.path.join(str(folder), 'shapes_%02d.jpg' % n)
        cv2.imwrite(path, image[:, :, ::-1])
        paths.append(path)
        objects.append(objs)
    return paths, objects


def random_model_workspace(folder, num_images):
    """A random checkpoint and synthetic images in ``folder``, as the demo and deploy tests use
    them: dict(prefix, paths, work, folder='<folder>/ssd_')."""
    prefix = save_random_model(folder)
    paths, _ = write_synthetic_images(folder, num_images)
    return dict(prefix=prefix, paths=paths, work=folder,
                folder=os.path.dirname(prefix) + os.sep + 'ssd_')


def make_detector(prefix, batch_size=1, network=NETWORK, force_nms=False):
    from detect.detector import get_detector
    return get_detector(network, prefix, EPOCH, SHAPE, MEAN, NUM_CLASSES, force_nms=force_nms,
                        batch_size=batch_size)


def assert_same_detections(actual, expected, atol=1e-5):
    """Same detections per image: equal class ids, scores and boxes within ``atol``, in the
    same order up to swaps of near-equal scores."""
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        assert a.shape == e.shape and a.shape[0] > 0
        np.testing.assert_allclose(a[:, 1], e[:, 1], atol=atol)
        unused = np.ones(len(e), bool)
        for row in a:
            same = np.flatnonzero(unused & (e[:, 0] == row[0])
                                  & (np.abs(e[:, 1:] - row[1:]).max(1) <= atol))
            assert same.size, 'detection %s not among the expected ones' % row
            unused[same[0]] = False


RANDOM_MODEL = SimpleNamespace(
    network=NETWORK, shape=SHAPE, num_classes=NUM_CLASSES, epoch=EPOCH, mean=MEAN,
    save=save_random_model, write_images=write_synthetic_images,
    workspace=random_model_workspace, detector=make_detector,
    same_detections=assert_same_detections)


@pytest.fixture(scope='session')
def random_model():
    return RANDOM_MODEL


@pytest.fixture(scope='session')
def shipped_model():
    """The shipped demo model's prefix (model/ssd_mobilenet_0.25_224), or skip."""
    from detect.shipped import SHIPPED_MODEL
    from symbol import model_io
    prefix = model_io.expand_prefix(SHIPPED_MODEL['prefix'], SHIPPED_MODEL['network'],
                                    SHIPPED_MODEL['data_shape'])
    if not model_io.saved_epochs(prefix):
        pytest.skip('the shipped demo model is not there yet: %s-*.params' % prefix)
    return prefix
