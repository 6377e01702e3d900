"""The project's MultiBox operators against MXNet's contrib operators and hand-computed cases."""
import itertools
import json
import os
import shutil

import mxnet as mx
import numpy as np
import pytest

from symbol import operators, symbol_factory

# SSD300 (VGG16-reduced) anchor layers from the network's own preset: 8732 anchors.
SSD300 = symbol_factory.get_config("vgg16_reduced", 300)
SSD300_LAYERS = [(side, sizes, ratios, (step, step)) for side, sizes, ratios, step in
                 zip((38, 19, 10, 5, 3, 1), SSD300["sizes"], SSD300["ratios"], SSD300["steps"])]


def ssd300_anchors():
    parts = [mx.nd.contrib.MultiBoxPrior(mx.nd.zeros((1, 1, side, side)), sizes=sizes,
                                         ratios=ratios, steps=steps).reshape((1, -1, 4))
             for side, sizes, ratios, steps in SSD300_LAYERS]
    return mx.nd.concat(*parts, dim=1)


def random_anchors(rng, count):
    xy = rng.uniform(-0.1, 0.9, (count, 2))
    wh = rng.uniform(0.02, 0.6, (count, 2))
    return mx.nd.array(np.concatenate([xy, xy + wh], axis=1)[None].astype(np.float32))


def random_labels(rng, batch, max_objects, counts=None, width=6):
    """Label rows [cls, xmin, ymin, xmax, ymax, difficult], padded with -1 rows."""
    labels = -np.ones((batch, max_objects, width), np.float32)
    for b in range(batch):
        count = rng.randint(0, max_objects + 1) if counts is None else counts[b]
        for k in range(count):
            x0, y0 = rng.uniform(0, 0.85, 2)
            w, h = rng.uniform(0.03, 0.6, 2)
            labels[b, k, :6] = [rng.randint(0, 20), x0, y0, min(x0 + w, 1), min(y0 + h, 1), 0][:width]
    return mx.nd.array(labels)


def assert_same_outputs(ours, theirs, atol=1e-5):
    ours = ours if isinstance(ours, (list, tuple)) else [ours]
    theirs = theirs if isinstance(theirs, (list, tuple)) else [theirs]
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.asnumpy(), b.asnumpy(), rtol=0, atol=atol)


# ---------------------------------------------------------------- MultiBoxPrior

PRIOR_CASES = [
    dict(sizes=(0.1, 0.1414), ratios=(1, 2, 0.5)),
    dict(sizes=(0.2,), ratios=(1,)),
    dict(sizes=(0.5, 0.3, 0.7), ratios=(1, 3, 1 / 3, 2), clip=True),
    dict(sizes=(0.3,), ratios=(1, 2), steps=(0.1, 0.05), offsets=(0.2, 0.7)),
    dict(sizes=(0.9, 0.95), ratios=(1, 0.5), steps=(1 / 3, 1 / 3), clip=True),
]


@pytest.mark.parametrize("case", PRIOR_CASES)
@pytest.mark.parametrize("shape", [(1, 3, 38, 38), (2, 8, 5, 7), (1, 1, 1, 1), (1, 2, 10, 3)])
def test_prior_matches_contrib(case, shape):
    data = mx.nd.zeros(shape)
    assert_same_outputs(mx.nd.MultiBoxPrior(data, **case), mx.nd.contrib.MultiBoxPrior(data, **case))


def test_prior_ssd300_anchor_set_matches_contrib():
    for side, sizes, ratios, steps in SSD300_LAYERS:
        data = mx.nd.zeros((1, 512, side, side))
        ours = mx.nd.MultiBoxPrior(data, sizes=sizes, ratios=ratios, steps=steps)
        assert ours.shape == (1, side * side * (len(sizes) + len(ratios) - 1), 4)
        assert_same_outputs(ours, mx.nd.contrib.MultiBoxPrior(data, sizes=sizes, ratios=ratios,
                                                              steps=steps))
    assert ssd300_anchors().shape == (1, 8732, 4)


def test_prior_by_hand():
    # 1x2 map: cell centres (0.25, 0.5) and (0.75, 0.5); width scaled by H/W = 1/2.
    boxes = mx.nd.MultiBoxPrior(mx.nd.zeros((1, 1, 1, 2)), sizes=(0.4,), ratios=(1, 4)).asnumpy()[0]
    expected = [[0.25 - 0.1, 0.3, 0.25 + 0.1, 0.7],   # size 0.4, ratio 1: w = 0.4*0.5/2
                [0.25 - 0.2, 0.4, 0.25 + 0.2, 0.6],   # ratio 4: w doubled, h halved
                [0.75 - 0.1, 0.3, 0.75 + 0.1, 0.7],
                [0.75 - 0.2, 0.4, 0.75 + 0.2, 0.6]]
    np.testing.assert_allclose(boxes, expected, atol=1e-6)


# ---------------------------------------------------------------- MultiBoxTarget

TARGET_PARAMS = [
    dict(),
    dict(negative_mining_ratio=3),
    dict(negative_mining_ratio=3, negative_mining_thresh=0.4, overlap_threshold=0.3),
    dict(negative_mining_ratio=2.5, variances=(0.2, 0.3, 0.1, 0.4), ignore_label=-2),
    dict(overlap_threshold=0),
    dict(overlap_threshold=0.7, negative_mining_ratio=1),
]


@pytest.mark.parametrize("params", TARGET_PARAMS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_target_matches_contrib_ssd300(params, seed):
    rng = np.random.RandomState(seed)
    anchors = ssd300_anchors()
    labels = random_labels(rng, 4, 12, counts=[0, 1, 5, 12])
    cls_pred = mx.nd.array(rng.randn(4, 21, anchors.shape[1]).astype(np.float32))
    ours = mx.nd.MultiBoxTarget(anchors, labels, cls_pred, **params)
    theirs = mx.nd.contrib.MultiBoxTarget(anchors, labels, cls_pred, **params)
    assert_same_outputs(ours, theirs)
    np.testing.assert_array_equal(ours[1].asnumpy(), theirs[1].asnumpy())  # masks
    np.testing.assert_array_equal(ours[2].asnumpy(), theirs[2].asnumpy())  # class targets


@pytest.mark.parametrize("seed", range(6))
def test_target_matches_contrib_small_random(seed):
    rng = np.random.RandomState(100 + seed)
    anchors = random_anchors(rng, rng.randint(5, 300))
    batch, max_objects = 3, rng.randint(1, 8)
    labels = random_labels(rng, batch, max_objects, width=rng.choice([5, 6, 8]))
    num_classes = rng.randint(2, 6)
    cls_pred = mx.nd.array(rng.randn(batch, num_classes, anchors.shape[1]).astype(np.float32))
    for params in TARGET_PARAMS:
        ours = mx.nd.MultiBoxTarget(anchors, labels, cls_pred, **params)
        theirs = mx.nd.contrib.MultiBoxTarget(anchors, labels, cls_pred, **params)
        assert_same_outputs(ours, theirs)
        np.testing.assert_array_equal(ours[2].asnumpy(), theirs[2].asnumpy())


def test_target_by_hand():
    anchors = mx.nd.array([[[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0], [0.0, 0.5, 0.5, 1.0]]])
    labels = mx.nd.array([[[3, 0.1, 0.0, 0.5, 0.6], [-1, -1, -1, -1, -1]]])
    cls_pred = mx.nd.zeros((1, 5, 3))
    loc, mask, cls = mx.nd.MultiBoxTarget(anchors, labels, cls_pred)
    # Only anchor 0 overlaps the box (IoU 0.2/0.29); it is matched by the bipartite step.
    np.testing.assert_array_equal(cls.asnumpy(), [[4, 0, 0]])
    np.testing.assert_array_equal(mask.asnumpy(), [[1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0]])
    gx, gy, gw, gh = 0.3, 0.3, 0.4, 0.6
    expected = [(gx - 0.25) / 0.5 / 0.1, (gy - 0.25) / 0.5 / 0.1,
                np.log(gw / 0.5) / 0.2, np.log(gh / 0.5) / 0.2]
    np.testing.assert_allclose(loc.asnumpy()[0, :4], expected, rtol=1e-5)


def test_target_mining_picks_least_background_like_anchors():
    rng = np.random.RandomState(7)
    anchors = random_anchors(rng, 50)
    labels = mx.nd.array([[[1, 0.4, 0.4, 0.6, 0.6]]])
    cls_pred = mx.nd.array(rng.randn(1, 3, 50).astype(np.float32))
    _, _, cls = mx.nd.MultiBoxTarget(anchors, labels, cls_pred, negative_mining_ratio=2,
                                     overlap_threshold=0.99)
    cls = cls.asnumpy()[0]
    assert (cls > 0).sum() == 1 and (cls == 0).sum() == 2
    background = mx.nd.softmax(cls_pred, axis=1).asnumpy()[0, 0]
    iou_ok = [j for j in range(50) if cls[j] <= 0]
    lowest = sorted(iou_ok, key=lambda j: background[j])
    # the two mined negatives are the most confident non-background predictions among
    # anchors that are not positive (those overlapping the box >= 0.5 are excluded)
    assert set(np.flatnonzero(cls == 0)) <= set(lowest[:4])


def test_minimum_negative_samples_on_images_without_objects():
    rng = np.random.RandomState(3)
    anchors = random_anchors(rng, 40)
    labels = mx.nd.array(-np.ones((2, 3, 5), np.float32))
    cls_pred = mx.nd.array(rng.randn(2, 4, 40).astype(np.float32))
    _, _, cls = mx.nd.MultiBoxTarget(anchors, labels, cls_pred, negative_mining_ratio=3,
                                     minimum_negative_samples=5)
    background = mx.nd.softmax(cls_pred, axis=1).asnumpy()[:, 0]
    for b in range(2):
        negatives = np.flatnonzero(cls.asnumpy()[b] == 0)
        np.testing.assert_array_equal(np.sort(negatives), np.sort(np.argsort(background[b])[:5]))
        assert (cls.asnumpy()[b] == -1).sum() == 35
    # without mining, every anchor of an empty image is a negative
    _, _, cls = mx.nd.MultiBoxTarget(anchors, labels, cls_pred, minimum_negative_samples=1)
    assert (cls.asnumpy() == 0).all()
    # minimum 0: MXNet's CPU behaviour, all ignored
    ours = mx.nd.MultiBoxTarget(anchors, labels, cls_pred, negative_mining_ratio=3)
    theirs = mx.nd.contrib.MultiBoxTarget(anchors, labels, cls_pred, negative_mining_ratio=3)
    assert_same_outputs(ours, theirs)
    assert (ours[2].asnumpy() == -1).all()


def test_minimum_negative_samples_raises_the_count_with_objects():
    rng = np.random.RandomState(4)
    anchors = random_anchors(rng, 200)
    labels = random_labels(rng, 1, 1, counts=[1])
    cls_pred = mx.nd.array(rng.randn(1, 3, 200).astype(np.float32))
    _, _, cls = mx.nd.MultiBoxTarget(anchors, labels, cls_pred, negative_mining_ratio=1,
                                     minimum_negative_samples=25, negative_mining_thresh=1.0)
    assert (cls.asnumpy() == 0).sum() == 25


# ---------------------------------------------------------------- MultiBoxDetection

def random_predictions(rng, batch, num_classes, num_anchors, sharpness=3.0):
    logits = rng.randn(batch, num_classes, num_anchors).astype(np.float32) * sharpness
    cls_prob = mx.nd.softmax(mx.nd.array(logits), axis=1)
    loc_pred = mx.nd.array(rng.randn(batch, num_anchors * 4).astype(np.float32) * 0.5)
    return cls_prob, loc_pred


DETECTION_PARAMS = [
    dict(),
    dict(nms_topk=400),
    dict(nms_topk=400, force_suppress=True, nms_threshold=0.45),
    dict(clip=False, threshold=0.2, nms_threshold=0.3),
    dict(nms_topk=17, variances=(0.2, 0.2, 0.3, 0.3)),
    dict(threshold=0.99),
]


@pytest.mark.parametrize("params", DETECTION_PARAMS)
@pytest.mark.parametrize("seed", [0, 1])
def test_detection_matches_contrib_ssd300(params, seed):
    rng = np.random.RandomState(seed)
    anchors = ssd300_anchors()
    cls_prob, loc_pred = random_predictions(rng, 2, 21, anchors.shape[1])
    ours = mx.nd.MultiBoxDetection(cls_prob, loc_pred, anchors, **params)
    theirs = mx.nd.contrib.MultiBoxDetection(cls_prob, loc_pred, anchors, **params)
    assert ours.shape == (2, 8732, 6)
    np.testing.assert_array_equal(ours.asnumpy()[..., 0], theirs.asnumpy()[..., 0])
    assert_same_outputs(ours, theirs)


@pytest.mark.parametrize("seed", range(6))
def test_detection_matches_contrib_small_random(seed):
    rng = np.random.RandomState(200 + seed)
    anchors = random_anchors(rng, rng.randint(1, 400))
    cls_prob, loc_pred = random_predictions(rng, 3, rng.randint(2, 8), anchors.shape[1],
                                            sharpness=rng.uniform(0.5, 4))
    for params in DETECTION_PARAMS:
        ours = mx.nd.MultiBoxDetection(cls_prob, loc_pred, anchors, **params)
        theirs = mx.nd.contrib.MultiBoxDetection(cls_prob, loc_pred, anchors, **params)
        np.testing.assert_array_equal(ours.asnumpy()[..., 0], theirs.asnumpy()[..., 0])
        assert_same_outputs(ours, theirs)


def test_detection_by_hand():
    anchors = mx.nd.array([[[0.1, 0.1, 0.5, 0.5], [0.12, 0.1, 0.52, 0.5], [0.6, 0.6, 0.9, 0.9]]])
    # classes: background, cat, dog; anchors 0 and 1 both "cat", anchor 2 "dog"
    cls_prob = mx.nd.array([[[0.1, 0.3, 0.2], [0.8, 0.6, 0.1], [0.1, 0.1, 0.7]]])
    loc_pred = mx.nd.zeros((1, 12))
    out = mx.nd.MultiBoxDetection(cls_prob, loc_pred, anchors, nms_threshold=0.5).asnumpy()[0]
    np.testing.assert_allclose(out, [[0, 0.8, 0.1, 0.1, 0.5, 0.5],
                                     [1, 0.7, 0.6, 0.6, 0.9, 0.9],
                                     [-1, 0.6, 0.12, 0.1, 0.52, 0.5]], atol=1e-6)
    # a dog box on top of the cat is kept per class, suppressed with force_suppress
    anchors = mx.nd.array([[[0.1, 0.1, 0.5, 0.5], [0.1, 0.1, 0.5, 0.5]]])
    cls_prob = mx.nd.array([[[0.1, 0.2], [0.9, 0.1], [0.0, 0.7]]])
    kept = mx.nd.MultiBoxDetection(cls_prob, mx.nd.zeros((1, 8)), anchors).asnumpy()[0]
    forced = mx.nd.MultiBoxDetection(cls_prob, mx.nd.zeros((1, 8)), anchors,
                                     force_suppress=True).asnumpy()[0]
    np.testing.assert_array_equal(kept[:, 0], [0, 1])
    np.testing.assert_array_equal(forced[:, 0], [0, -1])


def test_detection_unused_rows_are_minus_one():
    anchors = mx.nd.array([[[0.1, 0.1, 0.5, 0.5], [0.5, 0.5, 0.9, 0.9]]])
    cls_prob = mx.nd.array([[[0.1, 0.999], [0.9, 0.001]]])
    out = mx.nd.MultiBoxDetection(cls_prob, mx.nd.zeros((1, 8)), anchors).asnumpy()[0]
    np.testing.assert_array_equal(out[1], -np.ones(6))


# ---------------------------------------------------------------- errors, graphs, gradients

def error_text(func):
    with pytest.raises(mx.base.MXNetError) as info:
        out = func()
        for o in out if isinstance(out, (list, tuple)) else [out]:
            o.wait_to_read()
    return str(info.value)


def test_error_messages_name_operator_and_argument():
    anchors = mx.nd.zeros((1, 10, 4))
    labels = -mx.nd.ones((2, 3, 5))
    cls_pred = mx.nd.zeros((2, 4, 10))
    cases = [
        (lambda: mx.nd.MultiBoxPrior(mx.nd.zeros((2, 3, 4)), sizes=(0.1,)),
         ["MultiBoxPrior", "data", "4-D"]),
        (lambda: mx.nd.MultiBoxPrior(mx.nd.zeros((1, 1, 2, 2)), sizes=(-0.1,)),
         ["MultiBoxPrior", "sizes", "positive"]),
        (lambda: mx.nd.MultiBoxPrior(mx.nd.zeros((1, 1, 2, 2)), size=(0.1,)),
         ["MultiBoxPrior", "unknown argument 'size'"]),
        (lambda: mx.nd.MultiBoxTarget(anchors, mx.nd.zeros((2, 3, 4)), cls_pred),
         ["MultiBoxTarget", "label", "label_width >= 5"]),
        (lambda: mx.nd.MultiBoxTarget(anchors, labels, mx.nd.zeros((2, 4, 11))),
         ["MultiBoxTarget", "cls_pred", "11 anchors", "'anchor' has 10"]),
        (lambda: mx.nd.MultiBoxTarget(mx.nd.zeros((10, 4)), labels, cls_pred),
         ["MultiBoxTarget", "anchor", "(1, num_anchors, 4)"]),
        (lambda: mx.nd.MultiBoxTarget(anchors, mx.nd.array([[[-1, 0.1, -1, -1, -1]]] * 2), cls_pred),
         ["MultiBoxTarget", "label", "image 0", "padding rows must be all -1"]),
        (lambda: mx.nd.MultiBoxDetection(mx.nd.zeros((2, 4, 10)), mx.nd.zeros((2, 40)), anchors,
                                         nms_threshold=1.5),
         ["MultiBoxDetection", "nms_threshold", "(0, 1]"]),
        (lambda: mx.nd.MultiBoxDetection(mx.nd.zeros((2, 4, 10)), mx.nd.zeros((2, 40)), anchors,
                                         nms_threshold=0),
         ["MultiBoxDetection", "nms_threshold"]),
        (lambda: mx.nd.MultiBoxDetection(mx.nd.zeros((2, 4, 10)), mx.nd.zeros((2, 36)), anchors),
         ["MultiBoxDetection", "loc_pred", "(2,40)"]),
        (lambda: mx.nd.MultiBoxDetection(mx.nd.zeros((2, 4, 9)), mx.nd.zeros((2, 40)), anchors),
         ["MultiBoxDetection", "cls_prob", "9 anchors"]),
        (lambda: mx.nd.MultiBoxDetection(mx.nd.zeros((2, 4)), mx.nd.zeros((2, 40)), anchors),
         ["MultiBoxDetection", "cls_prob"]),
    ]
    for func, fragments in cases:
        text = error_text(func)
        for fragment in fragments:
            assert fragment in text, (fragment, text)
        assert text.count("Extension Traceback") <= 1 and "[1]" not in text, text


def small_graph():
    data, label = mx.sym.var("data"), mx.sym.var("label")
    feat = mx.sym.Convolution(data, num_filter=8, kernel=(3, 3), pad=(1, 1), name="feat")
    anchors = mx.sym.MultiBoxPrior(feat, sizes=(0.3, 0.5), ratios=(1, 2), name="anchors")
    num_anchors = 3 * 4 * 4
    cls_pred = mx.sym.reshape(mx.sym.Convolution(feat, num_filter=3 * 3, kernel=(1, 1)),
                              shape=(0, 3, num_anchors), name="cls_pred")
    loc_pred = mx.sym.reshape(mx.sym.Convolution(feat, num_filter=3 * 4, kernel=(1, 1)),
                              shape=(0, -1), name="loc_pred")
    target = mx.sym.MultiBoxTarget(anchors, label, cls_pred, negative_mining_ratio=3,
                                   name="target")
    det = mx.sym.MultiBoxDetection(mx.sym.softmax(cls_pred, axis=1), loc_pred, anchors,
                                   nms_topk=20, name="detection")
    return mx.sym.Group([target[0], target[2], det])


def test_symbol_json_round_trip_with_all_three_operators(tmp_path):
    net = small_graph()
    path = str(tmp_path / "net-symbol.json")
    net.save(path)
    loaded = mx.sym.load(path)
    assert loaded.tojson() == net.tojson()
    ops = {node["op"] for node in __import__("json").loads(loaded.tojson())["nodes"]}
    assert {"MultiBoxPrior", "MultiBoxTarget", "MultiBoxDetection"} <= ops
    shapes = dict(data=(2, 3, 4, 4), label=(2, 2, 5))
    _, out_shapes, _ = loaded.infer_shape(**shapes)
    assert out_shapes == [(2, 192), (2, 48), (2, 48, 6)]
    rng = np.random.RandomState(0)
    args = {name: mx.nd.array(rng.uniform(-1, 1, shape)) for name, shape in
            zip(net.list_arguments(), net.infer_shape(**shapes)[0])}
    args["label"] = mx.nd.array([[[0, 0.1, 0.1, 0.6, 0.7], [-1] * 5], [[1, 0.3, 0.2, 0.9, 0.9]] * 2])
    first = net.bind(mx.cpu(), args).forward()
    second = loaded.bind(mx.cpu(), args).forward()
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a.asnumpy(), b.asnumpy())


def test_operators_have_zero_gradients_in_a_training_graph():
    cls_pred = mx.sym.var("cls_pred")
    anchors = mx.sym.MultiBoxPrior(mx.sym.var("feat"), sizes=(0.5,), name="anchors")
    target = mx.sym.MultiBoxTarget(anchors, mx.sym.var("label"), cls_pred)
    loss = mx.sym.MakeLoss(mx.sym.sum(target[2]) + mx.sym.sum(cls_pred))
    exe = loss.simple_bind(mx.cpu(), feat=(1, 1, 2, 2), label=(1, 1, 5), cls_pred=(1, 3, 4))
    exe.arg_dict["label"][:] = mx.nd.array([[[0, 0.1, 0.1, 0.5, 0.5]]])
    exe.forward(is_train=True)
    exe.backward()
    np.testing.assert_array_equal(exe.grad_dict["cls_pred"].asnumpy(), np.ones((1, 3, 4)))
    np.testing.assert_array_equal(exe.grad_dict["feat"].asnumpy(), np.zeros((1, 1, 2, 2)))


def test_float64_inputs_give_the_float32_results():
    # MXNet's contrib kernels accept float32 only; ours also run in float64.
    rng = np.random.RandomState(9)
    anchors = random_anchors(rng, 60)
    labels = random_labels(rng, 2, 3, counts=[2, 3])
    cls_pred = mx.nd.array(rng.randn(2, 3, 60).astype(np.float32))
    single = mx.nd.MultiBoxTarget(anchors, labels, cls_pred, negative_mining_ratio=3)
    double = mx.nd.MultiBoxTarget(anchors.astype("float64"), labels.astype("float64"),
                                  cls_pred.astype("float64"), negative_mining_ratio=3)
    assert double[0].dtype == np.float64
    np.testing.assert_array_equal(single[2].asnumpy(), double[2].asnumpy())
    np.testing.assert_allclose(single[0].asnumpy(), double[0].asnumpy(), atol=1e-5)
    prob = mx.nd.softmax(cls_pred, axis=1)
    loc = mx.nd.array(rng.randn(2, 240).astype(np.float32) * 0.3)
    det32 = mx.nd.MultiBoxDetection(prob, loc, anchors).asnumpy()
    det64 = mx.nd.MultiBoxDetection(prob.astype("float64"), loc.astype("float64"),
                                    anchors.astype("float64")).asnumpy()
    np.testing.assert_allclose(det32, det64, atol=1e-5)


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not installed")
@pytest.mark.parametrize("source", operators.cuda_sources(), ids=os.path.basename)
def test_cuda_sources_compile(source, tmp_path):
    operators.compile_cuda_object(source, str(tmp_path / "kernel.o"))
    assert (tmp_path / "kernel.o").stat().st_size > 0


def test_library_is_loaded_once_and_registers_all_three():
    assert operators.load() == (os.environ.get(operators.LIBRARY_ENV) or operators.LIBRARY_PATH)
    for name in operators.OPERATOR_NAMES:
        assert hasattr(mx.nd, name) and hasattr(mx.sym, name)


def test_stale_check_notices_another_build_configuration(tmp_path):
    library = str(tmp_path / operators.LIBRARY_NAME)
    open(library, "w").close()  # newer than every source
    assert operators.is_stale(with_cuda=False, library=library)  # no configuration stamp
    for built_with, wanted in [(dict(with_cuda=True), dict(with_cuda=False)),
                               (dict(with_cuda=False), dict(with_cuda=True)),
                               (dict(with_cuda=False, sanitize=("address",)), dict(with_cuda=False))]:
        with open(library + ".json", "w") as stamp:
            json.dump(operators.build_config(**built_with), stamp)
        assert operators.is_stale(library=library, **wanted)
        assert not operators.is_stale(library=library, **built_with)
    config = operators.build_config(False)
    config["mxnet"] = "1.9.1 another-build"  # e.g. mxnet replaced by mxnet-cu112
    with open(library + ".json", "w") as stamp:
        json.dump(config, stamp)
    assert operators.is_stale(with_cuda=False, library=library)


def test_cuda_arch_flags_cover_supported_architectures_and_ptx():
    if shutil.which("nvcc") is None:
        pytest.skip("nvcc not installed")
    flags = operators.cuda_arch_flags()
    sass = [f for f in flags if "code=sm_" in f]
    assert sass and all(int(f.rsplit("_", 1)[1]) in operators.CUDA_ARCHS for f in sass)
    newest = max(int(f.rsplit("_", 1)[1]) for f in sass)
    assert flags[-1] == "-gencode=arch=compute_%d,code=compute_%d" % (newest, newest)


# The former build defects of issue #17, tested on the commands build_ops would run (no real
# nvcc needed): machine code only for nvcc's default architecture (no -gencode), a dynamically
# linked libcudart without rpath.  The stale check's part is test_stale_check_notices_...
def test_cuda_arch_flags_follow_what_nvcc_supports(tmp_path, monkeypatch):
    fake_nvcc = tmp_path / "nvcc"
    fake_nvcc.write_text("#!/bin/sh\necho sm_50 sm_75 sm_80 sm_86 sm_89 sm_90 sm_100\n")
    fake_nvcc.chmod(0o755)
    monkeypatch.setattr(operators, "nvcc_path", lambda: str(fake_nvcc))
    assert operators.cuda_arch_flags() == [
        "-gencode=arch=compute_75,code=sm_75", "-gencode=arch=compute_80,code=sm_80",
        "-gencode=arch=compute_86,code=sm_86", "-gencode=arch=compute_89,code=sm_89",
        "-gencode=arch=compute_90,code=sm_90", "-gencode=arch=compute_90,code=compute_90"]


def test_cuda_build_passes_gencode_and_links_the_runtime_statically(tmp_path, monkeypatch):
    commands = []

    def record(cmd):  # stands in for the compilers: notes the command, creates its output
        commands.append(cmd)
        open(cmd[cmd.index("-o") + 1], "w").close()

    arch = ["-gencode=arch=compute_90,code=sm_90", "-gencode=arch=compute_90,code=compute_90"]
    monkeypatch.setattr(operators, "_run", record)
    monkeypatch.setattr(operators, "nvcc_path", lambda: "/opt/cuda/bin/nvcc")
    monkeypatch.setattr(operators, "cuda_arch_flags", lambda: arch)
    monkeypatch.setattr(operators, "cuda_home", lambda: "/opt/cuda")
    monkeypatch.setattr(operators, "BUILD_DIR", str(tmp_path))
    monkeypatch.setattr(operators, "LIBRARY_PATH", str(tmp_path / operators.LIBRARY_NAME))
    library = operators.build(with_cuda=True, verbose=False)
    *nvcc, link = commands
    assert [cmd[0] for cmd in nvcc] == ["/opt/cuda/bin/nvcc"] * len(operators.cuda_sources())
    assert all(flag in cmd for cmd in nvcc for flag in arch)
    assert "-lcudart_static" in link and "-lcudart" not in link
    with open(library + ".json") as stamp:
        assert json.load(stamp)["cuda"] is True
