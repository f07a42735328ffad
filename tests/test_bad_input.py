"""The bad-input table: every case raises a named exception whose message names the
offending value.  docs/RELIABILITY.md lists the same cases (checked below)."""

import argparse
import re
import numpy as np
import pytest
import torch

import recbole_pq
from recbole_pq.data.paths import PROJECT_ROOT
from recbole_pq.data.prepare import prepare
from recbole_pq.errors import CheckpointError, ConfigError, DataFileError, DatasetNotFoundError
from recbole_pq.items.codebooks import CodebookQuantizer
from recbole_pq.items.scoring import make_scorer
from recbole_pq.items.sub_item_table import ItemCodeEmbedding
from recbole_pq.pipeline import build_config, load_data, setup
from recbole_pq.serving.checkpoint import load_checkpoint, save_checkpoint
from recbole_pq.tuning.spec import check_spec, load_tune_file

TINY = {"hidden_size": 16, "inner_size": 32, "n_layers": 1, "n_heads": 1, "MAX_ITEM_LIST_LENGTH": 20,
        "pq_m": 4, "pq_b": 16, "epochs": 1, "state": "WARNING", "neg_samples": 8}


def model_case(model, **overrides):
    def run(env):
        setup(model, "ml-1m", config_dict={**TINY, "data_path": str(env["data"]),
                                           "checkpoint_dir": str(env["tmp"]), **overrides})
    return run


def config_case(model, dataset="ml-100k", **overrides):
    return lambda env: build_config(model, dataset, config_dict=overrides)


def tune_case(space, **spec):
    def run(env):
        path = env["tmp"] / "t.yaml"
        import yaml

        path.write_text(yaml.safe_dump({"search_space": space, **spec}))
        check_spec(load_tune_file(path), build_config("SASRecJPQ", "ml-100k"))
    return run


def _codes(n=10, m=2):
    return np.zeros((n, m), dtype=np.uint8)


def _truncated(env):
    path = env["tmp"] / "trunc.pth"
    save_checkpoint({"config": {}, "state_dict": {"w": torch.randn(100)}}, path)
    path.write_bytes(path.read_bytes()[:300])
    load_checkpoint(path)


def _foreign(env):
    path = env["tmp"] / "foreign.pth"
    torch.save({"weights": torch.ones(1)}, path)
    load_checkpoint(path)


def _resume_from_best(env):
    from recbole_pq.trainer import PQTrainer

    path = env["tmp"] / "best.pth"
    save_checkpoint({"config": {"model": "SASRecJPQ"}, "state_dict": {}}, path)
    PQTrainer.resume_checkpoint(type("T", (), {"device": "cpu", "config": {"model": "SASRecJPQ"}})(), path)


def _model_forward_bad_id(env):
    config, _, model, _ = setup("SASRecJPQ", "ml-1m", config_dict={**TINY, "data_path": str(env["data"]),
                                                                    "checkpoint_dir": str(env["tmp"])})
    model.forward(torch.tensor([[1, 2, model.n_items + 5]]), torch.tensor([3]))


def _lisa(env, **overrides):
    return setup("SASRecLISA", "ml-1m", config_dict={**TINY, "data_path": str(env["data"]), "lisa_W": 8,
                                                     "checkpoint_dir": str(env["tmp"]), **overrides})[2]


def _recommender(env, model="SASRecJPQ"):
    from recbole_pq.serving.recommender import Recommender

    return Recommender(setup(model, "ml-1m", config_dict={**TINY, "data_path": str(env["data"]),
                                                          "checkpoint_dir": str(env["tmp"])})[2])


def _serve_foreign_model(env):
    from recbole_pq.serving.recommender import Recommender

    path = env["tmp"] / "sasrec.pth"
    save_checkpoint({"config": {"model": "SASRec"}, "state_dict": {}}, path)
    Recommender.load(path)


def _sharded_dense(env):
    from recbole_pq.serving.sharded import ShardedScorer

    ShardedScorer(_recommender(env, "gBERT4Rec").model.items, 2)


def _yaml_case(name, text):
    return lambda env: build_config("SASRecJPQ", "ml-100k", config_file_list=[str(_written(env, name, text))])


def _resume_other_shape(env):
    """A -last.pth of a run with pq_b=16, resumed by a run with pq_b=8."""
    from recbole_pq.trainer import PQTrainer

    settings = {**TINY, "data_path": str(env["data"]), "checkpoint_dir": str(env["tmp"] / "shape")}
    _, _, model, trainer = setup("SASRecJPQ", "ml-1m", config_dict=settings)
    last = env["tmp"] / "shape-last.pth"
    save_checkpoint({**trainer._checkpoint_state(0), "rng": {}}, last)
    _, _, _, other = setup("SASRecJPQ", "ml-1m", config_dict={**settings, "pq_b": 8})
    PQTrainer.resume_checkpoint(other, last)


def _future_checkpoint(env):
    path = env["tmp"] / "future.pth"
    torch.save({"config": {}, "state_dict": {}, "format": 99}, path)
    load_checkpoint(path)


def _stock_recbole_checkpoint(env):
    path = env["tmp"] / "recbole.pth"
    torch.save({"config": argparse.Namespace(model="SASRec"), "state_dict": {}}, path)  # pickles an object
    load_checkpoint(path)


def _written(env, name, text):
    path = env["tmp"] / name
    path.write_text(text)
    return path


def _sweep(env, name, resume, make_folder):
    from recbole_pq.tuning.run import sweep
    import yaml

    tune_file = env["tmp"] / f"{name}.yaml"
    tune_file.write_text(yaml.safe_dump({"name": name, "search_space": {"pq_m": {"grid": [2]}}}))
    if make_folder:
        (env["tmp"] / "sweeps" / f"SASRecJPQ-ml-100k-{name}").mkdir(parents=True)
    sweep("SASRecJPQ", "ml-100k", tune_file, resume=resume, tune_dir=env["tmp"] / "sweeps")


def _user_file(text: str):
    """load_data on a user's own data set 'mine' whose mine.inter holds ``text``."""
    def run(env):
        root = env["tmp"] / f"user{abs(hash(text))}"
        (root / "mine").mkdir(parents=True, exist_ok=True)
        (root / "mine" / "mine.inter").write_text(text)
        load_data(build_config("SASRecJPQ", "mine", config_dict={"data_path": str(root)}))
    return run


HEADER = "user_id:token\titem_id:token\ttimestamp:float\n"


# (case id, what goes wrong, callable, exception, pattern the message must contain)
CASES = [
    ("unknown-model", "model name not found", lambda env: recbole_pq.get_model_class("SASRecJQP"), ConfigError,
     r"Unknown model 'SASRecJQP'.*Did you mean SASRecJPQ"),
    ("unknown-dataset", "data set neither known nor present",
     lambda env: load_data(build_config("SASRecJPQ", "nodata", config_dict={"data_path": str(env["tmp"])})),
     DatasetNotFoundError, r"Unknown data set 'nodata'"),
    ("dataset-not-prepared", "known data set, files missing",
     lambda env: load_data(build_config("SASRecJPQ", "video-games", config_dict={"data_path": str(env["tmp"])})),
     DatasetNotFoundError, r"video-games\.inter.*python dataset/prepare.py video-games"),
    ("prepare-missing-source", "prepare without the shared file",
     lambda env: prepare("beauty", source=env["tmp"] / "none.txt", out_root=env["tmp"]), FileNotFoundError,
     r"none\.txt"),
    ("missing-config-file", "--config_files names no file",
     lambda env: build_config("SASRecJPQ", "ml-100k", config_file_list=["nope.yaml"]), ConfigError, r"nope\.yaml"),
    ("misspelt-key", "typo in a config key", config_case("SASRecJPQ", pq_mm=4), ConfigError,
     r"'pq_mm'.*Did you mean pq_m"),
    ("misspelt-lisa-key", "typo in a LISA key", config_case("SASRecLISA", lisa_varaint="soft"), ConfigError,
     r"'lisa_varaint'.*lisa_variant"),
    ("train-mode", "unknown train_mode", config_case("SASRecJPQ", train_mode="sideways"), ConfigError,
     r"train_mode='sideways'"),
    ("seq2seq-stock-model", "seq2seq for a model that scores one position", config_case("SASRec", train_mode="seq2seq"),
     ConfigError, r"seq2seq.*SASRec does not"),
    ("pq-m-divides", "hidden size not divisible by pq_m", model_case("SASRecJPQ", pq_m=3), ConfigError,
     r"pq_m=3 must divide hidden_size=16; allowed values: \[1, 2, 4, 8, 16\]"),
    ("pq-b-small", "pq_b below 2", model_case("SASRecJPQ", pq_b=1), ConfigError, r"pq_b=1 must be an integer in \[2, "),
    ("pq-b-large", "pq_b above the catalogue", model_case("SASRecJPQ", pq_b=10**6), ConfigError, r"pq_b=1000000"),
    ("code-assignment", "unknown code_assignment", model_case("SASRecJPQ", code_assignment="kmeans"), ConfigError,
     r"code_assignment='kmeans'"),
    ("scorer", "unknown scorer", model_case("SASRecJPQ", scorer="fast"), ConfigError, r"scorer='fast'"),
    ("pq-backend", "unknown pq_backend", model_case("SASRecJPQ", pq_backend="gpu"), ConfigError, r"pq_backend='gpu'"),
    ("pq-chunk-size", "pq_chunk_size below 1", model_case("SASRecJPQ", pq_chunk_size=0), ConfigError,
     r"pq_chunk_size=0"),
    ("loss-type", "unknown loss_type", model_case("SASRecJPQ", loss_type="MSE"), ConfigError, r"loss_type='MSE'"),
    ("gbce-t-high", "gbce_t above 1", model_case("gBERT4RecJPQ", gbce_t=1.5), ConfigError, r"gbce_t=1.5"),
    ("gbce-t-low", "gbce_t below 0", model_case("gBERT4RecJPQ", gbce_t=-0.1), ConfigError, r"gbce_t=-0.1"),
    ("neg-samples-zero", "no negatives", model_case("gBERT4RecJPQ", neg_samples=0), ConfigError, r"neg_samples=0"),
    ("neg-samples-catalogue", "as many negatives as items", model_case("gBERT4RecJPQ", neg_samples=10**6),
     ConfigError, r"neg_samples=1000000"),
    ("mask-ratio", "mask_ratio outside (0, 1)", model_case("gBERT4RecJPQ", mask_ratio=1.0), ConfigError,
     r"mask_ratio=1.0"),
    ("dense-with-pq-scorer", "PQ scorer for a dense item table", model_case("gBERT4Rec", scorer="pqtopk"),
     ConfigError, r"scorer='pqtopk' needs compressed items"),
    ("item-table", "unknown item_table", config_case("SASRecJPQ", item_table="hashed"), ConfigError,
     r"item_table='hashed' is not an item table: use one of dense, codes"),
    ("item-table-lisa", "item_table for LISA", config_case("SASRecLISA", item_table="dense"), ConfigError,
     r"item_table='dense'"),
    ("lisa-variant", "unknown lisa_variant", model_case("SASRecLISA", lisa_variant="tiny"), ConfigError,
     r"lisa_variant='tiny'"),
    ("lisa-memory", "histograms that cannot fit", model_case("SASRecLISA", lisa_B=64, lisa_W=65536), ConfigError,
     r"need about .* GiB .*B=64 x W=65536"),
    ("lisa-decay", "negative decay", model_case("SASRecLISA", lisa_decay=-1.0), ConfigError, r"lisa_decay=-1.0"),
    ("lisa-codewords", "fewer than 2 codewords", model_case("SASRecLISA", lisa_W=1), ConfigError,
     r"lisa_B/lisa_W=8/1"),
    ("lisa-soft-scorer", "soft variant with a PQ scorer", model_case("SASRecLISA", lisa_variant="soft", scorer="pqtopk"),
     ConfigError, r"lisa_variant=soft scores full item embeddings"),
    ("codebook-width", "vectors of another width than the codebooks",
     lambda env: CodebookQuantizer(2, 4, 8).assign(torch.randn(3, 6)), ValueError, r"width 6 .* D=8"),
    ("codes-range", "codes outside [0, b)", lambda env: ItemCodeEmbedding(np.full((4, 2), 9), 8, 8), ValueError,
     r"\[0, 8\)"),
    ("codes-divide", "d not divisible by m", lambda env: ItemCodeEmbedding(_codes(m=3), 4, 8), ValueError,
     r"embedding size 8 is not divisible by the number of splits m=3"),
    ("k-zero", "top-k of 0",
     lambda env: make_scorer("pqtopk").topk(torch.randn(1, 8), ItemCodeEmbedding(_codes(), 4, 8), 0), ConfigError,
     r"k=0"),
    ("k-catalogue", "top-k beyond the catalogue",
     lambda env: make_scorer("recjpq").topk(torch.randn(1, 8), ItemCodeEmbedding(_codes(), 4, 8), 10), ConfigError,
     r"k=10 .* 9 items"),
    ("item-id-range", "history with an id beyond the catalogue", _model_forward_bad_id, ValueError,
     r"item id \d+ is outside the catalogue"),
    ("lisa-online-id", "online step with the padding id", lambda env: _lisa(env).step(
        _lisa(env).init_state([1, 2]), 0), ValueError, r"item id 0 is outside the catalogue"),
    ("lisa-empty-history", "online state from no history", lambda env: _lisa(env).init_state([]), ValueError,
     r"history must be non-empty"),
    ("checkpoint-missing", "checkpoint path with no file", lambda env: load_checkpoint(env["tmp"] / "gone.pth"),
     CheckpointError, r"gone\.pth does not exist"),
    ("checkpoint-truncated", "checkpoint cut short", _truncated, CheckpointError, r"trunc\.pth cannot be read"),
    ("checkpoint-foreign", "a torch file that is not ours", _foreign, CheckpointError,
     r"foreign\.pth is not a recbole-pq checkpoint"),
    ("resume-best-file", "--resume given the best-model file", _resume_from_best, CheckpointError,
     r"best\.pth is a best-model checkpoint"),
    ("serve-unknown-items", "a history of unknown item tokens",
     lambda env: _recommender(env).recommend([["nope", "nada"]]), ConfigError,
     r"no item of the history \['nope', 'nada'\]"),
    ("serve-history-string", "a history given as one string",
     lambda env: _recommender(env).recommend(["1 2 3"]), ConfigError, r"not the string '1 2 3'"),
    ("serve-k", "recommend k beyond the catalogue", lambda env: _recommender(env).recommend([["1"]], k=10**6),
     ConfigError, r"k=1000000"),
    ("serve-foreign-model", "serving a checkpoint of a RecBole model", _serve_foreign_model, CheckpointError,
     r"'SASRec', which is not a recbole-pq model"),
    ("serve-online-not-lisa", "online updates on a model without them", lambda env: _recommender(env).start(["1"]),
     ConfigError, r"online updates need SASRecLISA"),
    ("shards-zero", "sharded scoring over 0 shards",
     lambda env: __import__("recbole_pq.serving.sharded").serving.sharded.ShardedScorer(ItemCodeEmbedding(_codes(), 4, 8), 0),
     ConfigError, r"shards=0 is not allowed"),
    ("shards-dense", "sharding a dense item table", _sharded_dense, ConfigError, r"needs compressed items"),
    ("tune-unknown-key", "search space over a key the model lacks", tune_case({"pq_mm": {"grid": [2]}}),
     ConfigError, r"'pq_mm' is not a config key of SASRecJPQ"),
    ("tune-empty", "empty search space", tune_case({}), ConfigError, r"search space is empty"),
    ("tune-metric", "metric the evaluator does not produce", tune_case({"pq_m": {"grid": [2]}}, metric="auc"),
     ConfigError, r"metric 'auc' is not produced"),
    ("tune-rule", "search rule that is not grid/choice/...", tune_case({"pq_m": [2, 4]}), ConfigError,
     r"search_space 'pq_m': write one of"),
    ("train-precision", "unknown train_precision", config_case("SASRecJPQ", train_precision="fp16"), ConfigError,
     r"train_precision='fp16' is not supported"),
    ("train-length-buckets", "negative train_length_buckets", config_case("DenseSASRec", train_length_buckets=-2),
     ConfigError, r"train_length_buckets=-2 must be an integer >= 0"),
    ("eval-exclude-history", "eval_exclude_history not a bool", config_case("SASRecJPQ", eval_exclude_history="yes"),
     ConfigError, r"eval_exclude_history='yes' must be true or false"),
    ("epochs-negative", "negative epochs (ran untrained before)", config_case("SASRecJPQ", epochs=-1), ConfigError,
     r"epochs=-1 is not allowed: must be an integer >= 1"),
    ("epochs-zero", "zero epochs", config_case("SASRecJPQ", epochs=0), ConfigError, r"epochs=0 .* integer >= 1"),
    ("epochs-float", "fractional epochs", config_case("SASRecJPQ", epochs=1.5), ConfigError,
     r"epochs=1.5 .* an integer"),
    ("learning-rate-zero", "learning rate 0 (trained nothing before)", config_case("SASRecJPQ", learning_rate=0),
     ConfigError, r"learning_rate=0 .* a number > 0"),
    ("learning-rate-text", "learning rate not a number", config_case("SASRecJPQ", learning_rate="abc"), ConfigError,
     r"learning_rate='abc' .* a number > 0"),
    ("hidden-size-text", "hidden size not a number", config_case("SASRecJPQ", hidden_size="abc"), ConfigError,
     r"hidden_size='abc' .* an integer >= 1"),
    ("hidden-size-float", "hidden size with a fraction part", config_case("SASRecJPQ", hidden_size=16.0),
     ConfigError, r"hidden_size=16.0 .* an integer >= 1"),
    ("max-length-zero", "no history positions", config_case("SASRecJPQ", MAX_ITEM_LIST_LENGTH=0), ConfigError,
     r"MAX_ITEM_LIST_LENGTH=0 .* an integer >= 1"),
    ("batch-size-zero", "empty training batches", config_case("SASRecJPQ", train_batch_size=0), ConfigError,
     r"train_batch_size=0 .* an integer >= 1"),
    ("dropout-one", "dropout that drops everything", config_case("SASRecJPQ", hidden_dropout_prob=1.0), ConfigError,
     r"hidden_dropout_prob=1.0 .* in \[0, 1\)"),
    ("topk-zero", "a top-k cut-off of 0", config_case("SASRecJPQ", topk=[0, 10]), ConfigError, r"topk must be a positive integer .*`0`"),
    ("valid-metric-topk", "valid metric at a cut-off not computed (KeyError after epoch 1 before)",
     config_case("SASRecJPQ", valid_metric="NDCG@20", topk=[10]), ConfigError,
     r"valid_metric='NDCG@20' is not computed .*ndcg@10"),
    ("valid-metric-name", "valid metric not among metrics", config_case("SASRecJPQ", valid_metric="AUC"),
     ConfigError, r"valid_metric='AUC' is not computed"),
    ("dataset-path", "a path as data set name (pasted into the log path before)",
     config_case("SASRecJPQ", dataset="../../../etc/passwd"), ConfigError,
     r"dataset='../../../etc/passwd' is not a data set name"),
    ("config-empty", "empty YAML file", _yaml_case("empty.yaml", "# nothing\n"), ConfigError,
     r"empty\.yaml' is empty"),
    ("config-malformed", "YAML syntax error", _yaml_case("bad.yaml", "pq_m: 4\nhidden_size: [16\n"), ConfigError,
     r"bad\.yaml' is not valid YAML at line 3"),
    ("config-tab", "YAML indented with a tab", _yaml_case("tab.yaml", "pq_m: 4\n\thidden_size: 16\n"), ConfigError,
     r"tab\.yaml' is not valid YAML at line 2.*spaces, not tabs"),
    ("config-list", "YAML whose top level is a list", _yaml_case("list.yaml", "- pq_m: 4\n"), ConfigError,
     r"list\.yaml' must hold 'key: value' lines"),
    ("config-folder", "a folder given as config file",
     lambda env: build_config("SASRecJPQ", "ml-100k", config_file_list=[str(env["tmp"])]), ConfigError,
     r"is a folder"),
    ("config-other-model", "a config file naming another model (ignored before)",
     _yaml_case("model.yaml", "model: gBERT4RecJPQ\n"), ConfigError,
     r"model\.yaml' sets model: gBERT4RecJPQ but this run's model is 'SASRecJPQ'"),
    ("resume-other-shape", "--resume with other shape settings (raw size mismatch before)", _resume_other_shape,
     CheckpointError, r"settings changed since it was written: pq_b: 16 -> 8"),
    ("checkpoint-recbole", "a stock RecBole checkpoint (torch advised weights_only=False before)",
     _stock_recbole_checkpoint, CheckpointError, r"recbole\.pth is not a recbole-pq checkpoint: it holds pickled"),
    ("checkpoint-folder", "a folder given as checkpoint", lambda env: load_checkpoint(env["tmp"]), CheckpointError,
     r"is a folder; give a \.pth file"),
    ("serve-k-string", "k given as a string", lambda env: _recommender(env).recommend([["1"]], k="5"), ConfigError,
     r"k='5' is not allowed: k must be an integer \(str given\)"),
    ("serve-k-bool", "k given as True (one item before)", lambda env: _recommender(env).recommend([["1"]], k=True),
     ConfigError, r"k=True is not allowed"),
    ("serve-flat-history", "one history not wrapped in a list (TypeError before)",
     lambda env: _recommender(env).recommend([242]), ConfigError, r"histories\[0\] is 242 \(int\).*recommend\(\[\["),
    ("serve-exclude-seen", "exclude_seen not a bool",
     lambda env: _recommender(env).recommend([["1"]], exclude_seen="no"), ConfigError,
     r"exclude_seen='no' must be True or False"),
    ("tune-grid-scalar", "grid over a number, not a list (failed inside Ray before)", tune_case({"pq_m": {"grid": 4}}),
     ConfigError, r"grid takes a non-empty list of values.*got 4"),
    ("tune-uniform-order", "uniform with low >= high", tune_case({"learning_rate": {"uniform": [0.1, 0.01]}}),
     ConfigError, r"uniform takes \[low, high\]"),
    ("tune-malformed", "tune file that is not valid YAML",
     lambda env: load_tune_file(_written(env, "t-bad.yaml", "search_space: {pq_m: [2\n")), ConfigError,
     r"Tune file .*t-bad\.yaml' is not valid YAML at line"),
    ("data-empty", "a user's .inter file that is empty", _user_file(""), DataFileError,
     r"mine\.inter is empty: line 1 must be a header"),
    ("data-header-only", "a header and no interactions", _user_file(HEADER), DataFileError,
     r"mine\.inter has a header but no interactions"),
    ("data-delimiter", "commas instead of tabs", _user_file("user_id:token,item_id:token,timestamp:float\n1,2,3\n"),
     DataFileError, r"mine\.inter line 1: columns must be separated by tabs, found ','"),
    ("data-no-types", "a header without :type", _user_file("user_id\titem_id\ttimestamp\n1\t2\t3\n"), DataFileError,
     r"mine\.inter line 1: column 'user_id' needs a type"),
    ("data-no-timestamp", "no timestamp column", _user_file("user_id:token\titem_id:token\n1\t2\n"), DataFileError,
     r"mine\.inter line 1: no column 'timestamp' \(sequential models order"),
    ("data-timestamp-text", "a timestamp that is not a number",
     _user_file(HEADER + "1\t2\t3\n1\t3\tyesterday\n"), DataFileError,
     r"mine\.inter line 3: timestamp 'yesterday' is not a number"),
    ("data-field-count", "a line with more fields than the header", _user_file(HEADER + "1\t2\t3\n1\t2\t3\t4\n"),
     DataFileError, r"mine\.inter: .*line 3.*header has 3"),
    ("qr-splits", "quotient-remainder codes with pq_m other than 2", model_case("SASRecJPQ", code_assignment="qr"),
     ConfigError, r"code_assignment='qr' needs pq_m=2 .*got pq_m=4"),
    ("qr-codes", "quotient-remainder codes with too few codes per split",
     model_case("SASRecJPQ", code_assignment="qr", pq_m=2, pq_b=4), ConfigError, r"needs pq_b >= ceil\(sqrt\("),
    ("pq-b-auto-text", "pq_b neither an integer nor auto", model_case("SASRecJPQ", pq_b="big"), ConfigError,
     r"pq_b=big must be an integer in \[2, .*or auto"),
    ("checkpoint-newer-format", "a checkpoint from a newer recbole-pq", _future_checkpoint, CheckpointError,
     r"future\.pth has format 99, newer than this recbole-pq reads"),
    ("neg-sampling", "unknown neg_sampling", model_case("SASRecJPQ", neg_sampling="batch"), ConfigError,
     r"neg_sampling='batch' is not supported; use one of \['sequence', 'position'\]"),
    ("pq-dense-head-negative", "pq_dense_head below 0", config_case("SASRecJPQ", pq_dense_head=-5), ConfigError,
     r"pq_dense_head=-5 must be an integer in \[0, the number of items\].*or auto"),
    ("pq-dense-head-large", "pq_dense_head above the catalogue", model_case("SASRecJPQ", pq_dense_head=10**6),
     ConfigError, r"pq_dense_head=1000000 must be an integer in \[0, \d+\]"),
    ("tune-resume-nothing", "--resume of a sweep folder Ray saved nothing in (crashed on tuner.pkl before)",
     lambda env: _sweep(env, "empty", True, True), ConfigError, r"no sweep to resume .*no state saved by Ray"),
]


@pytest.fixture(scope="module")
def env(ml1m_slice, tmp_path_factory):
    return {"data": ml1m_slice, "tmp": tmp_path_factory.mktemp("bad")}


@pytest.mark.parametrize("case_id,what,call,error,pattern", CASES, ids=[c[0] for c in CASES])
def test_bad_input(env, case_id, what, call, error, pattern):
    with pytest.raises(error) as caught:
        call(env)
    assert re.search(pattern, str(caught.value)), f"{case_id}: message '{caught.value}' lacks /{pattern}/"


def test_table_is_large_and_documented():
    assert len(CASES) >= 30
    doc = (PROJECT_ROOT / "docs" / "RELIABILITY.md").read_text()
    missing = [case_id for case_id, *_ in CASES if f"`{case_id}`" not in doc]
    assert not missing, f"docs/RELIABILITY.md lacks {missing}"


def test_determinism_same_seed_same_top10(ml1m_slice, tmp_path):
    tops = []
    for run in range(2):
        _, (train, valid, test), model, trainer = setup("SASRecJPQ", "ml-1m", config_dict={
            **TINY, "epochs": 2, "data_path": str(ml1m_slice), "checkpoint_dir": str(tmp_path / str(run))})
        trainer.fit(train, valid, saved=False)
        model.eval()
        with torch.no_grad():
            tops.append(model.full_sort_topk(next(iter(test))[0], 10)[1])
    assert torch.equal(tops[0], tops[1])
