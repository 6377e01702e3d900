"""Speed of the project's MultiBox operators against MXNet's contrib operators.

Same inputs, same process, alternating runs; prints the median time of each and the ratio
ours / contrib (below 1.0 = ours is faster).

    python -m bench.ops [--repeat 7]
"""
import argparse
import os
import statistics
import time

from config.threads import set_default_threads  # noqa: E402

set_default_threads()

import mxnet as mx  # noqa: E402
import numpy as np  # noqa: E402

from symbol import operators, symbol_factory  # noqa: E402

# SSD300 (VGG16-reduced) anchor layers from the network's own preset: 8732 anchors.
SSD300 = symbol_factory.get_config("vgg16_reduced", 300)
SSD300_LAYERS = [(side, sizes, ratios, (step, step)) for side, sizes, ratios, step in
                 zip((38, 19, 10, 5, 3, 1), SSD300["sizes"], SSD300["ratios"], SSD300["steps"])]
NUM_CLASSES = 21
LABEL_ROWS = 58  # label_pad_width 350 / object width 6, as in VOC training


def prior_all_layers(prior_op, feature_maps):
    outs = [prior_op(fm, sizes=sizes, ratios=ratios, steps=steps)
            for fm, (_, sizes, ratios, steps) in zip(feature_maps, SSD300_LAYERS)]
    return mx.nd.concat(*[o.reshape((1, -1, 4)) for o in outs], dim=1)


def voc_like_labels(rng, batch):
    labels = -np.ones((batch, LABEL_ROWS, 6), np.float32)
    for b in range(batch):
        for k in range(rng.randint(1, 8)):  # VOC averages ~2.5 objects per image
            x0, y0 = rng.uniform(0, 0.8, 2)
            w, h = rng.uniform(0.05, 0.6, 2)
            labels[b, k] = [rng.randint(0, 20), x0, y0, min(x0 + w, 1), min(y0 + h, 1), 0]
    return mx.nd.array(labels)


def median_seconds(func, repeat):
    func()  # warm-up (first call allocates)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def wait(out):
    for o in out if isinstance(out, (list, tuple)) else [out]:
        o.wait_to_read()


def cases(rng):
    feature_maps = [mx.nd.zeros((1, 256, side, side)) for side, *_ in SSD300_LAYERS]
    anchors = prior_all_layers(mx.nd.contrib.MultiBoxPrior, feature_maps)
    labels = voc_like_labels(rng, 32)
    logits = mx.nd.array(rng.randn(32, NUM_CLASSES, anchors.shape[1]).astype(np.float32))
    cls_prob = mx.nd.softmax(mx.nd.array(rng.randn(8, NUM_CLASSES, anchors.shape[1])
                                         .astype(np.float32) * 3), axis=1)
    loc_pred = mx.nd.array(rng.randn(8, anchors.shape[1] * 4).astype(np.float32) * 0.5)
    contrib = mx.nd.contrib
    yield ("Prior, SSD300 anchor set (8732)",
           lambda op: wait(prior_all_layers(op, feature_maps)),
           mx.nd.MultiBoxPrior, contrib.MultiBoxPrior)
    yield ("Target, batch 32, mining ratio 3",
           lambda op: wait(op(anchors, labels, logits, negative_mining_ratio=3)),
           mx.nd.MultiBoxTarget, contrib.MultiBoxTarget)
    for topk in (400, -1):
        yield ("Detection, batch 8, nms_topk %d" % topk,
               lambda op, k=topk: wait(op(cls_prob, loc_pred, anchors, nms_threshold=0.45,
                                          nms_topk=k)),
               mx.nd.MultiBoxDetection, contrib.MultiBoxDetection)


def main():
    operators.load()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="timed runs per operator")
    args = parser.parse_args()
    rng = np.random.RandomState(0)
    print("MXNet %s, OMP_NUM_THREADS=%s, median of %d runs"
          % (mx.__version__, os.environ["OMP_NUM_THREADS"], args.repeat))
    header = "%-36s %12s %12s %8s" % ("operator", "ours (ms)", "contrib (ms)", "ratio")
    print(header)
    print("-" * len(header))
    for name, run, ours, theirs in cases(rng):
        t_ours = median_seconds(lambda: run(ours), args.repeat)
        t_theirs = median_seconds(lambda: run(theirs), args.repeat)
        print("%-36s %12.2f %12.2f %7.2fx" % (name, t_ours * 1e3, t_theirs * 1e3,
                                              t_ours / t_theirs))


if __name__ == "__main__":
    main()
