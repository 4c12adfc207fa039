"""The architecture names ``models.create`` accepts, torch-free so that validating params.yaml
needs no torch (a module inside models/ would import the package, and with it torch). Adding a
model: its builder in ``models/__init__.py`` or ``models/zoo.py`` and its name here (tests check
that they agree, and that MIN_SIZE matches the zoo's)."""

AUTO = "auto"  # resolved per dataset by models.resolve
NAMES = (
    "mnist_cnn", "small_cnn", "resnet18", "resnet50", "vgg16",
    # models/zoo.py: DeepCore's networks and the Moderate paper's generalisation table
    "mlp", "lenet", "alexnet", "vgg11", "googlenet", "inception_v3", "resnet34", "se_resnet18",
    "wrn_16_4", "wrn_28_10", "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0",
    "shufflenet_v2", "vit_s",
)
# the smallest square input (px) of the models that need more than the 8 px of digits
MIN_SIZE = {"lenet": 16, "vgg11": 32, "inception_v3": 75}
