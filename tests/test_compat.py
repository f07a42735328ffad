"""Each compatibility shim, with a check that shows the problem it fixes is real."""

import subprocess
import sys

import numpy as np
import pytest
import torch


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_numpy_aliases_restored_so_recbole_config_builds():
    import recbole_pq

    assert np.float_ is np.float64 and np.complex_ is np.complex128 and np.unicode_ is np.str_
    config = recbole_pq.build_config("SASRecJPQ", "ml-100k", config_dict={"epochs": 3})
    assert config["epochs"] == 3


def test_recbole_config_fails_without_numpy_aliases():
    result = _python("from recbole.config import Config; Config(model='SASRec', dataset='ml-100k')")
    assert result.returncode != 0 and "float_" in result.stderr


def test_import_leaves_anomaly_detection_off():
    code = ("import recbole_pq, torch\n"
            "import recbole.model.sequential_recommender\n"
            "from recbole.utils import get_model; get_model('SINE')\n"
            "print(torch.is_anomaly_enabled())")
    assert _python(code).stdout.strip() == "False"


def test_recbole_alone_turns_anomaly_detection_on():
    code = ("import numpy as np; np.float_=np.float64; np.complex_=np.complex128; np.unicode_=np.str_\n"
            "import torch, recbole.model.sequential_recommender\nprint(torch.is_anomaly_enabled())")
    assert _python(code).stdout.strip() == "True"


def test_recbole_trainer_loads_its_own_pickled_checkpoints(tmp_path):
    import recbole.trainer.trainer as recbole_trainer

    import recbole_pq

    config = recbole_pq.build_config("SASRec", "ml-100k")
    path = tmp_path / "ckpt.pth"
    torch.save({"config": config, "state_dict": {}}, path, pickle_protocol=4)  # as RecBole saves
    with pytest.raises(Exception, match="weights_only"):
        torch.load(path)  # current torch refuses RecBole's pickles by default
    assert recbole_trainer.torch.load(path)["config"]["model"] == "SASRec"


def test_config_ignores_process_command_line(monkeypatch):
    import recbole_pq

    monkeypatch.setattr(sys, "argv", ["pytest", "--epochs=7", "-q"])
    assert recbole_pq.build_config("SASRecJPQ", "ml-100k")["epochs"] != 7
    assert sys.argv == ["pytest", "--epochs=7", "-q"]


def test_ray_auth_token_disabled():
    import os

    import recbole_pq  # noqa: F401

    assert os.environ["RAY_AUTH_MODE"] == "disabled"


def test_pop_counts_every_interaction():
    """RecBole 1.2.1's Pop writes item_cnt[item] once per distinct item of a batch."""
    from types import SimpleNamespace

    from recbole.model.general_recommender.pop import Pop

    pop = SimpleNamespace(ITEM_ID="item_id", item_cnt=torch.zeros(4, 1, dtype=torch.long), device="cpu")
    Pop.calculate_loss(pop, {"item_id": torch.tensor([1, 1, 3, 1])})
    Pop.calculate_loss(pop, {"item_id": torch.tensor([3])})
    assert pop.item_cnt.squeeze(1).tolist() == [0, 3, 0, 2] and pop.max_cnt.item() == 3


def test_recbole_sequential_model_ranks_without_history_when_asked(ml1m_slice, fast_settings):
    """RecBole's BERT4Rec does not read eval_exclude_history: without the shim its full-sort
    scores keep the history's items rankable (the first check), with it they are -inf and
    every other score is the model's own (the reference: its unpatched full_sort_predict)."""
    from recbole_pq.pipeline import setup

    settings = {**fast_settings, "data_path": str(ml1m_slice), "train_mode": "seq2seq"}
    _, (_, _, test), plain, _ = setup("BERT4Rec", "ml-1m", config_dict={**settings, "eval_exclude_history": False})
    interaction = next(iter(test))[0]
    history = interaction[plain.ITEM_SEQ]
    kept = plain.full_sort_predict(interaction)
    assert torch.isfinite(kept.gather(1, history)).all()

    _, (_, _, test), model, _ = setup("BERT4Rec", "ml-1m", config_dict={**settings, "eval_exclude_history": True})
    model.eval()
    interaction = next(iter(test))[0]
    history = interaction[model.ITEM_SEQ]
    with torch.no_grad():
        scores = model.full_sort_predict(interaction)
        reference = type(model).full_sort_predict(model, interaction)
    masked = torch.zeros_like(scores, dtype=torch.bool).scatter(1, history, True)
    assert torch.isinf(scores[masked]).all() and (scores[masked] < 0).all()
    assert torch.equal(scores[~masked], reference[~masked]) and torch.isfinite(reference[masked]).all()
    assert (history[:, 0] > 0).all() and masked[:, 1:].sum(1).ge(1).all()
