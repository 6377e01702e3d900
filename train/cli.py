"""Command line of train.py: flags (defaults from ``train.options.TrainOptions``) -> options."""
import argparse
import logging

from config.cli import data_shape, json_object, positive_int, report_error

from .optim import LR_SCHEDULES, OPTIMIZER_ARGS
from .options import KV_STORES, TrainOptions, default
from .params import RESUME_LAST


def epoch_or_last(text):
    if text == RESUME_LAST:
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError('expected an epoch number or %r, got %r'
                                         % (RESUME_LAST, text))


def int_list(text):
    try:
        return tuple(int(v) for v in text.replace(' ', '').split(',') if v)
    except ValueError:
        raise argparse.ArgumentTypeError('expected comma-separated integers, got %r' % text)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Train an SSD network',
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    bool_flag = dict(action=argparse.BooleanOptionalAction)

    def add(*flags, dest, **kwargs):
        p.add_argument(*flags, dest=dest, default=default(dest), **kwargs)

    data = p.add_argument_group('data')
    add('--train-path', dest='train_path', help='training record file')
    add('--val-path', dest='val_path', help="validation record file ('' for none)")
    add('--train-list', dest='train_list', help='.lst whose labels replace those of the .rec')
    add('--val-list', dest='val_list', help='.lst for the validation record')
    add('--num-example', dest='num_example', type=int,
        help='images per epoch (default: lines of the training .idx)')
    add('--label-width', dest='label_width', type=int,
        help='label values per image, 2 + 6 x max objects (-1: from the data)')
    add('--data-shape', dest='data_shape', type=data_shape, help='input SIZE or HEIGHT,WIDTH')
    add('--augment-overrides', dest='augment_overrides', type=json_object,
        help='JSON object of training augmentation settings (config/config.py cfg.train) to '
             'replace, e.g. \'{"rand_pad_prob": 0}\' turns zoom-out off')
    p.add_argument('--mean-r', type=float, default=default('mean_pixels')[0], help='red mean')
    p.add_argument('--mean-g', type=float, default=default('mean_pixels')[1], help='green mean')
    p.add_argument('--mean-b', type=float, default=default('mean_pixels')[2], help='blue mean')

    net = p.add_argument_group('network and classes')
    add('--network', dest='network', help='network preset, e.g. vgg16_reduced, mobilenet_0.25')
    add('--num-class', dest='num_class', type=int, help='classes without the background')
    add('--class-names', dest='class_names',
        help="'a,b,c' or a file with one name per line (default: VOC names for 20 classes)")
    add('--nms', dest='nms_thresh', type=float, help='NMS IoU threshold for validation')
    add('--nms-topk', '--nms_topk', dest='nms_topk', type=int, help='boxes kept before NMS')
    add('--force-nms', '--force', dest='force_nms', **bool_flag,
        help='suppress overlapping boxes across classes')
    add('--min-neg-samples', '--min_neg_samples', dest='min_neg_samples', type=int,
        help='minimum hard negatives per image (MultiBoxTarget)')

    add('--preset-overrides', dest='preset_overrides', type=json_object,
        help='JSON object of network preset fields to replace, e.g. \'{"sizes": [[0.1, 0.2], '
             '...]}\' (see symbol/README.md); inference must build the same network')

    source = p.add_argument_group('initial weights')
    add('--resume', dest='resume', type=epoch_or_last,
        help="continue from this epoch of --prefix ('last': the newest checkpoint)")
    add('--finetune', dest='finetune', type=int,
        help='start from this epoch of --prefix, adapting the heads, other layers fixed')
    add('--pretrained', dest='pretrained',
        help="backbone weights prefix (default: model/<network> if it exists; '' = scratch)")
    add('--epoch', dest='epoch', type=int, help='epoch of the --pretrained weights')
    add('--freeze', dest='freeze', help="regex of parameters kept fixed ('' for none)")

    schedule = p.add_argument_group('schedule and optimizer')
    add('--batch-size', dest='batch_size', type=positive_int, help='batch size (per worker)')
    add('--begin-epoch', dest='begin_epoch', type=int, help='first epoch number')
    add('--end-epoch', dest='end_epoch', type=int, help='train until this many epochs')
    add('--optimizer', dest='optimizer', choices=sorted(OPTIMIZER_ARGS), help='optimizer')
    add('--lr', dest='lr', type=float, help='learning rate')
    add('--momentum', dest='momentum', type=float, help='SGD momentum')
    add('--wd', dest='wd', type=float, help='weight decay')
    add('--lr-steps', dest='lr_steps', type=int_list,
        help='epochs after which the learning rate is multiplied by --lr-factor')
    add('--lr-factor', dest='lr_factor', type=float, help='learning-rate step factor')
    add('--lr-schedule', dest='lr_schedule', choices=LR_SCHEDULES,
        help='step: multiply by --lr-factor at --lr-steps; cosine: decay from --lr to 0 along '
             'a half cosine ending at --end-epoch (--lr-steps ignored)')
    add('--seed', dest='seed', type=int, help='random seed (weights and augmentation)')

    devices = p.add_argument_group('devices and distribution')
    add('--gpus', dest='gpus', help="GPU ids, e.g. '0,1' ('' for CPU)")
    add('--cpu', dest='cpu', **bool_flag, help='train on the CPU')
    add('--kv-store', dest='kv_store', choices=KV_STORES,
        help='gradient aggregation; dist_* across workers started by tools/launch.py')

    metric = p.add_argument_group('validation')
    add('--overlap', dest='overlap_thresh', type=float, help='IoU for a true positive')
    add('--use-difficult', dest='use_difficult', **bool_flag,
        help='count difficult objects in the mAP')
    add('--voc07', dest='voc07', **bool_flag, help='VOC07 11-point AP (else area under PR)')

    output = p.add_argument_group('output')
    add('--prefix', dest='prefix',
        help="checkpoint prefix; ending in '_' appends '<network>_<shape>'")
    add('--overwrite', dest='overwrite', **bool_flag,
        help='let a fresh run (no --resume) replace the checkpoints already at --prefix')
    add('--checkpoint-period', dest='checkpoint_period', type=int,
        help='save a checkpoint every N epochs (and after the last)')
    add('--frequent', dest='frequent', type=int, help='log speed and losses every N batches')
    add('--log', dest='log', help="log file name, beside the prefix ('' for none)")
    add('--monitor', dest='monitor', type=int, help='>0: print layer statistics every N batches')
    add('--monitor-pattern', '--pattern', dest='monitor_pattern', help='regex for --monitor')
    return p.parse_args(argv)


def options_from_args(args):
    values = vars(args).copy()
    values['mean_pixels'] = (values.pop('mean_r'), values.pop('mean_g'), values.pop('mean_b'))
    return TrainOptions(**values)


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(levelname)s %(message)s')
    from .train_net import TrainingDiverged, train_net
    try:
        train_net(options_from_args(args))
    except TrainingDiverged as err:
        logging.error('%s', err)
        return 2
    except (ValueError, OSError) as err:   # bad flags or data: the message says which
        logging.debug('details', exc_info=True)
        return report_error(err)
    return 0
