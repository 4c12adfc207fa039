"""The architecture names ``models.create`` accepts, torch-free so that validating params.yaml
needs no torch (a module inside models/ would import the package, and with it torch). Adding a
model: its builder in ``models/__init__.py`` and its name here (tests check that they agree)."""

AUTO = "auto"  # resolved per dataset by models.resolve
NAMES = ("mnist_cnn", "small_cnn", "resnet18", "resnet50", "vgg16")
