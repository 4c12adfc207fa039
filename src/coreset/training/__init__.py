"""The training wing: the one training loop, its options, dynamic selection during training,
progress lines and the per-epoch dynamics it records. Imports nothing from ``coreset.scores``;
importing the package imports no torch (``options`` and ``dynamic`` are torch-free)."""
