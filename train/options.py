"""All training options and their defaults, in one table (``train.py`` builds its flags from
it; tests and scripts construct ``TrainOptions(...)`` directly).  Defaults follow the original
mxnet-ssd: SGD, lr 0.004, momentum 0.9, wd 5e-4, batch 32, 240 epochs with the rate x0.1 after
epochs 80 and 160, 300x300 input."""
import dataclasses
from dataclasses import dataclass
from typing import Optional, Tuple, Union

from config import defaults

VOC_NUM_CLASSES = 20
KV_STORES = ('local', 'device', 'nccl', 'dist_sync', 'dist_device_sync', 'dist_async')


@dataclass
class TrainOptions:
    # data
    train_path: str = 'data/train.rec'
    val_path: str = 'data/val.rec'          # '' disables validation
    train_list: str = ''                    # .lst whose labels replace those in the .rec
    val_list: str = ''
    num_example: Optional[int] = None       # images per epoch; None: lines of the .idx
    label_width: int = defaults.LABEL_WIDTH  # label_pad_width of both iterators
    data_shape: Union[int, Tuple[int, int]] = 300
    mean_pixels: Tuple[float, float, float] = defaults.MEAN_PIXELS
    # ImageDetRecordIter augmentation keywords of the training data; None: cfg.train
    train_aug: Optional[dict] = None
    # keywords of those to replace (train.py --augment-overrides)
    augment_overrides: Optional[dict] = None
    # network and classes
    network: str = 'vgg16_reduced'
    num_class: int = VOC_NUM_CLASSES
    class_names: Optional[object] = None    # list, 'a,b,c' or a names file; None: VOC / class_k
    nms_thresh: float = defaults.NMS_THRESH
    nms_topk: int = defaults.NMS_TOPK
    force_nms: bool = defaults.FORCE_NMS
    min_neg_samples: int = 0
    # fields of the network's preset to override (symbol_factory.get_config keywords)
    preset_overrides: Optional[dict] = None
    # parameter sources
    resume: Union[int, str] = -1            # epoch, or 'last'
    finetune: int = -1
    pretrained: Optional[str] = None        # None: model/<network> if present; '': from scratch
    epoch: int = 1                          # epoch of the pretrained weights
    freeze: str = '^(conv1_|conv2_).*'
    # schedule and optimizer
    batch_size: int = 32
    begin_epoch: int = 0
    end_epoch: int = 240
    optimizer: str = 'sgd'
    lr: float = 0.004
    momentum: float = 0.9
    wd: float = 0.0005
    lr_steps: Tuple[int, ...] = (80, 160)
    lr_factor: float = 0.1
    lr_schedule: str = 'step'
    seed: Optional[int] = None
    # devices and distribution
    gpus: str = '0'                         # '' or cpu=True: CPU
    cpu: bool = False
    kv_store: str = 'local'
    # validation metric
    overlap_thresh: float = defaults.EVAL_IOU
    use_difficult: bool = False
    voc07: bool = True
    # output and logging
    prefix: str = 'output/exp1/ssd'         # ending in '_': + '<network>_<shape>'
    overwrite: bool = False                 # a fresh run may replace the prefix's checkpoints
    checkpoint_period: int = 5
    frequent: int = 20
    log: str = 'train.log'                  # file name, beside the prefix; '' for none
    monitor: int = 0
    monitor_pattern: str = '.*'

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


def default(name):
    """Default value of option ``name``."""
    return TrainOptions.__dataclass_fields__[name].default
