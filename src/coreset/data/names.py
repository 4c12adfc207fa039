"""The perturbations the `corrupt` stage offers, torch-free so that validating params.yaml needs
no torch: image corruption names (implemented in data/corruptions.py, which checks its table
against this tuple), adversarial attack names (data/adversarial.py), and how the images of a
training run reach the device (data/stream.py)."""

CORRUPTIONS = ("gaussian_noise", "occlusion", "resolution", "fog", "motion_blur")
ATTACKS = ("pgd", "fgsm")
LOADERS = ("auto", "device", "stream")  # whole dataset on the device, or streamed in batches
