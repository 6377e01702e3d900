"""The models released with the original mxnet-ssd (PASCAL VOC07+12 trainval, 20 classes), as
data, and how demo.py finds one unpacked into model/ under its release file names.

``python demo.py --network vgg16_reduced --images dog.jpg`` (or resnet50, inceptionv3,
mobilenet, or a graph name such as legacy_vgg16_ssd_512) without --prefix resolves here: the
graph to build, the checkpoint prefix and epoch, the input size and the VOC class names, from
the files present.  Without them the error names the archive, its release page and where to
unpack it.
"""
import os
from dataclasses import dataclass
from typing import Optional

from symbol import model_io

RELEASES_URL = 'https://github.com/zhreshold/mxnet-ssd/releases/tag/'
MODEL_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'model')


@dataclass(frozen=True)
class ReleasedModel:
    name: str            # as in the original's README table
    network: str         # --network the user types
    graph: str           # network name this project builds the test graph with
    data_shape: int
    archive: str
    release: str         # release tag
    file_prefix: str     # '<file_prefix>-symbol.json' / '-<epoch>.params' inside the archive
    epoch: int           # the epoch of the params file inside the archive
    legacy_graph: bool   # the first VGG models' layer names (conv6, conv8_1, ...)
    voc07_map: float     # the original's README (VOC07 test, VOC07+12 trainval)
    class_names: str = 'pascal_voc'  # dataset/names/pascal_voc.names, the 20 VOC classes
    num_classes: int = 20
    mean_pixels: tuple = (123, 117, 104)

    @property
    def release_page(self):
        return RELEASES_URL + self.release


# File names inside the archives: the VGG ones unpack to '<archive stem>/ssd_300-0000.*'
# (zhreshold/mxnet-ssd#233), MobileNet to 'mobilenet-ssd-512-0001.params' (#234), ResNet-50 to
# 'ssd_resnet50_512-0000.*'; Inception-v3's epoch (215) is from users' scripts, not verified,
# which is one reason the resolver takes whatever epoch it finds.
RELEASED_MODELS = (
    ReleasedModel('VGG16_reduced 300x300', 'vgg16_reduced', 'legacy_vgg16_ssd_300', 300,
                  'vgg16_ssd_300_voc0712_trainval.zip', 'v0.5-beta', 'ssd_300', 0, True, 77.8),
    ReleasedModel('VGG16_reduced 512x512', 'vgg16_reduced', 'legacy_vgg16_ssd_512', 512,
                  'vgg16_ssd_512_voc0712_trainval.zip', 'v0.5-beta', 'ssd_512', 0, True, 79.9),
    ReleasedModel('Inception-v3 512x512', 'inceptionv3', 'inceptionv3', 512,
                  'ssd_inceptionv3_512_voc0712trainval.zip', 'v0.7-alpha',
                  'ssd_inceptionv3_512', 215, False, 78.9),
    ReleasedModel('ResNet-50 512x512', 'resnet50', 'resnet50', 512,
                  'ssd_resnet50_512_voc0712trainval.zip', 'v0.7-alpha', 'ssd_resnet50_512', 0,
                  False, 79.1),
    ReleasedModel('MobileNet 512x512', 'mobilenet', 'mobilenet', 512, 'mobilenet-ssd-512.zip',
                  'v0.7-alpha', 'mobilenet-ssd-512', 1, False, 72.5),
    ReleasedModel('MobileNet 608x608', 'mobilenet', 'mobilenet', 608, 'mobilenet-ssd-608.zip',
                  'v0.7-alpha', 'mobilenet-ssd-608', 1, False, 74.7),
)


class ReleasedModelNotFound(model_io.ModelError):
    """No released model of the asked network is unpacked; the message says what to get."""


@dataclass(frozen=True)
class ResolvedModel:
    """What demo.py needs to run a model."""
    network: str         # graph to build (get_symbol name)
    prefix: str
    epoch: int
    data_shape: int
    class_names: str
    mean_pixels: tuple
    release: Optional[ReleasedModel] = None


def candidates(network, data_shape=None):
    """Released models a --network (user name or graph name) and optional --data-shape ask
    for, in the order they are tried (the smaller input first)."""
    found = [m for m in RELEASED_MODELS if network in (m.network, m.graph)
             and data_shape in (None, m.data_shape)]
    return sorted(found, key=lambda m: m.data_shape)


def is_released_network(network):
    return bool(candidates(network))


def unpacked_prefixes(model, model_dir=MODEL_DIR):
    """Where the model's files may be: straight in model_dir, or in the folder unzip makes
    (named after the archive)."""
    stem = os.path.splitext(model.archive)[0]
    return [os.path.join(model_dir, model.file_prefix),
            os.path.join(model_dir, stem, model.file_prefix)]


def find_unpacked(model, model_dir=MODEL_DIR):
    """(prefix, newest epoch) of the model's params file under model_dir, or None."""
    for prefix in unpacked_prefixes(model, model_dir):
        epochs = model_io.saved_epochs(prefix)
        if epochs:
            return prefix, epochs[-1]
    return None


def resolve_released(network, data_shape=None, model_dir=MODEL_DIR):
    """The ResolvedModel of the first released model of ``network`` (at ``data_shape``, or at
    any released size) unpacked under ``model_dir``; ReleasedModelNotFound names what to
    download and where to unpack it when there is none."""
    wanted = candidates(network, data_shape)
    if not wanted:
        sizes = sorted({m.data_shape for m in candidates(network)})
        raise ReleasedModelNotFound(
            'no released %s model at %s pixels (released sizes: %s)'
            % (network, data_shape, ', '.join(map(str, sizes)) or 'none'))
    for model in wanted:
        found = find_unpacked(model, model_dir)
        if found:
            prefix, epoch = found
            return ResolvedModel(model.graph, prefix, epoch, model.data_shape,
                                 model.class_names, model.mean_pixels, model)
    raise ReleasedModelNotFound(missing_message(network, wanted, model_dir))


def missing_message(network, models, model_dir=MODEL_DIR):
    """What to download for ``network`` and where to put it, in one line."""
    options = ' or '.join('%s (%s, holds %s-%04d.params and -symbol.json) from %s'
                          % (m.archive, m.name, m.file_prefix, m.epoch, m.release_page)
                          for m in models)
    return ('no released %s model in %s: download %s and unpack it there, e.g. unzip %s -d %s'
            % (network, model_dir, options, models[0].archive, model_dir))


def markdown_table():
    """The README's table of released models."""
    rows = ['| model | mAP (VOC07 test) | archive (release) | `--network` |',
            '|---|---|---|---|']
    for m in RELEASED_MODELS:
        shape = '' if candidates(m.network)[0] is m else ' --data-shape %d' % m.data_shape
        rows.append('| %s | %.1f | `%s` (%s) | `%s`%s |'
                    % (m.name, m.voc07_map, m.archive, m.release, m.network, shape))
    return '\n'.join(rows)


def apply_released_model(args, prefix, model_dir=MODEL_DIR):
    """demo.py's step to a released model: when ``args.network`` names one (see
    ``candidates``), ``--prefix`` was left at the shipped default and ``prefix`` (that default
    expanded for the network and size) holds no checkpoint, point ``args`` (network, prefix,
    epoch, data_shape, class_names, mean_r/g/b, num_classes if there) at the released model
    unpacked in model/.  A flag left at None or at the shipped model's value counts as not
    given; an explicit --epoch, --class-names or mean is kept, and so is a HEIGHT,WIDTH
    --data-shape (a square one picks the release of that size).  Returns the ResolvedModel,
    or None when ``args`` are left as they are; raises ReleasedModelNotFound (a ModelError)
    naming the archive to get.  The files are looked for in ``model_dir`` (model/)."""
    from .shipped import SHIPPED_MODEL as shipped
    if (getattr(args, 'deploy', False) or args.prefix != shipped['prefix']
            or not is_released_network(args.network) or model_io.saved_epochs(prefix)):
        return None
    # the models were released square: a square --data-shape picks the release of that size,
    # a HEIGHT,WIDTH one is the size to run the first unpacked release at
    asked = args.data_shape
    non_square = asked is not None and not isinstance(model_io.shape_value(asked), int)
    size = None if non_square or asked in (shipped['data_shape'], None) else asked
    model = resolve_released(args.network, size, model_dir)
    args.network, args.prefix = model.network, model.prefix
    args.data_shape = asked if non_square else model.data_shape
    args.epoch = model.epoch if args.epoch is None else args.epoch
    if args.class_names in (None, shipped['class_names']):
        args.class_names = model.class_names
    if getattr(args, 'num_classes', 0) is None:
        args.num_classes = model.release.num_classes
    means = [getattr(args, 'mean_' + c, None) for c in 'rgb']
    if all(m is None or m == d for m, d in zip(means, shipped['mean_pixels'])):
        for channel, mean in zip('rgb', model.mean_pixels):
            setattr(args, 'mean_' + channel, mean)
    return model


def describe(model):
    """One line for demo.py: which released model runs."""
    return ('running the released mxnet-ssd %s model (%s, VOC07 mAP %.1f): %s-%04d'
            % (model.release.name, model.release.archive, model.release.voc07_map,
               model.prefix, model.epoch))
