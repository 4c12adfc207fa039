"""The perturbations the `corrupt` stage offers, torch-free so that validating params.yaml needs
no torch: image corruption names (a catalog of the functions of data/corruptions.py), adversarial
attack names (data/adversarial.py), and how the images of a training run reach the device
(data/stream.py)."""

from coreset.registry import Registry

# the image corruptions: each name is a function of data/corruptions.py (imported on first use)
CORRUPTIONS: Registry = Registry("corruption")
for _name in ("gaussian_noise", "occlusion", "resolution", "fog", "motion_blur"):
    CORRUPTIONS.add(_name, "coreset.data.corruptions")
ATTACKS = ("pgd", "fgsm")
LOADERS = ("auto", "device", "stream")  # whole dataset on the device, or streamed in batches
