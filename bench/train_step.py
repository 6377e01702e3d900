#!/usr/bin/env python
"""Training speed on CPU: images/s of one SSD training iteration, ours against GluonCV's, on
the same batch, in one process, taking turns round by round.

    python -m bench.train_step                         # VGG16-reduced SSD300, batch 8
    python -m bench.train_step --rounds 5 --batch-size 4

ours: the training symbol (MultiBoxTarget, softmax and smooth-L1 losses inside the graph)
in an MXNet Module -- forward, backward, SGD update -- as train/ runs it.
GluonCV: its hybridized network (static memory), SSDTargetGenerator run per image as its
data pipeline does, SSDMultiBoxLoss (hard negative mining), autograd backward and
Trainer.step.  Both start from random weights; the update uses the same SGD settings.
"""
import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from bench.timing import (configure_threads, format_table, interleaved_medians,  # noqa: E402
                          load_average)

THREADS = configure_threads(sys.argv)

import cv2  # noqa: E402
import mxnet as mx  # noqa: E402
import numpy as np  # noqa: E402
from mxnet import autograd, gluon  # noqa: E402

from dataset.iterator import preprocess_image  # noqa: E402
from bench.peers import (GLUON_MEAN, GLUON_STD, available_peers, import_gluoncv,  # noqa: E402
                         import_gluoncv_module)
from dataset import synthetic  # noqa: E402
from symbol.symbol_factory import get_symbol_train  # noqa: E402

NUM_CLASSES = 20
MAX_OBJECTS = 8  # label rows per image (padded with -1)
SGD = dict(learning_rate=1e-4, momentum=0.9, wd=5e-4)  # tiny rate: random weights must not blow up
VARIANCES = (0.1, 0.1, 0.2, 0.2)
GLUONCV_MODELS = {("vgg16_reduced", 300): "ssd_300_vgg16_atrous_voc",
                  ("vgg16_reduced", 512): "ssd_512_vgg16_atrous_voc",
                  ("resnet50", 512): "ssd_512_resnet50_v1_voc"}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--network", default="vgg16_reduced")
    parser.add_argument("--data-shape", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="timed iterations per runtime")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0,
                        help="OpenMP threads (default: OMP_NUM_THREADS or all cores)")
    parser.add_argument("--gluoncv", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args()
    if args.gluoncv and (args.network, args.data_shape) not in GLUONCV_MODELS:
        parser.error("GluonCV has no twin of %s at %d; choose from %s or --no-gluoncv"
                     % (args.network, args.data_shape, sorted(GLUONCV_MODELS)))
    return args


def synthetic_batch(batch, side):
    """(RGB uint8 images side x side, labels (batch, MAX_OBJECTS, 6) normalised, -1 padded).
    Images without objects are skipped: GluonCV's target generator cannot take them."""
    images, labels = [], -np.ones((batch, MAX_OBJECTS, 6), np.float32)
    number = 0
    while len(images) < batch:
        image, objects = synthetic.render_image(0, "train", number, side)
        number += 1
        if not objects:
            continue
        height, width = image.shape[:2]
        for k, (name, x0, y0, x1, y1) in enumerate(objects[:MAX_OBJECTS]):
            labels[len(images), k] = [synthetic.CLASSES.index(name), x0 / width, y0 / height,
                                      x1 / width, y1 / height, 0]
        images.append(cv2.resize(image, (side, side), interpolation=cv2.INTER_LINEAR))
    return images, labels


def ours_step(network, side, images, labels):
    """One training iteration of our training symbol in a Module."""
    net = get_symbol_train(network, side, NUM_CLASSES)
    data = np.stack([preprocess_image(image[:, :, ::-1], side) for image in images])
    batch = mx.io.DataBatch([mx.nd.array(data)], [mx.nd.array(labels)])
    module = mx.mod.Module(net, data_names=("data",), label_names=("label",), context=mx.cpu())
    module.bind(data_shapes=[("data", batch.data[0].shape)],
                label_shapes=[("label", labels.shape)])
    module.init_params(mx.init.Xavier(magnitude=2))
    module.init_optimizer(optimizer="sgd", optimizer_params={
        "learning_rate": SGD["learning_rate"], "momentum": SGD["momentum"], "wd": SGD["wd"]})

    def step():
        module.forward_backward(batch)
        module.update()
        mx.nd.waitall()
    return step


def gluoncv_step(model_name, images, labels, side):
    """One iteration as GluonCV's train_ssd.py runs it (targets made per image by the
    data pipeline's SSDTargetGenerator, hard negatives mined in SSDMultiBoxLoss); returns
    (step, make_targets), the latter the target generation alone."""
    gcv = import_gluoncv()
    net = gcv.model_zoo.get_model(model_name, pretrained=False, pretrained_base=False)
    net.initialize(mx.init.Xavier(magnitude=2), ctx=mx.cpu())
    with autograd.train_mode():
        _, _, anchors = net(mx.nd.zeros((1, 3, side, side)))
    net.hybridize(static_alloc=True, static_shape=True)
    targets = import_gluoncv_module("model_zoo.ssd.target").SSDTargetGenerator(
        iou_thresh=0.5, stds=VARIANCES, negative_mining_ratio=-1)
    loss_fn = gcv.loss.SSDMultiBoxLoss()
    trainer = gluon.Trainer(net.collect_params(), "sgd", SGD)
    data = mx.nd.array(((np.stack(images) / 255.0 - GLUON_MEAN) / GLUON_STD)
                       .transpose(0, 3, 1, 2).astype(np.float32))
    boxes = [labels[i][labels[i][:, 0] >= 0] for i in range(len(images))]

    def make_targets():
        cls_targets, box_targets = [], []
        for rows in boxes:  # pixel boxes of the network input, as the transform makes them
            gt_boxes = mx.nd.array(rows[None, :, 1:5] * side)
            gt_ids = mx.nd.array(rows[None, :, :1])
            cls_t, box_t, _ = targets(anchors, None, gt_boxes, gt_ids)
            cls_targets.append(cls_t)
            box_targets.append(box_t)
        return mx.nd.concat(*cls_targets, dim=0), mx.nd.concat(*box_targets, dim=0)

    def step():
        cls_targets, box_targets = make_targets()
        with autograd.record():
            cls_preds, box_preds, _ = net(data)
            sum_loss, _, _ = loss_fn(cls_preds, box_preds, cls_targets, box_targets)
            autograd.backward(sum_loss)
        trainer.step(1)  # SSDMultiBoxLoss already normalises by the positives
        mx.nd.waitall()
    def targets_only():
        make_targets()
        mx.nd.waitall()
    return step, targets_only


def main():
    args = parse_args()
    print("MXNet %s, OMP_NUM_THREADS=%d, %d CPUs, load %s at start"
          % (mx.__version__, THREADS, os.cpu_count(), load_average()))
    images, labels = synthetic_batch(args.batch_size, args.data_shape)
    runs = {"ours (Module, MultiBoxTarget in graph)": ours_step(args.network, args.data_shape,
                                                                images, labels)}
    target_seconds = None
    if args.gluoncv and available_peers(["gluoncv"]):
        model = GLUONCV_MODELS[(args.network, args.data_shape)]
        step, make_targets = gluoncv_step(model, images, labels, args.data_shape)
        runs["GluonCV %s (SSDMultiBoxLoss)" % model] = step
        target_seconds = interleaved_medians({"targets": make_targets}, 5, 1,
                                             desc="GluonCV targets")["targets"]
    start_load = load_average()
    medians = interleaved_medians(runs, args.rounds, args.warmup, desc="training steps")
    print("\n%s %d, batch %d, median of %d iterations, load %s -> %s"
          % (args.network, args.data_shape, args.batch_size, args.rounds, start_load,
             load_average()))
    ours = medians[next(iter(runs))]
    print(format_table(("training iteration", "img/s", "s/iter", "ours speed-up"),
                       [(name, "%.2f" % (args.batch_size / t), "%.2f" % t, "%.2fx" % (t / ours))
                        for name, t in medians.items()]))
    if target_seconds is not None:
        ratio = list(medians.values())[1] / ours
        print("  GluonCV's step includes %.0f ms of SSDTargetGenerator for the %d images"
              % (target_seconds * 1e3, args.batch_size))
        print("\nours vs GluonCV: %.3fx (goal >= 1.0x) %s"
              % (ratio, "met" if ratio >= 1.0 else "MISSED"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
