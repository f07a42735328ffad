"""Checkpoints: weights-only loadable, atomic, and a clear error naming a bad file."""

import pickle

import pytest
import torch

from recbole_pq.serving.checkpoint import CheckpointError, load_checkpoint, plain_config, save_checkpoint


def test_round_trip_weights_only(tmp_path):
    path = tmp_path / "m.pth"
    state = {"config": {"model": "SASRecJPQ", "topk": [10]}, "state_dict": {"w": torch.ones(2)}, "epoch": 3}
    save_checkpoint(state, path)
    loaded = torch.load(path, weights_only=True)
    assert loaded["epoch"] == 3 and torch.equal(loaded["state_dict"]["w"], torch.ones(2))
    assert not list(tmp_path.glob("*.tmp"))  # the temporary file was renamed away


def test_plain_config_is_weights_only_loadable(tmp_path):
    import recbole_pq

    config = recbole_pq.build_config("SASRecJPQ", "ml-100k")
    path = tmp_path / "c.pth"
    save_checkpoint({"config": plain_config(config), "state_dict": {}}, path)
    loaded = load_checkpoint(path)["config"]
    assert loaded["model"] == "SASRecJPQ" and loaded["MODEL_TYPE"] == "SEQUENTIAL" and loaded["device"] == "cpu"


def test_truncated_checkpoint(tmp_path):
    path = tmp_path / "best.pth"
    save_checkpoint({"config": {}, "state_dict": {"w": torch.randn(1000)}}, path)
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(CheckpointError, match=r"best\.pth cannot be read"):
        load_checkpoint(path)


def test_foreign_pickle_is_refused(tmp_path):
    path = tmp_path / "evil.pth"

    class Payload:
        def __reduce__(self):
            return (print, ("this must never run",))

    path.write_bytes(pickle.dumps(Payload()))
    with pytest.raises(CheckpointError, match=r"evil\.pth is not a recbole-pq checkpoint: it holds pickled"):
        load_checkpoint(path)


def test_not_our_checkpoint(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"weights": torch.ones(1)}, path)
    with pytest.raises(CheckpointError, match=r"other\.pth is not a recbole-pq checkpoint"):
        load_checkpoint(path)


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="nope.pth does not exist"):
        load_checkpoint(tmp_path / "nope.pth")


def test_crash_mid_save_keeps_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "best.pth"
    save_checkpoint({"config": {}, "state_dict": {"w": torch.zeros(1)}}, path)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # killed while writing

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({"config": {}, "state_dict": {"w": torch.ones(1)}}, path)
    assert torch.equal(load_checkpoint(path)["state_dict"]["w"], torch.zeros(1))


def test_plain_turns_numpy_scalars_into_python_numbers():
    import numpy as np

    from recbole_pq.serving.checkpoint import plain

    value = plain({"ndcg@10": np.float64(0.5), "n": np.int64(3), "xs": (np.float32(1.5),)})
    assert value == {"ndcg@10": 0.5, "n": 3, "xs": [1.5]}
    assert type(value["ndcg@10"]) is float and type(value["n"]) is int


def test_checkpoints_carry_their_format_version(tmp_path):
    from recbole_pq.serving.checkpoint import CHECKPOINT_FORMAT

    path = tmp_path / "c.pth"
    save_checkpoint({"config": {"model": "SASRecJPQ"}, "state_dict": {}}, path)
    assert load_checkpoint(path)["format"] == CHECKPOINT_FORMAT
    torch.save({"config": {}, "state_dict": {}}, tmp_path / "old.pth")  # before the field existed
    assert load_checkpoint(tmp_path / "old.pth").get("format", 0) == 0
