"""Image files to run detection on (no labels)."""
import os

import numpy as np

from .imdb import OBJECT_WIDTH, ImageRecord, Imdb


class TestDB(Imdb):
    """`images`: a list of paths or a comma-separated string; each is joined to `root_dir` and
    gets `extension` appended when given.  Missing files raise an error naming them."""

    __test__ = False  # not a pytest test class despite its name

    def __init__(self, images, root_dir=None, extension=None):
        if isinstance(images, str):
            images = [s.strip() for s in images.split(',') if s.strip()]
        super().__init__('test', classes=[])
        no_objects = np.zeros((0, OBJECT_WIDTH), np.float32)
        for image in images:
            path = os.path.join(root_dir, image) if root_dir else image
            path += extension or ''
            if not os.path.isfile(path):
                raise FileNotFoundError('image not found: %s' % path)
            self.records.append(ImageRecord(image, path, no_objects, None))
