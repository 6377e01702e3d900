"""Detect objects with a trained SSD in images, folders, videos or a camera; write annotated
pictures / video and the detections (pixel coordinates) as JSON.

    python demo.py                                   # shipped model on data/demo/ -> output/demo/
    python demo.py --images photo.jpg,shots/ --network vgg16_reduced --data-shape 300 \\
        --prefix model/ssd_ --epoch 240 --class-names pascal_voc --show
    python demo.py --video clip.mp4 --save-dir output/clip
    python demo.py --deploy --prefix model/deploy_ssd_mobilenet_0.25_224
    python demo.py --runtime onnxruntime --prefix model/deploy_ssd_mobilenet_0.25_224.onnx
"""
import argparse
import os
import sys

from config.threads import set_default_threads

set_default_threads()  # before mxnet is imported (by the imports below)
import mxssd_compat  # noqa: E402,F401  (before MXNet: numpy aliases, Python 3.9 `symbol`)

from config import cli  # noqa: E402
from detect.shipped import DEMO_IMAGES, DEMO_OUTPUT, SHIPPED_MODEL, fallback_settings  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=cli.HelpFormatter)
    p.add_argument('--images', default=None,
                   help='comma-separated image files, folders and glob patterns '
                        '(default: %s, unless --video or --camera is given)' % DEMO_IMAGES)
    p.add_argument('--dir', default=None, help='folder the --images entries are relative to')
    p.add_argument('--ext', default=None,
                   help='extension appended to the --images entries (filters folders)')
    cli.add_model_args(p, SHIPPED_MODEL['prefix'],
                       "(with --deploy: deploy_ in front of that name, as deploy.py writes)")
    cli.add_nms_args(p)
    cli.add_device_args(p)
    cli.add_runtime_args(p)
    p.add_argument('--thresh', type=float, default=0.5,
                   help='lowest score drawn and written to the JSON')
    p.add_argument('--timer', action=cli.BOOL, default=True, help='print the detection time')
    p.add_argument('--deploy', action=cli.BOOL, default=False,
                   help="use the checkpoint's own -symbol.json (a deploy.py or converted "
                        "model) instead of building the network; its NMS settings are fixed")
    p.add_argument('--batch-size', type=cli.positive_int, default=1,
                   help='images per forward pass')
    p.add_argument('--save-dir', default=DEMO_OUTPUT,
                   help="where annotated images / videos go ('' to write none)")
    p.add_argument('--json', default=None,
                   help="detections file (default: <save-dir>/detections.json; '' for none)")
    p.add_argument('--show', action=cli.BOOL, default=False,
                   help='show each result in a matplotlib window (needs a display)')
    p.add_argument('--video', default=None, help='video file to run on (frame by frame)')
    p.add_argument('--camera', type=int, default=None, help='camera id to run on (OpenCV)')
    p.add_argument('--max-frames', type=int, default=0,
                   help='stop a video or camera after this many frames (0: no limit)')
    args = p.parse_args(argv)
    if args.json is None:
        args.json = os.path.join(args.save_dir, 'detections.json') if args.save_dir else ''
    if args.json and os.path.isdir(args.json):
        p.error('--json %s is a folder; give a file name, e.g. %s'
                % (args.json, os.path.join(args.json, 'detections.json')))
    if args.images is None and args.video is None and args.camera is None:
        args.images = DEMO_IMAGES
    return args


def open_model(args):
    """(prefix, epoch, settings) of the model the flags name (--deploy: its deploy_ export)."""
    from symbol import model_io
    prefix, _, settings = cli.open_model(args, fallback_settings())
    if args.deploy and args.prefix.endswith('_'):
        prefix = model_io.deploy_prefix(prefix)
        if model_io.read_spec(prefix) is not None:
            settings = model_io.open_model(prefix, cli.model_flags(args), settings)[2]
    return prefix, model_io.resolve_epoch(prefix, args.epoch), settings


def exported_detector(args):
    """--runtime onnxruntime/openvino: the exported model, settings from its metadata."""
    from detect.detector import Detector
    from detect.runtimes import exported_epoch, open_exported_model
    session, path, settings = open_exported_model(args.runtime, args.prefix,
                                                  cli.model_flags(args), fallback_settings())
    detector = Detector.on_runtime(session, settings['data_shape'], settings['mean_pixels'],
                                   args.batch_size, path, exported_epoch(session))
    return detector, settings


def detector_from_args(args):
    from detect.detector import detector_from_settings
    if args.runtime != 'mxnet':
        return exported_detector(args)
    prefix, epoch, settings = open_model(args)
    ctx = cli.contexts(args.gpus, args.cpu)[0]
    detector = detector_from_settings(prefix, epoch, settings,
                                      deploy=args.deploy or settings['deploy'],
                                      batch_size=args.batch_size, ctx=ctx)
    return detector, settings


def use_released_model(args):
    """``--network vgg16_reduced`` (or another released network) with the default --prefix:
    the original's released model unpacked in model/ (detect.released), or a one-line error
    naming the archive to get.  None when the arguments name another model."""
    from detect.released import apply_released_model
    from symbol.model_io import find_model
    return apply_released_model(args, find_model(
        args.prefix, args.network or SHIPPED_MODEL['network'],
        args.data_shape or SHIPPED_MODEL['data_shape']))


@cli.command
def main(argv=None):
    """Run the demo; returns the exit status (1 when some input could not be processed)."""
    from detect import pipeline, visualize
    from detect.released import describe as describe_released
    from detect.shipped import shipped_model_notice
    args = parse_args(argv)
    released = use_released_model(args)
    detector, settings = detector_from_args(args)
    notice = (describe_released(released) if released
              else shipped_model_notice(detector.model_prefix))
    if notice:
        print(notice)
    class_names = settings['class_names']
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
                                      network='deploy' if args.deploy else settings['network'],
                                      data_shape=settings['data_shape']))
        print('detections (pixel coordinates) in %s' % args.json)
    if run.log.errors:
        print('%d input(s) could not be processed (see the errors above)' % len(run.log.errors),
              file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
