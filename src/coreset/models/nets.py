"""The small networks and the torchvision ResNets/VGG of the pipeline, as :class:`Classifier`s.

Every model is a :class:`Classifier`: ``features(x)`` gives the penultimate features (what
Moderate-DS and the geometry selectors use), ``classifier`` is the final ``nn.Linear`` (whose
gradient the closed-form selectors use), and ``forward(x) = classifier(features(x))``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


class Classifier(nn.Module):
    def __init__(self, body: nn.Module, num_features: int, num_classes: int) -> None:
        super().__init__()
        self.body = body
        self.classifier = nn.Linear(num_features, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.body(x))


def _conv_bn(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


def small_cnn(num_classes: int, in_channels: int, image_size: int) -> Classifier:
    """Three conv-BN-ReLU blocks and global average pooling: ~100k parameters, for 8-28 px images
    (digits, MNIST, FashionMNIST). The slides' MNIST CNN role; 128 penultimate features."""
    body = nn.Sequential(
        *_conv_bn(in_channels, 32),
        *_conv_bn(32, 64),
        nn.MaxPool2d(2),
        *_conv_bn(64, 128),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )
    return Classifier(body, 128, num_classes)


def mnist_cnn(num_classes: int, in_channels: int, image_size: int) -> Classifier:
    """The plain MNIST CNN of the heuristic-selection slides (and PyTorch's MNIST example): two
    3x3 conv-ReLU layers, a 2x2 max-pool, dropout, then two fully connected layers; 128
    penultimate features (the first fc layer's output). ``auto`` picks it for small greyscale
    images: on 28 px digits it is the sound baseline under which "random vs hard examples" keeps
    the sign the literature reports, where ``small_cnn``'s global pooling reverses it."""
    side = (image_size - 4) // 2  # two unpadded 3x3 convs, then a 2x2 pool
    if side < 1:
        raise ValueError(f"mnist_cnn needs images of at least 6 px, got {image_size}")
    body = nn.Sequential(
        nn.Conv2d(in_channels, 32, 3), nn.ReLU(),
        nn.Conv2d(32, 64, 3), nn.ReLU(),
        nn.MaxPool2d(2), nn.Dropout(0.25), nn.Flatten(),
        nn.Linear(64 * side * side, 128), nn.ReLU(), nn.Dropout(0.5),
    )
    return Classifier(body, 128, num_classes)


def _torchvision_resnet(builder: str) -> Callable[..., Classifier]:
    def make(num_classes: int, in_channels: int, image_size: int) -> Classifier:
        # imported here: torchvision.models costs ~1.5 s to import, which every stage of a
        # digits run (small_cnn) would otherwise pay
        from torchvision import models as tvm

        net = getattr(tvm, builder)(weights=None, num_classes=num_classes)
        if image_size <= 64:
            # CIFAR-style stem (He et al. 2016 sec. 4.2; DeepCore, Moderate): a 3x3 stride-1 conv
            # and no max-pool, so 32 px inputs keep enough resolution for four stages.
            net.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
            net.maxpool = nn.Identity()
        elif in_channels != 3:
            net.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        num_features = net.fc.in_features
        net.fc = nn.Identity()
        return Classifier(net, num_features, num_classes)

    return make


def vgg16(num_classes: int, in_channels: int, image_size: int) -> Classifier:
    """VGG-16 with batch norm (torchvision), global-pooled 512 features (an unseen architecture
    in the Moderate paper)."""
    from torchvision import models as tvm

    net = tvm.vgg16_bn(weights=None)
    if in_channels != 3:
        net.features[0] = nn.Conv2d(in_channels, 64, 3, padding=1)
    body = nn.Sequential(net.features, nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return Classifier(body, 512, num_classes)


resnet18 = _torchvision_resnet("resnet18")
resnet50 = _torchvision_resnet("resnet50")
