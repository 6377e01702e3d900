"""Detect objects with a trained SSD in images, folders, videos or a camera; write annotated
pictures / video and the detections (pixel coordinates) as JSON.

    python demo.py                                   # shipped model on data/demo/ -> output/demo/
    python demo.py --images photo.jpg,shots/ --network vgg16_reduced --data-shape 300 \\
        --prefix model/ssd_ --epoch 240 --class-names pascal_voc --show
    python demo.py --video clip.mp4 --save-dir output/clip
    python demo.py --deploy --prefix model/deploy_ssd_mobilenet_0.25_224
    python demo.py --runtime onnxruntime             # model/deploy_ssd_mobilenet_0.25_224.onnx
"""
import argparse
import os
import sys

from config.threads import set_default_threads

set_default_threads()  # before mxnet is imported (by the imports below)

from detect.cli import BOOL, HelpFormatter  # noqa: E402
from detect.runtimes import add_runtime_argument  # noqa: E402
from detect.shipped import DEMO_IMAGES, DEMO_OUTPUT, SHIPPED_MODEL  # noqa: E402


def parse_args(argv=None):
    from evaluate.options import parse_data_shape
    shipped = SHIPPED_MODEL
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=HelpFormatter)
    p.add_argument('--network', default=shipped['network'], help='network the model was built '
                   'with (ignored with --deploy)')
    p.add_argument('--images', default=None,
                   help='comma-separated image files, folders and glob patterns '
                        '(default: %s, unless --video or --camera is given)' % DEMO_IMAGES)
    p.add_argument('--dir', default=None, help='folder the --images entries are relative to')
    p.add_argument('--ext', default=None,
                   help='extension appended to the --images entries (filters folders)')
    p.add_argument('--epoch', type=int, default=shipped['epoch'],
                   help='checkpoint epoch (default: the newest one with this prefix)')
    p.add_argument('--prefix', default=shipped['prefix'],
                   help="checkpoint prefix; ending in '_' appends <network>_<data shape> "
                        "(with --deploy: deploy_ in front of that name, as deploy.py writes)")
    p.add_argument('--cpu', action=BOOL, default=False, help='run on the CPU')
    p.add_argument('--gpu', type=int, default=None,
                   help='GPU id (default: GPU 0 if MXNet sees one, else the CPU)')
    p.add_argument('--data-shape', type=parse_data_shape, default=shipped['data_shape'],
                   help='network input "S" or "H,W"')
    for channel, mean in zip('rgb', shipped['mean_pixels']):
        p.add_argument('--mean-' + channel, type=float, default=mean,
                       help='mean subtracted from the %s channel (as in training)'
                            % dict(r='red', g='green', b='blue')[channel])
    p.add_argument('--thresh', type=float, default=0.5,
                   help='lowest score drawn and written to the JSON')
    p.add_argument('--nms', dest='nms_thresh', type=float, default=0.45, help='NMS threshold')
    p.add_argument('--nms-topk', type=int, default=400, help='detections kept before NMS')
    p.add_argument('--force-nms', action=BOOL, default=True,
                   help='suppress overlapping boxes of different classes too')
    p.add_argument('--timer', action=BOOL, default=True, help='print the detection time')
    p.add_argument('--deploy', action=BOOL, default=False,
                   help="use the checkpoint's own -symbol.json (a deploy.py or converted "
                        "model) instead of building --network; its NMS settings are fixed")
    p.add_argument('--class-names', default=shipped['class_names'],
                   help='"a,b,c", a file with one name per line, or a name in dataset/names')
    p.add_argument('--batch-size', type=int, default=1, help='images per forward pass')
    p.add_argument('--save-dir', default=DEMO_OUTPUT,
                   help="where annotated images / videos go ('' to write none)")
    p.add_argument('--json', default=None,
                   help="detections file (default: <save-dir>/detections.json; '' for none)")
    p.add_argument('--show', action=BOOL, default=False,
                   help='show each result in a matplotlib window (needs a display)')
    p.add_argument('--video', default=None, help='video file to run on (frame by frame)')
    p.add_argument('--camera', type=int, default=None, help='camera id to run on (OpenCV)')
    p.add_argument('--max-frames', type=int, default=0,
                   help='stop a video or camera after this many frames (0: no limit)')
    add_runtime_argument(p)
    args = p.parse_args(argv)
    if args.batch_size < 1:
        p.error('--batch-size must be at least 1')
    if args.json is None:
        args.json = os.path.join(args.save_dir, 'detections.json') if args.save_dir else ''
    if args.images is None and args.video is None and args.camera is None:
        args.images = DEMO_IMAGES
    return args


def model_prefix(args):
    from detect.export import deploy_prefix
    from evaluate.evaluate_net import expand_prefix
    prefix = expand_prefix(args.prefix, args.network, args.data_shape)
    if args.deploy and args.prefix.endswith('_'):
        return deploy_prefix(prefix)
    return prefix


def detector_from_args(args, num_classes):
    from detect.detector import get_detector
    from evaluate.options import contexts
    if args.runtime != 'mxnet':
        from detect.runtimes import onnx_detector
        return onnx_detector(args.runtime, model_prefix(args), args.data_shape,
                             (args.mean_r, args.mean_g, args.mean_b), args.batch_size)
    ctx = contexts(None if args.gpu is None else str(args.gpu), args.cpu)[0]
    return get_detector(None if args.deploy else args.network, model_prefix(args), args.epoch,
                        args.data_shape, (args.mean_r, args.mean_g, args.mean_b), num_classes,
                        nms_thresh=args.nms_thresh, force_nms=args.force_nms,
                        nms_topk=args.nms_topk, batch_size=args.batch_size, ctx=ctx)


def main(argv=None):
    """Run the demo; returns the exit status (1 when some input could not be processed)."""
    from dataset.imdb import load_class_names
    from detect import pipeline, visualize
    args = parse_args(argv)
    try:
        class_names = load_class_names(args.class_names)
        detector = detector_from_args(args, len(class_names))
    except (OSError, ValueError, ImportError) as err:
        print('error: %s' % err, file=sys.stderr)
        return 2
    show = args.show and visualize.display_available()
    if args.show and not show:
        print('warning: no display here, --show ignored', file=sys.stderr)
    run = pipeline.DemoRun(detector, class_names, args.thresh, args.save_dir, show)
    if args.images:
        paths, problems = pipeline.expand_images(args.images, args.dir, args.ext)
        for item, reason in problems:
            run.log.add_error(item, reason)
        run.run_images(paths)
    captures = [(args.video, args.video), (args.camera, 'camera%s' % args.camera)]
    for source, name in captures:
        if source is None:
            continue
        try:
            run.run_capture(pipeline.open_capture(source), name, args.max_frames)
        except OSError as err:
            run.log.add_error(name, str(err))
    if args.timer:
        print('Detection time for %d images: %.4f sec' % (run.num_inputs, run.detection_seconds))
    if args.save_dir and run.num_inputs:
        print('annotated results in %s' % args.save_dir)
    if args.json:
        run.log.write(args.json, dict(prefix=detector.model_prefix, epoch=detector.epoch,
                                      runtime=args.runtime,
                                      network='deploy' if args.deploy else args.network,
                                      data_shape=args.data_shape))
        print('detections (pixel coordinates) in %s' % args.json)
    if run.log.errors:
        print('%d input(s) could not be processed (see the errors above)' % len(run.log.errors),
              file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
