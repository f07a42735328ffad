"""Config layering, model lookup and clear errors for unknown names and missing data."""

import pytest

import recbole_pq
from recbole_pq.errors import ConfigError, DatasetNotFoundError
from recbole_pq.pipeline import PROPERTIES, build_config, load_data
from recbole_pq.registry import get_model_class


def _yaml(path, text):
    path.write_text(text)
    return str(path)


def test_layer_order(tmp_path):
    # RecBole default (eval_batch_size 4096) is kept where no layer sets it.
    config = build_config("SASRecJPQ", "ml-100k")
    assert config["eval_batch_size"] == 4096
    # properties/overall.yaml overrides RecBole's default (RecBole: valid_metric MRR@10).
    assert config["valid_metric"] == "NDCG@10"
    # properties/model/SASRecJPQ.yaml overrides overall.yaml (train_mode prefix -> seq2seq).
    assert config["train_mode"] == "seq2seq"
    # properties/dataset/<name>.yaml overrides the model file.
    assert build_config("SASRecJPQ", "ml-1m")["MAX_ITEM_LIST_LENGTH"] == 200
    # --config_files override the property files, later files win ...
    a = _yaml(tmp_path / "a.yaml", "MAX_ITEM_LIST_LENGTH: 30\npq_m: 4\n")
    b = _yaml(tmp_path / "b.yaml", "pq_m: 2\n")
    config = build_config("SASRecJPQ", "ml-1m", config_file_list=[a, b])
    assert config["MAX_ITEM_LIST_LENGTH"] == 30 and config["pq_m"] == 2
    # ... and the command line (config_dict, strings typed as RecBole does) wins over all.
    config = build_config("SASRecJPQ", "ml-1m", config_file_list=[a, b], config_dict={"pq_m": "16"})
    assert config["pq_m"] == 16


def test_every_plugin_model_has_a_commented_yaml():
    for name in recbole_pq.registry.PLUGIN_MODELS:
        lines = [l for l in (PROPERTIES / "model" / f"{name}.yaml").read_text().splitlines()
                 if l.strip() and not l.lstrip().startswith("#") and not l.startswith(" ")]
        assert lines and all("#" in l for l in lines), name


def test_model_lookup_plugin_and_builtin():
    from recbole.model.sequential_recommender.bert4rec import BERT4Rec

    assert get_model_class("SASRecJPQ").__name__ == "SASRecJPQ"
    assert get_model_class("BERT4Rec") is BERT4Rec


def test_unknown_model_names_close_matches():
    with pytest.raises(ConfigError, match=r"Unknown model 'SASRecJQP'.*Did you mean SASRecJPQ"):
        get_model_class("SASRecJQP")


def test_unknown_dataset(tmp_path):
    config = build_config("SASRecJPQ", "no-such-data", config_dict={"data_path": str(tmp_path)})
    with pytest.raises(DatasetNotFoundError, match=r"Unknown data set 'no-such-data'.*Known data sets: .*ml-1m"):
        load_data(config)


def test_missing_data_folder_says_how_to_prepare(tmp_path):
    config = build_config("SASRecJPQ", "ml-1m", config_dict={"data_path": str(tmp_path)})
    with pytest.raises(DatasetNotFoundError, match=r"not prepared.*ml-1m\.inter.*python dataset/prepare.py ml-1m"):
        load_data(config)


def test_bad_train_mode():
    with pytest.raises(ConfigError, match="train_mode='sideways'"):
        build_config("SASRecJPQ", "ml-100k", config_dict={"train_mode": "sideways"})
    with pytest.raises(ConfigError, match="SASRec does not"):
        build_config("SASRec", "ml-100k", config_dict={"train_mode": "seq2seq"})


def test_missing_config_file():
    with pytest.raises(ConfigError, match="nope.yaml"):
        build_config("SASRecJPQ", "ml-100k", config_file_list=["nope.yaml"])


@pytest.mark.parametrize("model,key,suggestion", [
    ("SASRecJPQ", "pq_mm", "pq_m"), ("SASRecJPQ", "epoch", "epochs"),
    ("SASRecLISA", "lisa_varaint", "lisa_variant"), ("gBERT4RecJPQ", "gbce_tt", "gbce_t"),
])
def test_misspelt_key_fails_with_suggestion(model, key, suggestion):
    with pytest.raises(ConfigError, match=f"Unknown config key '{key}' for {model}. Did you mean {suggestion}"):
        build_config(model, "ml-100k", config_dict={key: 1})


def test_misspelt_key_in_a_config_file_fails_too(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("learning_rte: 0.01\n")
    with pytest.raises(ConfigError, match="'learning_rte'.*learning_rate"):
        build_config("SASRecJPQ", "ml-100k", config_file_list=[str(path)])


def test_custom_key_is_passed_on(caplog):
    assert build_config("SASRecJPQ", "ml-100k", config_dict={"my_experiment_tag": "x"})["my_experiment_tag"] == "x"


def test_progress_bars_only_on_a_terminal(monkeypatch):
    import sys

    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert build_config("SASRecJPQ", "ml-100k")["show_progress"] is True
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False)  # a pipe or a log file
    assert build_config("SASRecJPQ", "ml-100k")["show_progress"] is False
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    monkeypatch.setenv("CI", "true")
    assert build_config("SASRecJPQ", "ml-100k")["show_progress"] is False
    assert build_config("SASRecJPQ", "ml-100k", config_dict={"show_progress": True})["show_progress"] is True
