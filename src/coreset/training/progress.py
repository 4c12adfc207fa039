"""Per-epoch progress: a tqdm bar when stderr is a terminal, else one short line per epoch.

DVC and ``dvc queue logs`` capture stderr as a file, where tqdm's carriage-return refreshes
pile up into one line of thousands of characters; a log gets one readable line per epoch.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class EpochProgress:
    """``update(row)`` after each epoch with the history row (epoch, train_loss, train_acc, lr,
    test_acc); ``close()`` at the end."""

    def __init__(self, epochs: int, desc: str, stream: TextIO | None = None) -> None:
        self.epochs, self.desc = epochs, desc
        self.stream = sys.stderr if stream is None else stream
        self.bar = None
        if self.stream.isatty():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=epochs, desc=desc, unit="epoch", leave=False, file=self.stream)
        self.last = time.perf_counter()

    def update(self, row: dict[str, float]) -> None:
        now = time.perf_counter()
        seconds, self.last = now - self.last, now
        if self.bar is not None:
            self.bar.set_postfix({k: round(v, 4) for k, v in row.items() if k != "epoch"})
            self.bar.update(1)
            return
        self.stream.write(line(self.desc, self.epochs, row, seconds) + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def line(desc: str, epochs: int, row: dict[str, float], seconds: float) -> str:
    """``train el2n seed 0: epoch 3/30 loss 0.4123 acc 0.8712 test 0.8450 lr 0.04755 1.2s``"""
    test = f" test {row['test_acc']:.4f}" if "test_acc" in row else ""
    return (f"{desc}: epoch {int(row['epoch'])}/{epochs} loss {row['train_loss']:.4f} "
            f"acc {row['train_acc']:.4f}{test} lr {row['lr']:.4g} {seconds:.1f}s")
