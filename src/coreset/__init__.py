"""coreset: a DVC pipeline for data selection (coreset) methods in deep learning."""

__version__ = "0.1.0"
