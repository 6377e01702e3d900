"""The project's model and data defaults, in one table: read by the symbol builders, the data
iterators, the Detector, the CLIs and the model spec (``symbol.model_io``).

``FORCE_NMS`` is False: suppression runs per class, as in the SSD paper's Caffe deploy
settings and torchvision's SSD.  Across classes (True) a box of one class would remove an
overlapping box of another class (a cat on a sofa), which lowers recall; the mAP reported in
training and by evaluate.py was always measured per class, so demo and deploy now agree with it.
"""
# RGB means subtracted from the 0-255 input (the original's VOC/ImageNet means).
MEAN_PIXELS = (123.0, 117.0, 104.0)
# Input values are (pixel - mean) * PIXEL_SCALE.
PIXEL_SCALE = 1.0
# Box-offset encoding of the target and detection operators (centre x/y, log w/h).
VARIANCES = (0.1, 0.1, 0.2, 0.2)

NMS_THRESH = 0.45
NMS_TOPK = 400
FORCE_NMS = False

# Anchor matching in training: IoU > 0.5 is positive; 3 hard negatives (IoU < 0.5) per positive.
MATCH_IOU = 0.5
NEGATIVE_MINING_RATIO = 3
NEGATIVE_MINING_THRESH = 0.5
# Evaluation: a detection with IoU > 0.5 matches a ground truth.
EVAL_IOU = 0.5

# Label values per image in training (2 header values + 6 per object: 58 objects).
LABEL_WIDTH = 350
# Evaluation and quantization: -1 sizes the labels from the data.
EVAL_LABEL_WIDTH = -1

NMS = dict(nms_thresh=NMS_THRESH, nms_topk=NMS_TOPK, force_nms=FORCE_NMS)
