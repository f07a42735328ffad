"""benchmarks/report.py: prune records paired with the fused records they were measured against; the
LISA paths table."""

import sys

import recbole_pq.data.paths

sys.path.insert(0, str(recbole_pq.data.paths.PROJECT_ROOT))
from benchmarks.report import lisa_paths_section, prune_model_check, prune_pairs  # noqa: E402


def _record(method, tables, dim, ms, **extra):
    return {"method": method, "tables": tables, "n_items": 10**6, "dim": dim, "codes": "uniform", "users": 16,
            "ms_per_user": ms, **extra}


def test_prune_pairs_match_tables_and_dim_and_prefer_the_per_user_ratio():
    records = [
        _record("pqtopk_fused", "trained", 64, 2.0),
        _record("prune", "trained", 64, 1.0),  # older run: no per-user ratio -> ratio of medians
        _record("pqtopk_fused", "trained", 128, 3.0),
        _record("prune", "trained", 128, 1.0, fused_over_prune=1.5),
        _record("prune", "random", 128, 1.0),  # no fused record at these settings: no pair
        {"method": "pqtopk_fused", "n_items": 10**6, "dim": 64, "batch": 1, "ms_per_user": 1.0},  # scoring.py's
    ]
    pairs = {(p["tables"], p["dim"]): (f["ms_per_user"], ratio) for p, f, ratio in prune_pairs(records)}
    assert pairs == {("trained", 64): (2.0, 2.0), ("trained", 128): (3.0, 1.5)}


def test_prune_model_check_reads_shares_and_ratios_from_the_records():
    note = "of 48 timed calls: 45 pruned (median {}% of the items scored), 1 gave up"
    records = [
        _record("pqtopk_fused", "trained", 64, 3.0),
        _record("prune", "trained", 64, 1.0, fused_over_prune=3.3, note=note.format("20.00")),
        {**_record("pqtopk_fused", "trained", 64, 9.0), "n_items": 10**7},
        {**_record("prune", "trained", 64, 1.0, note=note.format("12.00")), "n_items": 10**7},
    ]
    text = prune_model_check(records)
    assert "a median 20% of the items scored (d = 64, uniform codes) predicts 3.1x, measured 3.30x" in text
    assert "(12%-12%), hence 9.0-9.0x there." in text


def test_lisa_paths_table_gives_each_length_its_ratio():
    layer = [{"kind": "layer", "path": path, "length": length, "batch": 6400 // length, "B": 16, "W": 256, "dim": 64,
              "median_ms": ms} for length, path, ms in ((50, "histogram", 900.0), (50, "pairwise", 300.0),
                                                      (400, "histogram", 1000.0), (400, "pairwise", 2000.0))]
    model = [{"kind": "model", "path": path, "dataset": "video-games", "length": 50, "batch": 128, "B": 16, "W": 256,
              "dim": 64, "n_items": 101, "median_ms": ms} for path, ms in (("histogram", 1200.0), ("pairwise", 400.0))]
    lines = lisa_paths_section({"command": "c", "machine": "m", "records": layer + model})
    assert "| 50 | 900 | 300 | 3.00× |" in lines and "| 400 | 1000 | 2000 | 0.50× |" in lines
    assert any("histogram 1200 ms, pairwise 400 ms (3.00×)" in line and "100 items" in line for line in lines)


def _defaults_row(variant, seed, valid, test, excluded, model="SASRecJPQ", **overrides):
    return {"dataset": "video-games", "variant": variant, "model": model, "overrides": overrides, "seed": seed,
            "epochs": 10, "n_items": 23715, "pq_m": 8 if model == "SASRecJPQ" else None,
            "pq_b": 512 if model == "SASRecJPQ" else None, "code_assignment": "svd_pq" if model == "SASRecJPQ" else None,
            "item_table_mb": 0.5, "compression": 11.9, "dense_item_table_mb": 5.79, "valid_ndcg@10": valid,
            "test_ndcg@10": test, "test_ndcg@10_history_excluded": excluded, "commit": "abc1234"}


def test_seed_means_pick_the_default_on_mean_validation_over_complete_rows():
    from benchmarks.quality import seed_mean_lines

    records = [_defaults_row("dense", 1, 0.04, 0.036, 0.048, model="DenseSASRec"),
               _defaults_row("dense", 2, 0.042, 0.034, 0.046, model="DenseSASRec"),
               _defaults_row("pq", 1, 0.038, 0.031, 0.037), _defaults_row("pq", 2, 0.036, 0.033, 0.039),
               _defaults_row("pq-unique", 1, 0.039, 0.030, 0.036, unique_codes=True),
               _defaults_row("pq-unique", 2, 0.039, 0.030, 0.036, unique_codes=True),
               _defaults_row("one-seed", 1, 0.050, 0.040, 0.050)]  # best on validation, but one seed only
    text = "\n".join(seed_mean_lines({"records": records, "cpu": "test CPU"}))
    pq_row = next(line for line in text.splitlines() if line.startswith("| pq |"))
    assert "| 1, 2 | 0.0380 / 0.0360 | 0.0370 | 0.0320 (91%) | 0.0380 (81%)" in pq_row  # means; % of dense's means
    late = seed_mean_lines({"records": [_defaults_row("dense", 2, 0.04, 0.034, 0.046, model="DenseSASRec"),
                                        _defaults_row("late", 2, 0.030, 0.017, 0.023),
                                        _defaults_row("late", 3, 0.030, 0.020, 0.020)]})
    late_row = next(line for line in late if line.startswith("| late |"))
    assert "| 2, 3 | 0.0300 / 0.0300 | 0.0300 | 0.0185 (50%, seed 2) | 0.0215 (50%, seed 2) |" in late_row
    assert "svd_pq unique" in next(line for line in text.splitlines() if line.startswith("| pq-unique |"))
    assert "Best compressed row on mean validation NDCG@10 (every seed measured): `pq-unique`" in text
    assert "abc1234" in text and "seeds 1, 2" in text


def test_assignment_section_gives_each_size_its_seconds_and_error_shares():
    from benchmarks.report import assignment_section

    records = [{"n_items": 10000, "pq_b": 256, "seconds": {"svd": 0.4, "k_means": 10.5, "k_means_flat": 10.1,
                                                            "k_means_two_level": 8.2, "unique_codes": 2.4},
                "quantisation_error": {"auto": 50.0, "flat": 50.0, "two_level": 10.0}, "vector_energy": 200.0,
                "items_sharing_a_tuple": 4341},
               {"n_items": 10**6, "pq_b": 32768, "seconds": {"svd": 60.0, "k_means": 600.0, "unique_codes": 90.0},
                "quantisation_error": {"auto": 1.0}, "vector_energy": 10.0, "items_sharing_a_tuple": 5}]
    lines = assignment_section({"command": "python benchmarks/assignment.py", "cpu": "test CPU", "records": records})
    assert "| 10,000 | 256 | 0.4 | 10.5 | 10.1 | 8.2 | 25.0% | 25.0% | 5.0% | 4,341 | 2.4 |" in lines
    assert "| 1,000,000 | 32,768 | 60.0 | 600.0 |  |  | 10.0% |  |  | 5 | 90.0 |" in lines


def test_pareto_front_keeps_exactly_the_points_no_smaller_point_beats():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from benchmarks.pareto import front

    point = st.builds(lambda mb, ndcg: {"item_table_mb": mb, "ndcg@10": ndcg},
                      st.sampled_from([0.1, 0.3, 0.5, 1.0, 3.0]), st.floats(0.0, 0.3, allow_nan=False))

    @settings(max_examples=200, deadline=None)
    @given(st.lists(point, min_size=1, max_size=12))
    def check(points):
        on = front(points)
        ids = {id(p) for p in on}
        for p in points:
            beaten = any(q is not p and q["item_table_mb"] <= p["item_table_mb"] and q["ndcg@10"] >= p["ndcg@10"]
                         and (q["item_table_mb"], -q["ndcg@10"]) < (p["item_table_mb"], -p["ndcg@10"])
                         for q in points)
            assert (id(p) in ids) == (not beaten and p is next(q for q in sorted(points, key=lambda q: (
                q["item_table_mb"], -q["ndcg@10"])) if (q["item_table_mb"], q["ndcg@10"]) == (
                p["item_table_mb"], p["ndcg@10"])))
        assert [p["item_table_mb"] for p in on] == sorted(p["item_table_mb"] for p in on)
        assert all(a["ndcg@10"] < b["ndcg@10"] for a, b in zip(on, on[1:]))

    check()


def test_pareto_seed_means_use_the_seeds_dense_ran():
    from benchmarks.pareto import panels, seed_mean_points

    def row(variant, seed, value, model="SASRecJPQ"):
        mb = 5.79 if model == "DenseSASRec" else 0.5
        return {**_defaults_row(variant, seed, 0.0, 0.0, value, model=model), "hidden_size": 64, "item_table_mb": mb}

    points = seed_mean_points({"records": [row("dense", 1, 0.05, "DenseSASRec"), row("dense", 2, 0.07, "DenseSASRec"),
                                           row("pq", 1, 0.045), row("late", 3, 0.09)]})
    assert {p["label"] for p in points} == {"dense", "pq"}  # "late" shares no seed with dense
    pq = next(p for p in points if p["label"] == "pq")
    panels(points)
    assert pq["seeds"] == [1] and pq["share_of_dense"] == 0.9 and pq["on_front"]


def _quality_record(dataset, model, value, protocol="full_exclude_history", converged=True, compression=1.0, **extra):
    return {"dataset": dataset, "protocol": protocol, "model": model, "metric": "ndcg@10", "value": value,
            "converged": converged, "compression": compression, "item_table_mb": 3.0 / compression if compression else None, "epochs": 10,
            "steps": 480, "train_seconds": 3600.0, **extra}


def test_summary_targets_say_met_missed_or_not_converged():
    from benchmarks.quality import converged_table_lines, summary_target_lines

    records = [_quality_record("ml-1m", "SASRec", 0.18), _quality_record("ml-1m", "SASRecJPQ-svd_pq", 0.171, compression=11.0),
               _quality_record("ml-1m", "Pop", 0.018, compression=None, item_table_mb=None),
               _quality_record("ml-1m", "BERT4Rec", 0.08), _quality_record("ml-1m", "gBERT4Rec", 0.1, converged=False),
               _quality_record("video-games", "SASRec", 0.05),
               _quality_record("video-games", "SASRecJPQ-svd_pq", 0.049, compression=13.6)]
    pareto = {"points": [{"dataset": "ml-1m", "budget": "converged", "label": "SASRecJPQ-svd_pq", "kind": "compressed",
                          "share_of_dense": 0.95, "compression": 11.0}]}
    text = "\n".join(summary_target_lines(records, pareto))
    assert "0.1800 (met); 104% of gSASRec's 0.1726" in text
    assert "SASRecJPQ-svd_pq >= 95% of DenseSASRec with a >= 10× smaller item table: 95.0% at 11.0× (met)" in text
    assert "BERT4Rec >= 5× Pop's NDCG@10: 4.4× (**missed**)" in text
    assert "gBERT4Rec >= 5× Pop's NDCG@10: 5.6× (not yet converged)" in text
    assert "gBERT4RecJPQ >= 5× Pop's NDCG@10: not measured yet" in text
    assert "Video Games SASRecJPQ-svd_pq >= DenseSASRec: 98.0% of dense at 13.6× (**missed**)" in text
    assert "none among the points measured (**missed** so far" in text
    table = "\n".join(converged_table_lines("ml-1m", "full_exclude_history", [r for r in records if r["dataset"] == "ml-1m"]))
    assert "| SASRecJPQ-svd_pq | 0.1710 | - | - | 95% of SASRec | 9.5× | 0.273 (11.0×) | yes | 10 | 480 | 1.0 |" in table
    assert "| gBERT4Rec | 0.1000 | - | - |  | 5.6× | 3 (1.0×) | no (epoch cap) |" in table
    assert table.index("| SASRec |") < table.index("| Pop |")  # Pop last


def test_popularity_records_cover_both_protocols():
    from benchmarks.popularity import pop_records

    metrics = {"ndcg@10": 0.02, "recall@10": 0.04, "hit@10": 0.04}
    lower = {"ndcg@10": 0.01, "recall@10": 0.02, "hit@10": 0.02}
    records = pop_records("ml-1m", {"valid": metrics, "test": metrics}, {"valid": lower, "test": lower}, 1.0)
    by_key = {(r["protocol"], r["metric"]): r["value"] for r in records}
    assert by_key == {("full_exclude_history", m): v for m, v in metrics.items()} | {("full", m): v for m, v in lower.items()}
    assert all(r["model"] == "Pop" and r["converged"] and r["item_table_mb"] is None for r in records)


def test_save_records_replaces_the_rows_of_the_same_model_and_keeps_the_rest(tmp_path):
    import json

    from benchmarks.quality import save_records

    def rows(model, protocol, value):
        return [{"dataset": "ml-1m", "protocol": protocol, "model": model, "metric": m, "value": value}
                for m in ("ndcg@10", "recall@10")]

    path = tmp_path / "docs" / "quality.json"  # folders made as needed
    save_records(path, rows("SASRec", "full", 0.1) + rows("Pop", "full", 0.01))
    save_records(path, rows("SASRec", "full", 0.2) + rows("SASRec", "full_exclude_history", 0.3))
    saved = {(r["model"], r["protocol"], r["metric"]): r["value"] for r in json.loads(path.read_text())}
    assert len(saved) == 6 and len(json.loads(path.read_text())) == 6
    assert saved[("SASRec", "full", "ndcg@10")] == 0.2 and saved[("Pop", "full", "recall@10")] == 0.01
    assert saved[("SASRec", "full_exclude_history", "ndcg@10")] == 0.3


def test_pareto_takes_converged_probes_with_their_sizes_and_leaves_fixed_budget_probes_out():
    from benchmarks.pareto import converged_points

    def record(model, settings, converged, mb, value, metric="ndcg@10", eval_step=1):
        return {"dataset": "video-games", "protocol": "full_exclude_history", "model": model, "metric": metric,
                "value": value, "converged": converged, "settings": settings, "item_table_mb": mb,
                "compression": 1.0 if model == "SASRec" else 11.3, "budget": {"eval_step": eval_step}}

    probes = [record("SASRecJPQ-svd_pq", {"code_assignment": "svd_pq", "pq_m": 16, "hidden_size": 128}, True, 0.51, 0.06),
              record("SASRecJPQ-svd_pq", {"code_assignment": "svd_pq", "pq_m": 16, "hidden_size": 128}, True, 0.51, 0.1,
                     metric="recall@10"),
              record("SASRec", {"hidden_size": 128}, True, 11.6, 0.058),
              record("SASRecJPQ-svd", {"pq_m": 8}, False, 0.25, 0.03),  # a 10-epoch probe: not on a converged panel
              # nor one that RecBole's early stop ended within its fixed budget (validation every 2 epochs)
              record("SASRecJPQ-svd", {"pq_m": 4}, True, 0.2, 0.03, eval_step=2),
              # another training recipe (BCE, one negative) at dense's size: not a point of the size front
              record("SASRec", {"loss_type": "BCE", "neg_samples": 1, "neg_sampling": "position"}, True, 5.8, 0.04)]
    points = converged_points(probes, probes=True)
    assert [(p["label"], p["kind"], p["ndcg@10"]) for p in points] == [
        ("SASRecJPQ-svd_pq d=128 m=16", "compressed", 0.06), ("SASRec d=128", "dense", 0.058)]
    assert converged_points(probes[:1])[0]["label"] == "SASRecJPQ-svd_pq"  # a table row keeps its name


def test_pareto_reference_is_the_dense_row_validation_prefers_and_sizes_count_against_it():
    from benchmarks.pareto import panels
    from benchmarks.quality import summary_target_lines

    def point(label, kind, mb, test, valid):
        return {"dataset": "video-games", "budget": "converged", "label": label, "kind": kind, "item_table_mb": mb,
                "compression": 1.0 if kind == "dense" else 24.0, "ndcg@10": test, "valid_ndcg@10": valid}

    wide = point("SASRec d=128", "dense", 11.6, 0.070, 0.072)  # best on test, not on validation
    chosen = point("SASRec", "dense", 5.8, 0.060, 0.075)
    codes = point("SASRecJPQ d=128", "compressed", 0.58, 0.059, 0.070)
    panels([wide, chosen, codes])
    assert codes["dense_reference"] == "SASRec" and codes["smaller_than_dense"] == 10.0
    assert codes["share_of_dense"] == round(0.059 / 0.060, 4) and wide["smaller_than_dense"] == 0.5
    text = "\n".join(summary_target_lines([], {"points": [wide, chosen, codes]}))
    assert "SASRecJPQ d=128 (video-games, converged: 98% at 10.0×) (met)" in text
    codes["item_table_mb"] = 0.6  # 9.7x: not >= 10x smaller than the reference, whatever its own compression says
    panels([wide, chosen, codes])
    assert "none among the points measured" in "\n".join(summary_target_lines([], {"points": [wide, chosen, codes]}))


def test_probe_table_says_which_probes_were_trained_to_convergence():
    from benchmarks.quality import selection_lines

    def probe(settings, converged, eval_step, epochs):
        return {"dataset": "video-games", "protocol": "full_exclude_history", "model": "SASRec", "metric": "ndcg@10",
                "value": 0.05, "converged": converged, "epochs": epochs, "compression": 1.0,
                "settings": {"eval_exclude_history": True, **settings}, "valid": {"ndcg@10": 0.06},
                "budget": {"epochs": 400 if eval_step == 1 else 10, "eval_step": eval_step}}

    stopped = {**probe({"hidden_size": 16}, False, 1, 145), "stopped_by": "time limit"}
    text = "\n".join(selection_lines([probe({"hidden_size": 128}, True, 1, 29), probe({"hidden_size": 32}, True, 2, 8),
                                      stopped]))
    assert "| video-games | SASRec | hidden_size=128 | converged (29 epochs) | 0.0600 |" in text
    assert "| video-games | SASRec | hidden_size=32 | 10 epochs | 0.0600 |" in text
    assert "| video-games | SASRec | hidden_size=16 | time limit (145 epochs) | 0.0600 |" in text
