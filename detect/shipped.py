"""The demo model shipped in model/ and the demo images in data/demo/: what demo.py and
deploy.py use when run without arguments (see model/README.md for how the model was
trained)."""
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SHIPPED_MODEL = dict(
    network='mobilenet_0.25',
    data_shape=224,
    prefix=os.path.join(ROOT, 'model', 'ssd_'),   # -> model/ssd_mobilenet_0.25_224
    epoch=None,                                    # None: the newest checkpoint there
    class_names='synthetic',                       # dataset/names/synthetic.names
    mean_pixels=(123, 117, 104),                   # RGB
)
DEMO_IMAGES = os.path.join(ROOT, 'data', 'demo')
DEMO_OUTPUT = os.path.join('output', 'demo')       # relative to the working directory
