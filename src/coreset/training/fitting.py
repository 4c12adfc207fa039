"""Build a model by name and fit it on uint8 arrays, tested on the clean test split: what the
pretrain, attacker and train stages share (a stage module never imports another stage)."""

from __future__ import annotations

import numpy as np
import torch

from coreset import artifacts
from coreset.data.stream import as_images
from coreset.io import save_text
from coreset.models import create, resolve
from coreset.params import Params, TrainParams
from coreset.training.device import Normalizer, pick_device
from coreset.training.loop import FitResult, fit, resolve_augment


def train_model(
    p: Params, tp: TrainParams, images: np.ndarray, labels: np.ndarray, *, seed: int, desc: str,
    curves=None, weights: np.ndarray | None = None, record_dynamics: bool = False,
    indices: np.ndarray | None = None, reserve_bytes: int = 0,
) -> tuple[torch.nn.Module, str, FitResult]:
    """Build the model named in ``tp`` and fit it on uint8 ``images`` (memory-mapped or not),
    only the rows ``indices`` when given (never copied whole: they are streamed when they do not
    fit the device, ``data.loader``); test on the clean split. ``weights`` follow ``indices``.
    Per-epoch curves go to the CSV file ``curves`` when given. ``reserve_bytes`` of the host
    budget ``data.host_memory_gb`` are kept for the caller (pretrain's dynamics): the images stay
    resident on the CPU only when they fit the rest."""
    m = artifacts.meta()
    device = pick_device(p.device, p.cpu_threads)
    torch.manual_seed(seed)  # the initial weights depend on the seed only
    name = resolve(tp.model, m.channels, m.image_size)
    model = create(name, m.num_classes, m.channels, m.image_size).to(device)
    test_x, test_y = artifacts.raw_split("test", mmap=True)
    y = labels if indices is None else labels[indices]
    host_gb = max(p.data.host_memory_gb - reserve_bytes / 2**30, 0.0)

    def source(x: np.ndarray, rows: np.ndarray | None = None):
        return as_images(x, device, p.data.loader, host_gb, rows)

    def on_device(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a)).to(device)

    result = fit(
        model, source(images, indices), on_device(y), tp, Normalizer(m.mean, m.std, device),
        seed=seed, augment=resolve_augment(tp.augment, m.image_size, m.channels),
        weights=None if weights is None else on_device(weights).float(),
        test=(source(test_x), on_device(test_y)), record_dynamics=record_dynamics, desc=desc,
    )
    if curves is not None:
        write_curves(curves, result)
    return model, name, result


def write_curves(path, result: FitResult) -> None:
    """Per-epoch curves as one CSV (epoch, train_loss, train_acc, lr, test_acc) for `dvc plots`.

    Written directly rather than through DVCLive: DVCLive needs a git repo with a commit and
    writes file by file, while a stage output must appear atomically."""
    import pandas as pd

    save_text(path, pd.DataFrame(result.history).to_csv(index=False, float_format="%.6g"))
