"""Detection with trained SSD models: the ``Detector`` (``detector``), drawing (``visualize``),
what demo.py does with images, folders, videos and cameras (``pipeline``), deploy models for
stock MXNet (``export``) and the shipped demo model's settings (``shipped``)."""
import mxssd_compat  # noqa: F401  (before MXNet: numpy aliases, Python 3.9 `symbol`)
