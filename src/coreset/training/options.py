"""The options of the training loop (training.py), torch-free so that validating params.yaml needs
no torch: learning-rate schedules, augmentations, which epoch's test accuracy is reported, and how
the training images reach the device."""

SCHEDULES = ("cosine", "multistep", "step", "constant")
AUGMENTS = ("none", "crop_flip", "crop", "auto")
REPORTS = ("final", "best")
LOADERS = ("auto", "device", "stream")  # whole dataset on the device, or streamed in batches
