"""Architectures by name, torch-free: the catalog below is the one list of model names (params.yaml
validation reads it without importing torch); :func:`create` imports the builder on first use.

Every model is a :class:`coreset.models.nets.Classifier`: ``features(x)`` gives the penultimate
features (what Moderate-DS and the geometry selectors use), ``classifier`` is the final
``nn.Linear`` (whose gradient the closed-form selectors use), and ``forward(x) =
classifier(features(x))``. Adding a model: its builder ``name(num_classes, in_channels,
image_size)`` in ``nets.py`` or ``zoo.py`` and one ``MODELS.add`` line here
(tests/test_models_zoo.py fails on a builder without a line, or a line without a builder).
"""

from __future__ import annotations

from typing import Any

from coreset.registry import Registry

AUTO = "auto"  # resolved per dataset by resolve()
MODELS: Registry[Any] = Registry("model")

_NETS, _ZOO = "coreset.models.nets", "coreset.models.zoo"
for _name in ("mnist_cnn", "small_cnn", "resnet18", "resnet50", "vgg16"):
    MODELS.add(_name, _NETS, min_size=8)
# DeepCore's networks and the Moderate paper's generalisation table
for _name, _px in (("mlp", 8), ("lenet", 16), ("alexnet", 8), ("vgg11", 32), ("googlenet", 8),
                   ("inception_v3", 75), ("resnet34", 8), ("se_resnet18", 8), ("wrn_16_4", 8),
                   ("wrn_28_10", 8), ("mobilenet_v3_small", 8), ("mobilenet_v3_large", 8),
                   ("efficientnet_b0", 8), ("shufflenet_v2", 8), ("vit_s", 8)):
    MODELS.add(_name, _ZOO, min_size=_px)


def min_size(name: str) -> int:
    """The smallest square input (px) that model ``name`` accepts."""
    return int(MODELS.meta(name, "min_size"))


def resolve(name: str, in_channels: int, image_size: int) -> str:
    """``auto`` -> mnist_cnn for greyscale images up to 28 px (digits, MNIST, QMNIST,
    Fashion-MNIST), resnet18 otherwise (colour, or larger images)."""
    if name != AUTO:
        return name
    return "mnist_cnn" if in_channels == 1 and image_size <= 28 else "resnet18"


def create(name: str, num_classes: int, in_channels: int, image_size: int) -> Any:
    """A fresh :class:`~coreset.models.nets.Classifier` (imports torch)."""
    name = resolve(name, in_channels, image_size)
    if name not in MODELS:
        raise ValueError(f"model {name!r} is unknown; known: auto, {', '.join(MODELS)}")
    return MODELS.get(name)(num_classes, in_channels, image_size)
