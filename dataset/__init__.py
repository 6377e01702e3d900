"""Detection datasets: readers (VOC, COCO, YOLO, XML folders, synthetic shapes), RecordIO
preparation and the data iterators."""
