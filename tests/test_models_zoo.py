"""Every architecture of the zoo: forward and backward at its input sizes, greyscale and colour,
and the Classifier contract (forward = classifier(features))."""

from __future__ import annotations

import inspect

import pytest
import torch

from coreset.models import MODELS, min_size, nets, zoo

ZOO = {name: MODELS.get(name) for name in MODELS if MODELS.entry(name).module == zoo.__name__}

# (channels, px): every model in colour at its paper size (32 px; 75 for inception_v3); the
# greyscale stems at 28 px (MNIST) and 8 px (digits) on the networks that are quick to build.
# The two heaviest (inception_v3, wrn_28_10: about 10 s each on 2 busy cores) are marked slow:
# deselect them with -m "not slow".
SIZES = {name: [(3, 32)] for name in ZOO} | {"inception_v3": [(3, 75)]}
for name in ("mlp", "alexnet", "wrn_16_4", "mobilenet_v3_small", "shufflenet_v2"):
    SIZES[name] += [(1, 28), (1, 8)]
for name in ("lenet", "resnet34", "se_resnet18", "googlenet", "vit_s"):
    SIZES[name] += [(1, 28)]
SIZES["vgg11"] += [(1, 32)]
SLOW = {"inception_v3", "wrn_28_10"}
CASES = [pytest.param(name, c, px, marks=[pytest.mark.slow] if name in SLOW else [])
         for name, sizes in SIZES.items() for c, px in sizes]


@pytest.mark.parametrize(("name", "channels", "px"), CASES)
def test_forward_backward(name, channels, px):
    torch.manual_seed(0)
    model = ZOO[name](10, channels, px)
    x = torch.randn(2, channels, px, px)
    out = model(x)
    assert out.shape == (2, 10)
    out.sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)
    model.eval()
    with torch.no_grad():
        h = model.features(x)
        assert h.shape == (2, model.classifier.in_features)
        assert torch.allclose(model.classifier(h), model(x), atol=1e-5)


@pytest.mark.parametrize(("name", "px"), [("lenet", 12), ("vgg11", 16), ("inception_v3", 32)])
def test_too_small_inputs_are_refused(name, px):
    with pytest.raises(ValueError, match=f"needs images of at least {min_size(name)} px"):
        ZOO[name](10, 3, px)


def test_vit_needs_a_multiple_of_its_patch():
    with pytest.raises(ValueError, match="multiple of its patch size 4"):
        ZOO["vit_s"](10, 3, 30)


def _builders(module) -> set[str]:
    """Public functions of a model module whose signature is a builder's."""
    return {name for name, obj in vars(module).items()
            if callable(obj) and not name.startswith("_") and not inspect.isclass(obj)
            and getattr(obj, "__module__", None) == module.__name__
            and list(inspect.signature(obj).parameters)[:3] == ["num_classes", "in_channels",
                                                                  "image_size"]}


def test_every_builder_has_a_catalog_line_and_every_line_a_builder():
    catalogued = {m: {n for n in MODELS if MODELS.entry(n).module == m.__name__}
                  for m in (nets, zoo)}
    for module, names in catalogued.items():
        missing = _builders(module) - names
        assert not missing, (f"{module.__name__} builds {sorted(missing)} but coreset/models/"
                             f"__init__.py has no MODELS.add line for them")
        for name in names:
            assert callable(MODELS.get(name)), f"MODELS.add({name!r}) names no builder"
