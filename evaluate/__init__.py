"""Detection evaluation: VOC mAP metrics (``eval_metric``), COCO AP via pycocotools
(``coco_metric``), whole-model evaluation on a record file (``evaluate_net``) and its reports
and plots (``report``)."""
