"""Detection evaluation: VOC mAP metrics (``eval_metric``), COCO AP via pycocotools
(``coco_metric``), whole-model evaluation on a record file (``evaluate_net``) and its reports
and plots (``report``)."""
import mxssd_compat  # noqa: F401  (before MXNet: numpy aliases, Python 3.9 `symbol`)
