"""Serving: Recommender.load gives the evaluator's top-k in the data set's own tokens;
online LISA updates; the JSON CLI; bad input."""

import json
import logging

import pytest
import torch

from recbole_pq import Recommender
from recbole_pq.errors import CheckpointError, ConfigError
from recbole_pq.pipeline import setup
from recbole_pq.serving.cli import main as recommend_cli


def train(model_name, ml1m_slice, fast, tmp_path_factory, **extra):
    settings = {**fast, "epochs": 1, "data_path": str(ml1m_slice),
                "checkpoint_dir": str(tmp_path_factory.mktemp("saved")), **extra}
    config, data, model, trainer = setup(model_name, "ml-1m", config_dict=settings)
    trainer.fit(data[0], data[1], saved=True)
    trainer.evaluate(data[2], load_best_model=True)  # the model now holds the best weights
    return data, model, trainer.saved_model_file


@pytest.fixture(scope="module", params=["SASRecJPQ", "gBERT4Rec", "gBERT4RecJPQ", "SASRecLISA"])
def served(request, ml1m_slice, fast, tmp_path_factory):
    return train(request.param, ml1m_slice, fast, tmp_path_factory)


def evaluator_view(data, model, k=10):
    """(histories as tokens, evaluator top-k as tokens) for the test users."""
    test = data[2]
    interaction = next(iter(test))[0]
    dataset = test._dataset
    model.eval()
    with torch.no_grad():
        _, ids = model.full_sort_topk(interaction, k)
    item_field = dataset.iid_field
    histories = [[str(dataset.id2token(item_field, int(i))) for i in row[:length]]
                 for row, length in zip(interaction[model.ITEM_SEQ], interaction[model.ITEM_SEQ_LEN])]
    top = [[str(dataset.id2token(item_field, int(i))) for i in row] for row in ids]
    return histories, top


def test_loaded_model_gives_the_evaluators_topk(served):
    data, model, checkpoint = served
    histories, expected = evaluator_view(data, model)
    recommender = Recommender.load(checkpoint)
    got = recommender.recommend(histories, k=10, exclude_seen=False)  # RecBole's sequential eval keeps seen items
    assert [r["items"] for r in got] == expected
    for row in got:
        assert row["scores"] == sorted(row["scores"], reverse=True)


@pytest.mark.parametrize("lisa_codes", ["learned", None])
def test_lisa_with_learned_codes_serves_old_checkpoints_too(ml1m_slice, fast, tmp_path_factory, lisa_codes):
    """Learned LISA codes are derived from the weights; a checkpoint written before
    ``lisa_codes`` existed (None: no such key) learned them too and must still load."""
    from recbole_pq.serving.checkpoint import load_checkpoint, save_checkpoint

    data, model, checkpoint = train("SASRecLISA", ml1m_slice, fast, tmp_path_factory, lisa_codes="learned")
    state = load_checkpoint(checkpoint)
    state["config"]["lisa_codes"] = lisa_codes
    save_checkpoint(state, checkpoint)
    histories, expected = evaluator_view(data, model)
    got = Recommender.load(checkpoint).recommend(histories, k=10, exclude_seen=False)
    assert [r["items"] for r in got] == expected


def test_checkpoints_from_before_the_training_and_protocol_keys_still_load(served, tmp_path):
    """A checkpoint written before train_precision, train_length_buckets and
    eval_exclude_history existed has none of them in its config: it serves as before."""
    from recbole_pq.serving.checkpoint import load_checkpoint, save_checkpoint

    data, model, checkpoint = served
    state = load_checkpoint(checkpoint)
    for key in ("train_precision", "train_length_buckets", "eval_exclude_history"):
        state["config"].pop(key, None)
    old = tmp_path / "old.pth"
    save_checkpoint(state, old)
    histories, expected = evaluator_view(data, model)
    got = Recommender.load(old).recommend(histories, k=10, exclude_seen=False)
    assert [r["items"] for r in got] == expected


def test_exclude_seen_drops_history_items(served):
    data, model, checkpoint = served
    histories, _ = evaluator_view(data, model)
    recommender = Recommender.load(checkpoint)
    kept = recommender.recommend(histories[:5], k=40, exclude_seen=False)
    dropped = recommender.recommend(histories[:5], k=10, exclude_seen=True)
    for history, all_items, row in zip(histories, kept, dropped):
        assert not set(row["items"]) & set(history)
        assert row["items"] == [i for i in all_items["items"] if i not in set(history)][:10]


def test_unknown_tokens_are_skipped_with_a_warning(served, caplog):
    data, model, checkpoint = served
    histories, _ = evaluator_view(data, model)
    recommender = Recommender.load(checkpoint)
    with caplog.at_level(logging.WARNING):
        noisy = recommender.recommend([histories[0] + ["no-such-item"]], k=5)
    assert "no-such-item" in caplog.text
    assert noisy == recommender.recommend([histories[0]], k=5)
    with pytest.raises(ConfigError, match="no item of the history"):
        recommender.recommend([["no-such-item", "nor-this"]], k=5)


@pytest.mark.parametrize("k", [0, -1, 10**6])
def test_bad_k(served, k):
    data, model, checkpoint = served
    histories, _ = evaluator_view(data, model)
    with pytest.raises(ConfigError, match=f"k={k}"):
        Recommender.load(checkpoint).recommend(histories[:1], k=k)


def test_online_updates_equal_batch_recommendations(ml1m_slice, fast, tmp_path_factory):
    data, model, checkpoint = train("SASRecLISA", ml1m_slice, fast, tmp_path_factory)
    histories, _ = evaluator_view(data, model)
    recommender = Recommender.load(checkpoint)
    history = histories[0]
    user = recommender.start(history[:3])
    for token in history[3:]:
        user = recommender.update(user, token)
    online = recommender.recommend_online(user, k=10)
    batch = recommender.recommend([history], k=10)[0]
    assert online["items"] == batch["items"]
    torch.testing.assert_close(torch.tensor(online["scores"]), torch.tensor(batch["scores"]), rtol=0, atol=1e-4)
    with pytest.raises(ConfigError, match="not in the catalogue"):
        recommender.update(user, "no-such-item")


def test_cli_prints_json(served, capsys):
    data, model, checkpoint = served
    histories, _ = evaluator_view(data, model)
    assert recommend_cli([checkpoint, "--history", " ".join(histories[0]), "--k", "3"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out[0]["history"] == histories[0] and len(out[0]["items"]) == 3


def test_non_plugin_and_broken_checkpoints(tmp_path, served):
    _, _, checkpoint = served
    state = torch.load(checkpoint, weights_only=True)
    state["config"]["model"] = "SASRec"
    foreign = tmp_path / "foreign.pth"
    torch.save(state, foreign)
    with pytest.raises(CheckpointError, match="'SASRec', which is not a recbole-pq model"):
        Recommender.load(foreign)
    broken = tmp_path / "broken.pth"
    broken.write_bytes(open(checkpoint, "rb").read()[:1000])
    with pytest.raises(CheckpointError, match="cannot be read"):
        Recommender.load(broken)
    assert recommend_cli([str(broken), "--history", "1"]) == 2


def test_checkpoint_of_the_runner_serves(ml1m_slice, fast_settings):
    from recbole_pq import run

    result = run("SASRecJPQ", "ml-1m", config_dict={**fast_settings, "data_path": str(ml1m_slice)})
    recommender = Recommender.load(result["saved_model_file"])
    first_items = [str(t) for t in recommender.tokens[1:4]]
    out = recommender.recommend([first_items], k=5)[0]
    assert len(out["items"]) == 5 and not set(out["items"]) & set(first_items)
