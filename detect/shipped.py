"""The demo model shipped in model/ and the demo images in data/demo/: what demo.py and
deploy.py use when run without arguments (see model/README.md for how the model was
trained)."""
import os

from config import defaults

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SHIPPED_MODEL = dict(
    network='mobilenet_0.25',
    data_shape=224,
    prefix=os.path.join(ROOT, 'model', 'ssd_'),   # -> model/ssd_mobilenet_0.25_224
    epoch=None,                                    # None: the newest checkpoint there
    class_names='synthetic',                       # dataset/names/synthetic.names
    mean_pixels=defaults.MEAN_PIXELS,              # RGB
)
DEMO_IMAGES = os.path.join(ROOT, 'data', 'demo')
DEMO_OUTPUT = os.path.join('output', 'demo')       # relative to the working directory


def fallback_settings(model=None):
    """Model settings of ``model`` (default: the shipped one) for checkpoints without a spec,
    class names loaded."""
    from dataset.imdb import load_class_names
    model = dict(model or SHIPPED_MODEL)
    model['class_names'] = load_class_names(model['class_names'])
    model.pop('prefix')
    model.pop('epoch')
    return model


# What demo.py prints when it runs the shipped model, so that nobody mistakes it for a real
# detector on their photographs.
SHIPPED_NOTICE = ('note: this is the shipped demo model, trained on synthetic images: it '
                  'detects only four synthetic shapes (circle, square, triangle, cross), not '
                  'real objects. For a real model unpack a released mxnet-ssd VOC model into '
                  'model/ and run e.g. python demo.py --network vgg16_reduced --images '
                  'photo.jpg (models: detect/README.md).')


def shipped_prefix():
    """The checkpoint prefix of the shipped model (model/ssd_mobilenet_0.25_224)."""
    return '%s%s_%d' % (SHIPPED_MODEL['prefix'], SHIPPED_MODEL['network'],
                        SHIPPED_MODEL['data_shape'])


def shipped_model_notice(prefix):
    """SHIPPED_NOTICE when ``prefix`` (the checkpoint prefix a run loads) is the shipped
    model's, else None."""
    if os.path.abspath(prefix) == os.path.abspath(shipped_prefix()):
        return SHIPPED_NOTICE
    return None
