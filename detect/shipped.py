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
