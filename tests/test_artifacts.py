"""Artifacts are byte-reproducible: the same content gives the same file, whatever its name."""

import torch

from coreset import artifacts
from coreset.models import create


def test_checkpoints_do_not_depend_on_the_file_name(tmp_path):
    # torch.save(obj, path) names the zip's folder after the (random) temp file of the atomic
    # write: the same tensors gave new bytes, a new DVC hash and a rerun downstream
    torch.manual_seed(0)
    model = create("small_cnn", 10, 1, 8)
    state = {"name": "small_cnn", "state_dict": model.state_dict()}
    artifacts.save_checkpoint(tmp_path / "a" / "seed0.pt", state)
    artifacts.save_checkpoint(tmp_path / "b" / "other-name.pt", state)
    first = (tmp_path / "a" / "seed0.pt").read_bytes()
    assert first == (tmp_path / "b" / "other-name.pt").read_bytes()
    loaded = torch.load(tmp_path / "a" / "seed0.pt", weights_only=True)
    for key, value in model.state_dict().items():
        assert torch.equal(loaded["state_dict"][key], value)
