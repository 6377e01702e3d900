#!/usr/bin/env python
"""Data-pipeline throughput: images/s of the training iterator (full SSD augmentation), the
validation iterator (no augmentation) and plain JPEG decoding of the same records, next to
what CPU training of a small SSD consumes.  The goal is augmented data >= 5x that rate, so
that data loading costs training at most ~20% of the CPU.

  python -m bench.data                      # synthetic data, mobilenet_0.25 at 300x300
  python -m bench.data --rec data/train.rec --network ''   # your data, skip the training row
"""
import argparse
import os
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import cv2  # noqa: E402
import mxnet as mx  # noqa: E402
import numpy as np  # noqa: E402

from config.config import cfg  # noqa: E402
from dataset import synthetic  # noqa: E402
from dataset.iterator import DetRecordIter, validation_iter  # noqa: E402

GOAL_RATIO = 5.0


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--rec', default='',
                        help='record file (default: synthetic data, made if missing)')
    parser.add_argument('--synthetic-dir', default=os.path.join(ROOT, 'data', 'synthetic_bench'))
    parser.add_argument('--num-images', type=int, default=600, help='synthetic training images')
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--data-shape', type=int, default=300)
    parser.add_argument('--seconds', type=float, default=10.0,
                        help='time spent on each measurement')
    parser.add_argument('--threads', type=int, default=os.cpu_count() or 1,
                        help='plain decoding threads (iterators: the config\'s preprocess_threads)')
    parser.add_argument('--network', default='mobilenet_0.25',
                        help='network whose CPU training rate is compared ("" to skip)')
    parser.add_argument('--train-batch-size', type=int, default=16)
    return parser.parse_args()


def timed_rate(step, seconds):
    """Images per second of repeated `step()` calls (each returns an image count), after one
    warm-up call."""
    step()
    count, start = 0, time.time()
    while time.time() - start < seconds:
        count += step()
    return count / (time.time() - start)


def iterator_rate(rec, aug, args):
    """Images/s of the training iterator with ``aug``, or with ``aug`` None of the one
    validation iterator (no augmentation, each image once)."""
    it = (validation_iter(rec, args.batch_size, args.data_shape) if aug is None else
          DetRecordIter(rec, args.batch_size, args.data_shape, **aug))

    def step():
        try:
            batch = it.next()
        except StopIteration:
            it.reset()
            batch = it.next()
        batch.data[0].wait_to_read()
        return args.batch_size - batch.pad
    return timed_rate(step, args.seconds)


def read_encoded_images(rec):
    reader = mx.recordio.MXRecordIO(rec, 'r')
    images = [mx.recordio.unpack(item)[1] for item in iter(reader.read, None)]
    reader.close()
    return images


def decode_rate(encoded, threads, seconds):
    buffers = [np.frombuffer(e, np.uint8) for e in encoded]
    with ThreadPoolExecutor(threads) as pool:
        def step():
            for _ in pool.map(lambda b: cv2.imdecode(b, cv2.IMREAD_COLOR), buffers):
                pass
            return len(buffers)
        return timed_rate(step, seconds)


def training_rate(network, num_classes, args):
    """Images/s of forward+backward+update of the SSD training symbol on CPU, or None when
    the network cannot be built here."""
    try:
        from symbol.symbol_factory import get_symbol_train
        net = get_symbol_train(network, args.data_shape, num_classes)
    except Exception as err:  # another team's package may be unfinished: report, don't fail
        print('(training rate skipped: %s: %s)' % (type(err).__name__, err))
        return None
    batch = args.train_batch_size
    data = mx.nd.random.uniform(-100, 100, (batch, 3, args.data_shape, args.data_shape))
    objects = [[0, 0.1, 0.1, 0.5, 0.5, 0], [1, 0.4, 0.5, 0.9, 0.8, 0]]
    label = mx.nd.array(np.tile(objects, (batch, 1, 1)))
    mod = mx.mod.Module(net, data_names=('data',), label_names=('label',), context=mx.cpu())
    mod.bind(data_shapes=[('data', data.shape)], label_shapes=[('label', label.shape)])
    mod.init_params(mx.init.Xavier())
    mod.init_optimizer(optimizer='sgd', optimizer_params={'learning_rate': 1e-4})
    fixed = mx.io.DataBatch([data], [label])

    def step():
        mod.forward_backward(fixed)
        mod.update()
        mx.nd.waitall()
        return batch
    return timed_rate(step, args.seconds)


def main():
    args = parse_args()
    rec, num_classes = args.rec, 20
    if not rec:
        info = synthetic.prepare(args.synthetic_dir, num_train=args.num_images, num_val=1,
                                 data_shape=args.data_shape)
        rec, num_classes = info['train_rec'], len(info['class_names'])
    encoded = read_encoded_images(rec)
    rows = [
        ('JPEG decode only, 1 thread', decode_rate(encoded, 1, args.seconds)),
        ('JPEG decode only, %d threads' % args.threads,
         decode_rate(encoded, args.threads, args.seconds)),
        ('validation iterator (no augmentation)', iterator_rate(rec, None, args)),
        ('training iterator (SSD augmentation)', iterator_rate(rec, cfg.train, args)),
    ]
    train = training_rate(args.network, num_classes, args) if args.network else None
    if train:
        rows.append(('%s training on CPU (consumes)' % args.network, train))
    mean_size = np.mean([len(e) for e in encoded]) / 1024
    cpus = os.cpu_count() or 1
    # ImageDetRecordIter decodes with at most (CPUs - 1) threads, whatever it is asked for
    decoders = max(1, min(cfg.train['preprocess_threads'], cpus - 1))
    print('\n%d records of %s (%.0f KiB/image), batch %d, %dx%d, %d CPUs, %d decoding threads'
          % (len(encoded), rec, mean_size, args.batch_size, args.data_shape, args.data_shape,
             cpus, decoders))
    print('%-48s %10s' % ('pipeline', 'images/s'))
    for name, rate in rows:
        print('%-48s %10.1f' % (name, rate))
    if train:
        ratio = rows[3][1] / train
        print('augmented data / training consumption: %.1fx (goal >= %.0fx: %s)'
              % (ratio, GOAL_RATIO, 'met' if ratio >= GOAL_RATIO else 'NOT met'))


if __name__ == '__main__':
    main()
