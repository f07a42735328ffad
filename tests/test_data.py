"""The prepare script on a slice of the shared ML-1M file, and seq2seq training rows."""

import numpy as np
import pytest
import torch

from recbole_pq.data.paths import SHARED_DATASETS
from recbole_pq.data.prepare import main as prepare_main
from recbole_pq.data.prepare import prepare, read_user_item_lines
from recbole_pq.data.seq2seq import target_list_field
from recbole_pq.pipeline import build_config, load_data


def _source_sequences(n_users):
    users, items, timestamps = read_user_item_lines(SHARED_DATASETS / "ml-1m" / "ml-1m.txt")
    assert timestamps is None  # the line order is the time order
    keep = np.unique(users)[:n_users]
    return {u: items[users == u].tolist() for u in keep}


def test_prepare_writes_atomic_file_in_source_order(ml1m_slice):
    path = ml1m_slice / "ml-1m" / "ml-1m.inter"
    lines = path.read_text().splitlines()
    assert lines[0] == "user_id:token\titem_id:token\ttimestamp:float"
    rows = [tuple(int(float(x)) for x in line.split("\t")) for line in lines[1:]]
    sequences = _source_sequences(60)
    assert len(rows) == sum(len(s) for s in sequences.values())
    assert [r[2] for r in rows] == list(range(len(rows)))  # timestamps = line order
    by_user = {}
    for user, item, _ in rows:
        by_user.setdefault(user, []).append(item)
    assert by_user == sequences


def test_prepare_missing_source_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match="nowhere.txt"):
        prepare("ml-1m", source=tmp_path / "nowhere.txt", out_root=tmp_path)
    assert prepare_main(["ml-1m", "--source", str(tmp_path / "nowhere.txt"), "--out", str(tmp_path)]) == 1
    assert "nowhere.txt" in capsys.readouterr().err


def test_prepare_rejects_malformed_lines(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("1 2\n1 x\n")
    with pytest.raises(ValueError, match="bad.txt"):
        prepare("ml-1m", source=bad, out_root=tmp_path)


def test_seq2seq_rows_are_next_item_targets(ml1m_slice, fast_settings):
    config = build_config("SASRecJPQ", "ml-1m", config_dict={**fast_settings, "data_path": str(ml1m_slice)})
    train, valid, test = load_data(config)
    feat = train._dataset.inter_feat
    ds = train._dataset
    seq, lengths = feat["item_id_list"], feat["item_length"]
    targets = feat[target_list_field(config)]
    sequences = _source_sequences(60)
    L = config["MAX_ITEM_LIST_LENGTH"]
    assert len(feat) == len(sequences)  # one row per user
    for row in range(len(feat)):
        user = int(ds.id2token("user_id", feat["user_id"][row]))
        n = int(lengths[row])
        tokens = [int(t) for t in ds.id2token("item_id", seq[row, :n])]
        next_tokens = [int(t) for t in ds.id2token("item_id", targets[row, :n])]
        training_part = sequences[user][:-2]  # the last two items are valid and test targets
        assert tokens == training_part[:-1][-L:]
        assert next_tokens == training_part[1:][-L:]
        assert torch.all(seq[row, n:] == 0) and torch.all(targets[row, n:] == 0)  # padding masked


def test_seq2seq_keeps_recbole_eval_rows(ml1m_slice, fast_settings):
    settings = {**fast_settings, "data_path": str(ml1m_slice)}
    _, valid_s2s, test_s2s = load_data(build_config("SASRecJPQ", "ml-1m", config_dict=settings))
    _, valid_pre, test_pre = load_data(build_config("SASRecJPQ", "ml-1m", config_dict={**settings, "train_mode": "prefix"}))
    for a, b in ((valid_s2s, valid_pre), (test_s2s, test_pre)):
        for field in ("item_id", "item_id_list", "item_length"):
            assert torch.equal(a._dataset.inter_feat[field], b._dataset.inter_feat[field])


RAW_FILES = {
    "ml-1m-raw": ("ratings.dat", "2::20::5::300\n1::10::4::200\n1::11::3::100\n2::21::1::100\n"),
    "gowalla": ("loc-gowalla_totalCheckins.txt",
                "7\t2010-10-19T23:55:27Z\t30.2\t-97.7\t22847\n7\t2010-10-18T22:17:43Z\t30.2\t-97.7\t420315\n"
                "3\t2010-10-17T23:42:03Z\t30.2\t-97.7\t316637\n"),
    "booking": ("train_set.csv",
                "user_id,checkin,checkout,city_id,device_class,affiliate_id,booker_country,hotel_country,utrip_id\n"
                "1,2016-04-12,2016-04-13,8183,desktop,7168,Elbonia,Gondal,1_1\n"
                "1,2016-04-09,2016-04-11,15626,desktop,7168,Elbonia,Gondal,1_1\n"
                "2,2016-01-01,2016-01-02,999,mobile,1,Elbonia,Gondal,2_1\n"),
}
EXPECTED_ORDER = {"ml-1m-raw": ["1 11", "1 10", "2 21", "2 20"],
                  "gowalla": ["3 316637", "7 420315", "7 22847"],
                  "booking": ["1_1 15626", "1_1 8183", "2_1 999"]}


@pytest.mark.parametrize("name", sorted(RAW_FILES))
def test_raw_converters_keep_real_time_order(name, tmp_path):
    from recbole_pq.data.prepare import prepare

    file_name, text = RAW_FILES[name]
    source = tmp_path / file_name
    source.write_text(text)
    out = prepare(name, source=source, out_root=tmp_path / "out")
    lines = out.read_text().splitlines()
    assert lines[0] == "user_id:token\titem_id:token\ttimestamp:float"
    rows = [line.split("\t") for line in lines[1:]]
    assert [f"{u} {i}" for u, i, _ in rows] == EXPECTED_ORDER[name]
    times = [int(t) for _, _, t in rows]
    assert all(t > 0 for t in times)


@pytest.mark.parametrize("name", sorted(RAW_FILES))
def test_raw_converter_says_where_to_put_a_missing_file(name, tmp_path):
    from recbole_pq.data.prepare import prepare

    with pytest.raises(FileNotFoundError, match=f"not shipped.*{RAW_FILES[name][0].split('.')[0]}"):
        prepare(name, source=tmp_path / "absent" / RAW_FILES[name][0], out_root=tmp_path)
