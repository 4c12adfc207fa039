"""The device a stage runs on and the uint8 -> normalised float conversion: all that a stage
needs to run a model without the training loop (corrupt's attacks, embed, the scoring context)."""

from __future__ import annotations

import torch


def pick_device(name: str = "auto", cpu_threads: int = 0) -> torch.device:
    """``auto`` -> CUDA when present, else Apple MPS, else CPU. Nothing hard-codes cuda.
    ``cpu_threads`` > 0 caps torch's CPU threads (0 keeps torch's default)."""
    if cpu_threads > 0:
        torch.set_num_threads(cpu_threads)
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


class Normalizer:
    """uint8 (B, H, W, C) on any device -> normalised float (B, C, H, W)."""

    def __init__(self, mean: list[float], std: list[float], device: torch.device) -> None:
        self.mean = torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)

    def unit(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 NHWC -> float NCHW in [0, 1]."""
        return x.permute(0, 3, 1, 2).float().div_(255.0)

    def __call__(self, x_unit: torch.Tensor) -> torch.Tensor:
        """float NCHW in [0, 1] -> normalised."""
        return (x_unit - self.mean) / self.std
