"""Parameter count of every architecture at 32 px, 3 channels, 10 classes (the README table).

    python benchmarks/model_params.py
"""

from __future__ import annotations

from coreset.models import MODELS, min_size


def main() -> None:
    print("| model | parameters (32 px, 3 channels, 10 classes) | features | smallest input |")
    print("|---|---:|---:|---:|")
    for name in MODELS:
        px = max(32, min_size(name))
        model = MODELS.get(name)(10, 3, px)
        count = sum(p.numel() for p in model.parameters())
        size = f"{px} px" if px != 32 else "32 px"
        print(f"| `{name}` | {count:,}{'' if px == 32 else f' (at {size})'} | "
              f"{model.classifier.in_features} | {min_size(name)} |")


if __name__ == "__main__":
    main()
