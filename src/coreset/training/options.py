"""The options of the training loop (training/loop.py), torch-free so that validating params.yaml
needs no torch: learning-rate schedules, augmentations, which epoch's test accuracy is reported
(how the images reach the device is ``data.names.LOADERS``)."""

SCHEDULES = ("cosine", "multistep", "step", "constant")
AUGMENTS = ("none", "crop_flip", "crop", "auto")
REPORTS = ("final", "best")
