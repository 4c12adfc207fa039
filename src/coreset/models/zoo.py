"""The architectures of DeepCore and the Moderate paper's generalisation table, as Classifiers.

Each builder is ``(num_classes, in_channels, image_size) -> Classifier`` and has one catalog
entry in ``coreset.models`` (with the smallest square input, px, it accepts). Torchvision
builds the standard networks (no pretrained weights, nothing downloads); at 64 px and below they
get the CIFAR-size stem the papers use for 32 px inputs (a 3x3 stride-1 first convolution, no
stem max-pool), so four stages of down-sampling still leave a spatial map. Each body ends in
the penultimate features, and the final ``nn.Linear`` is the Classifier's ``classifier`` (what
the closed-form selectors use).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

Builder = Callable[[int, int, int], nn.Module]
CIFAR_STEM = 64  # px: at or below this, the CIFAR-size stem


def _classifier(body: nn.Module, num_features: int, num_classes: int) -> nn.Module:
    from coreset.models.nets import Classifier

    return Classifier(body, num_features, num_classes)


def _too_small(name: str, image_size: int) -> None:
    from coreset.models import min_size

    if image_size < min_size(name):
        raise ValueError(f"model {name!r} needs images of at least {min_size(name)} px, got "
                         f"{image_size} px")


# --- DeepCore's small networks ------------------------------------------------------------------

def mlp(num_classes: int, in_channels: int, image_size: int) -> nn.Module:
    """DeepCore's MLP: two hidden layers of 128 units with ReLU on the flattened image."""
    body = nn.Sequential(nn.Flatten(), nn.Linear(in_channels * image_size**2, 128), nn.ReLU(),
                         nn.Linear(128, 128), nn.ReLU())
    return _classifier(body, 128, num_classes)


def lenet(num_classes: int, in_channels: int, image_size: int) -> nn.Module:
    """LeNet-5 as in DeepCore: conv 5x5 (6) - pool - conv 5x5 (16) - pool - 120 - 84. Greyscale
    inputs are padded by 2 (28 px MNIST becomes LeNet's 32)."""
    _too_small("lenet", image_size)
    pad = 2 if in_channels == 1 else 0
    side = ((image_size + 2 * pad - 4) // 2 - 4) // 2
    body = nn.Sequential(
        nn.Conv2d(in_channels, 6, 5, padding=pad), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(16 * side * side, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU())
    return _classifier(body, 84, num_classes)


def alexnet(num_classes: int, in_channels: int, image_size: int) -> nn.Module:
    """DeepCore's CIFAR AlexNet: five convolutions (128, 192, 256, 192, 192), three max-pools,
    pooled to 4x4 (the 32 px map) and flattened to 3072 features."""
    body = nn.Sequential(
        nn.Conv2d(in_channels, 128, 5, padding=4 if in_channels == 1 else 2), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(128, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(192, 256, 3, padding=1), nn.ReLU(),
        nn.Conv2d(256, 192, 3, padding=1), nn.ReLU(),
        nn.Conv2d(192, 192, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.AdaptiveAvgPool2d(4), nn.Flatten())
    return _classifier(body, 192 * 16, num_classes)


# --- torchvision networks with a CIFAR-size stem ------------------------------------------------

def _stem(in_channels: int, out_channels: int, image_size: int, stride: int) -> nn.Conv2d:
    """3x3 stride-1 at CIFAR size, else the network's own stride (3x3 kernel either way)."""
    return nn.Conv2d(in_channels, out_channels, 3, stride=1 if image_size <= CIFAR_STEM else
                     stride, padding=1, bias=False)


def _resnet(builder: str, se: bool = False) -> Builder:
    def make(num_classes: int, in_channels: int, image_size: int) -> nn.Module:
        from coreset.models.nets import _torchvision_resnet

        model = _torchvision_resnet(builder)(num_classes, in_channels, image_size)
        if se:
            from torchvision.ops import SqueezeExcitation

            for layer in (model.body.layer1, model.body.layer2, model.body.layer3,
                          model.body.layer4):
                for block in layer:
                    c = block.bn2.num_features
                    # SE on the residual branch, before the addition (Hu et al. 2018, r = 16)
                    block.bn2 = nn.Sequential(block.bn2, SqueezeExcitation(c, c // 16))
        return model

    return make


def vgg11(num_classes: int, in_channels: int, image_size: int) -> nn.Module:
    """VGG-11 with batch norm (torchvision), global-pooled 512 features, as ``vgg16``."""
    from torchvision import models as tvm

    _too_small("vgg11", image_size)
    net = tvm.vgg11_bn(weights=None)
    net.features[0] = nn.Conv2d(in_channels, 64, 3, padding=1)
    return _classifier(nn.Sequential(net.features, nn.AdaptiveAvgPool2d(1), nn.Flatten()), 512,
                       num_classes)


def googlenet(num_classes: int, in_channels: int, image_size: int) -> nn.Module:
    """Inception v1 (GoogLeNet, torchvision), no auxiliary heads. At CIFAR size the 7x7 stride-2
    stem and the first two max-pools are replaced by a 3x3 stride-1 convolution, the CIFAR
    GoogLeNet layout (down-sampling only between the inception stages). 1024 features."""
    from torchvision import models as tvm
    from torchvision.models.googlenet import BasicConv2d

    net = tvm.GoogLeNet(num_classes=num_classes, aux_logits=False, init_weights=True)
    if image_size <= CIFAR_STEM:
        net.conv1 = BasicConv2d(in_channels, 64, kernel_size=3, stride=1, padding=1)
        net.maxpool1, net.maxpool2 = nn.Identity(), nn.Identity()
    else:
        net.conv1 = BasicConv2d(in_channels, 64, kernel_size=7, stride=2, padding=3)
    net.dropout, net.fc = nn.Identity(), nn.Identity()
    return _classifier(net, 1024, num_classes)


def inception_v3(num_classes: int, in_channels: int, image_size: int) -> nn.Module:
    """Inception v3 (torchvision), no auxiliary head; its stem needs at least 75 px (use
    ``googlenet`` for CIFAR-size inputs). 2048 features."""
    from torchvision import models as tvm
    from torchvision.models.inception import BasicConv2d

    _too_small("inception_v3", image_size)
    net = tvm.inception_v3(weights=None, aux_logits=False, init_weights=True)
    net.Conv2d_1a_3x3 = BasicConv2d(in_channels, 32, kernel_size=3, stride=2)
    net.dropout, net.fc = nn.Identity(), nn.Identity()
    return _classifier(net, 2048, num_classes)


class _Pooled(nn.Module):
    """features -> global average pool -> flatten -> head (the head minus its last Linear)."""

    def __init__(self, features: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.features, self.head = features, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(self.features(x), 1), 1))


def _mobilenet_v3(builder: str) -> Builder:
    def make(num_classes: int, in_channels: int, image_size: int) -> nn.Module:
        """MobileNetV3 (torchvision); CIFAR-size stem: first convolution stride 1. Features: the
        hidden layer of its head (1024 small, 1280 large)."""
        from torchvision import models as tvm

        net = getattr(tvm, builder)(weights=None)
        net.features[0][0] = _stem(in_channels, net.features[0][0].out_channels, image_size, 2)
        hidden = net.classifier[0].out_features
        return _classifier(_Pooled(net.features, net.classifier[:-1]), hidden, num_classes)

    return make


def efficientnet_b0(num_classes: int, in_channels: int, image_size: int) -> nn.Module:
    """EfficientNet-B0 (torchvision); CIFAR-size stem: first convolution stride 1. 1280
    features (its dropout stays in the body)."""
    from torchvision import models as tvm

    net = tvm.efficientnet_b0(weights=None)
    net.features[0][0] = _stem(in_channels, 32, image_size, 2)
    return _classifier(_Pooled(net.features, net.classifier[:-1]), 1280, num_classes)


def shufflenet_v2(num_classes: int, in_channels: int, image_size: int) -> nn.Module:
    """ShuffleNetV2 x1.0 (torchvision); CIFAR-size stem: 3x3 stride-1 convolution, no max-pool.
    1024 features."""
    from torchvision import models as tvm

    net = tvm.shufflenet_v2_x1_0(weights=None)
    net.conv1[0] = _stem(in_channels, 24, image_size, 2)
    if image_size <= CIFAR_STEM:
        net.maxpool = nn.Identity()
    features = nn.Sequential(net.conv1, net.maxpool, net.stage2, net.stage3, net.stage4,
                             net.conv5)
    return _classifier(_Pooled(features, nn.Identity()), 1024, num_classes)


class _ViTBody(nn.Module):
    """A torchvision VisionTransformer up to the class token after the encoder."""

    def __init__(self, vit: nn.Module) -> None:
        super().__init__()
        self.vit = vit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.vit._process_input(x)
        cls = self.vit.class_token.expand(tokens.shape[0], -1, -1)
        return self.vit.encoder(torch.cat([cls, tokens], dim=1))[:, 0]


def vit_s(num_classes: int, in_channels: int, image_size: int) -> nn.Module:
    """ViT-S (12 layers, 6 heads, width 384, MLP 1536; torchvision's VisionTransformer) with
    4 px patches up to 64 px (64 tokens at 32 px, the CIFAR ViT setting) and 16 px above. The
    image size must be a multiple of the patch size. 384 features (the class token)."""
    from torchvision.models.vision_transformer import VisionTransformer

    patch = 4 if image_size <= CIFAR_STEM else 16
    if image_size % patch:
        raise ValueError(f"model 'vit_s' needs an image size that is a multiple of its patch "
                         f"size {patch}, got {image_size} px")
    vit = VisionTransformer(image_size=image_size, patch_size=patch, num_layers=12, num_heads=6,
                            hidden_dim=384, mlp_dim=1536, num_classes=num_classes)
    vit.conv_proj = nn.Conv2d(in_channels, 384, kernel_size=patch, stride=patch)
    vit.heads = nn.Identity()
    return _classifier(_ViTBody(vit), 384, num_classes)


# --- Wide ResNet (Zagoruyko & Komodakis 2016), CIFAR layout -------------------------------------

class _WideBlock(nn.Module):
    """Pre-activation basic block: BN-ReLU-conv3x3-BN-ReLU-conv3x3, 1x1 shortcut on a change."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(cout), nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.short = None if cin == cout and stride == 1 else nn.Conv2d(cin, cout, 1, stride,
                                                                        bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = torch.relu(self.bn1(x))
        out = self.conv2(torch.relu(self.bn2(self.conv1(pre))))
        return out + (x if self.short is None else self.short(pre))


def _wide_resnet(depth: int, widen: int) -> Builder:
    def make(num_classes: int, in_channels: int, image_size: int) -> nn.Module:
        # WRN-depth-k: 3 groups of (depth - 4) / 6 blocks of widths 16 k, 32 k, 64 k
        blocks = (depth - 4) // 6
        widths = [16, 16 * widen, 32 * widen, 64 * widen]
        layers: list[nn.Module] = [nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)]
        for group in range(3):
            for b in range(blocks):
                cin = widths[group] if b == 0 else widths[group + 1]
                layers.append(_WideBlock(cin, widths[group + 1], 2 if group and not b else 1))
        layers += [nn.BatchNorm2d(widths[3]), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        return _classifier(nn.Sequential(*layers), widths[3], num_classes)

    return make


# the networks built from a factory (each is a catalog entry of coreset.models)
resnet34 = _resnet("resnet34")
se_resnet18 = _resnet("resnet18", se=True)
wrn_16_4 = _wide_resnet(16, 4)
wrn_28_10 = _wide_resnet(28, 10)
mobilenet_v3_small = _mobilenet_v3("mobilenet_v3_small")
mobilenet_v3_large = _mobilenet_v3("mobilenet_v3_large")
