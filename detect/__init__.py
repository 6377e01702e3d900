"""Detection with trained SSD models: the ``Detector`` (``detector``), drawing (``visualize``),
what demo.py does with images, folders, videos and cameras (``pipeline``), deploy models for
stock MXNet (``export``) and the shipped demo model's settings (``shipped``)."""
