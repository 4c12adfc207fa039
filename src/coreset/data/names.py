"""The perturbations the `corrupt` stage offers, torch-free so that validating params.yaml needs
no torch: image corruption names (implemented in data/corruptions.py, which checks its table
against this tuple) and adversarial attack names (data/adversarial.py)."""

CORRUPTIONS = ("gaussian_noise", "occlusion", "resolution", "fog", "motion_blur")
ATTACKS = ("pgd", "fgsm")
