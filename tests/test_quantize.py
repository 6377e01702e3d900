"""tools/quantize.py: the INT8 model of a small SSD runs in int8 and keeps the trained demo
model's fp32 detections; saved models reload; bad requests are refused with a clear message."""
import os
import re

import cv2
import mxnet as mx
import numpy as np
import pytest

from bench.random_weights import random_params
from dataset import synthetic
from symbol.symbol_factory import get_symbol
from tools import quantize

SIDE = 128
NUM_CLASSES = 4
MEAN = np.array([123, 117, 104], np.float32).reshape(1, 3, 1, 1)
# Random heads scaled like a trained model's: confident classes, box offsets O(1).
HEAD_GAINS = {"_cls_pred_conv_weight": 0.3, "_loc_pred_conv_weight": 0.03}


def synthetic_batch(split, count, side=SIDE):
    images = [cv2.resize(synthetic.render_image(0, split, i, side)[0], (side, side))
              for i in range(count)]
    return np.stack(images).astype(np.float32).transpose(0, 3, 1, 2) - MEAN


def convolution_names(net):
    return [n[:-len("_output")] for n in net.get_internals().list_outputs()
            if n.endswith(("conv2d_output", "_conv_output"))]


def close_to_fp32(share, score_diff):
    """INT8 keeps >= 95% of the confident fp32 detections (same class, IoU >= 0.7) and their
    scores move by < 0.05 on average."""
    return share >= 0.95 and score_diff < 0.05


def calibration(data, batch_size=4):
    return mx.io.NDArrayIter(mx.nd.array(data), batch_size=batch_size)


def detect(model, data):
    module = quantize.bind(*model, data.shape)
    module.forward(mx.io.DataBatch([mx.nd.array(data)]), is_train=False)
    return module.get_outputs()[0].asnumpy()


@pytest.fixture(scope="module")
def small_ssd():
    net = get_symbol("mobilenet_0.25", SIDE, NUM_CLASSES)
    mx.random.seed(0)
    return (net,) + random_params(net, SIDE, HEAD_GAINS)


@pytest.fixture(scope="module")
def int8_ssd(small_ssd):
    return quantize.quantize(*small_ssd, calibration(synthetic_batch("train", 8)), 8, "naive")


@pytest.fixture(scope="module")
def val_images():
    return synthetic_batch("val", 4)


@pytest.fixture(scope="module")
def demo_model(shipped_model):
    """The shipped demo model (trained weights: what INT8 must preserve) and val images."""
    from detect.shipped import SHIPPED_MODEL as shipped
    from symbol import model_io
    prefix = shipped_model
    side = shipped["data_shape"]
    return (mx.model.load_checkpoint(prefix, max(model_io.saved_epochs(prefix))), side,
            synthetic_batch("val", 16, side))


def test_quantized_model_runs_convolutions_in_int8(small_ssd, int8_ssd):
    # every convolution (backbone, extra layers, heads) is fused and quantized
    assert quantize.quantized_layer_count(int8_ssd[0]) == len(
        convolution_names(small_ssd[0])) == 41


def test_int8_detections_stay_close_to_fp32(demo_model):
    """Measured on 16 images: all 31 confident detections kept, scores within 0.006."""
    fp32_model, side, images = demo_model
    int8_model = quantize.quantize(*fp32_model, calibration(synthetic_batch("train", 16, side)),
                                   16, "naive")
    fp32, int8 = detect(fp32_model, images), detect(int8_model, images)
    confident = ((fp32[:, :, 0] >= 0) & (fp32[:, :, 1] >= 0.5)).sum()
    assert confident >= 25  # enough detections to compare
    agreement = quantize.detection_agreement(fp32, int8, min_score=0.5, iou=0.7)
    assert close_to_fp32(*agreement)


def test_miscalibrated_int8_model_loses_the_detections(demo_model):
    """Thresholds from images 10x too dark clip the activations: the check above notices
    (measured: 23% of the confident detections kept, those scores off by 0.17)."""
    fp32_model, side, images = demo_model
    bad = quantize.quantize(*fp32_model, calibration(synthetic_batch("train", 16, side) * 0.1),
                            16, "naive")
    share, score_diff = quantize.detection_agreement(detect(fp32_model, images),
                                                     detect(bad, images), 0.5, 0.7)
    assert share < 0.5 and not close_to_fp32(share, score_diff), (share, score_diff)


def test_entropy_calibration_and_excluded_layers(small_ssd, val_images):
    """Entropy (KL) thresholds for the first 4 convolutions, all others kept in fp32 (KL
    search costs ~1 s per layer)."""
    excluded = convolution_names(small_ssd[0])[4:]
    qsym, qargs, qaux = quantize.quantize(*small_ssd, calibration(synthetic_batch("train", 8)),
                                          8, "entropy", excluded_layers=excluded)
    assert quantize.quantized_layer_count(qsym) == 4
    assert close_to_fp32(*quantize.detection_agreement(
        detect(small_ssd, val_images), detect((qsym, qargs, qaux), val_images), 0.5, 0.7))


def test_saved_int8_model_reloads_with_the_same_output(int8_ssd, val_images, tmp_path):
    prefix = str(tmp_path / "ssd_int8")
    mx.model.save_checkpoint(prefix, quantize.QUANTIZED_EPOCH, *int8_ssd)
    loaded = mx.model.load_checkpoint(prefix, quantize.QUANTIZED_EPOCH)
    np.testing.assert_array_equal(detect(loaded, val_images), detect(int8_ssd, val_images))


def test_images_only_stops_after_n_images_and_drops_labels():
    iterator = quantize.ImagesOnly(mx.io.NDArrayIter(mx.nd.zeros((10, 3, 8, 8)),
                                                     mx.nd.zeros(10), batch_size=4), 6)
    assert iterator.provide_label == []
    batches = list(iterator)
    assert len(batches) == 2 and iterator.seen == 8 and batches[0].label is None
    iterator.reset()
    assert len(list(iterator)) == 2


@pytest.mark.parametrize("kwargs, message", [
    (dict(calib_mode="kl"), "calib_mode must be one of naive, entropy, got 'kl'"),
    (dict(excluded_layers=["conv_99"]), "excluded layer\\(s\\) not in the network: conv_99"),
])
def test_bad_requests_are_refused(small_ssd, kwargs, message):
    with pytest.raises(quantize.QuantizeError, match=message):
        quantize.quantize(*small_ssd, calibration(synthetic_batch("train", 4)), 4, **kwargs)


def test_cli_quantizes_a_checkpoint_and_compares_map(small_ssd, tmp_path, capsys):
    data = synthetic.prepare(str(tmp_path / "synthetic"), num_train=8, num_val=8, seed=0,
                             data_shape=SIDE, progress=False)
    net, args, auxs = small_ssd
    prefix = str(tmp_path / "ssd_small")
    mx.model.save_checkpoint(prefix, 3, net, args, auxs)
    assert quantize.main(["--network", "mobilenet_0.25", "--prefix", prefix,
                          "--data-shape", str(SIDE), "--class-names", "synthetic",
                          "--calib-rec", data["train_rec"], "--eval-rec", data["val_rec"],
                          "--num-calib-images", "8", "--batch-size", "4"]) == 0
    out = capsys.readouterr().out
    assert "quantized 41 convolutions to int8" in out and "on 8 images" in out
    assert os.path.isfile(prefix + "_int8-symbol.json")
    assert os.path.isfile(prefix + "_int8-0000.params")
    rows = dict(re.findall(r"^(fp32|int8)\s+([\d.]+)\s+[\d.]+$", out, re.M))
    assert set(rows) == {"fp32", "int8"} and all(0 <= float(v) <= 1 for v in rows.values())
    assert re.search(r"int8 / fp32 speed: [\d.]+x, mAP change: [-+][\d.]+", out)


def test_cli_reports_a_missing_record_file(small_ssd, tmp_path, capsys):
    net, args, auxs = small_ssd
    prefix = str(tmp_path / "ssd_small")
    mx.model.save_checkpoint(prefix, 1, net, args, auxs)
    assert quantize.main(["--network", "mobilenet_0.25", "--prefix", prefix, "--data-shape",
                          str(SIDE), "--class-names", "synthetic", "--calib-rec",
                          str(tmp_path / "nowhere.rec"), "--eval-rec", ""]) == 1
    assert capsys.readouterr().err == ("error: record file not found: %s\n"
                                       % (tmp_path / "nowhere.rec"))
