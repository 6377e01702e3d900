"""Detection datasets: readers (VOC, COCO, YOLO, XML folders, synthetic shapes), RecordIO
preparation and the data iterators."""
import mxssd_compat  # noqa: F401  (before MXNet: numpy aliases, Python 3.9 `symbol`)
