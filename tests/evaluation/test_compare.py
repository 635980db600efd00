import csv
import json

import pytest

from keras_ssl.evaluation import compare as C


def fake_run(root, name, acc, scratch=(0.5, 0.7), counts=(100, 1000), seeds=2, pretext=None, summary=True):
    d = root / name
    d.mkdir()
    rows = []
    for n, a, s in zip(counts, acc, scratch):
        vals = [a - 0.01, a + 0.01][:seeds]
        rows.append({"method": "rotation", "protocol": "frozen_mlp", "labels": n,
                     "mean": sum(vals) / len(vals), "std": 0.01 if seeds > 1 else 0.0, "values": vals})
        rows.append({"method": "rotation", "protocol": "knn", "labels": n, "mean": a - 0.1, "std": 0.0,
                     "values": [a - 0.1]})
        rows.append({"method": "scratch", "protocol": "scratch", "labels": n, "mean": s, "std": 0.0,
                     "values": [s] * seeds})
    (d / "results.json").write_text(json.dumps({
        "config": name, "rows": rows, "protocol": {"label_counts": list(counts), "scratch_steps": 4000},
        "pretrain": {"steps": 2500, "batch_size": 125, "encoder": "bcnn", "method": "classify"}}))
    if summary:
        (d / "summary.json").write_text(json.dumps({"pretrain": {"seconds": 12.0, "final": {
            "loss": 0.5, "permutation_acc": 0.75, "examples_per_s": 1000.0, "learning_rate": 0.01}}}))
    if pretext:
        (d / "pretext.json").write_text(json.dumps(pretext))
    return d


def test_table_markdown_csv_and_png(tmp_path):
    a = fake_run(tmp_path, "mnist_a", (0.8, 0.9), pretext={"permutations": 10, "mean_hamming": 8.8})
    b = fake_run(tmp_path, "mnist_b", (0.6, 0.95), summary=False)
    out = tmp_path / "cmp"
    res = C.compare([a, b], out, log=lambda *x: None)
    md = (out / "comparison.md").read_text()
    assert "| run | training | 100 labels | 1000 labels |" in md
    assert "| mnist_a | 2.5K x 125 | 0.800 ± 0.010 | 0.900 ± 0.010 |" in md      # pretraining steps x batch
    assert ("| from scratch | 4K steps, all layers | 0.500 ± 0.000 | 0.700 ± 0.000 |" in md
            and md.count("from scratch") == 3)                                   # + thesis row, paired table
    assert "| thesis: egomotion | as published | 0.75 | 0.92 |" in md
    assert "permutation_acc 0.750" in md and "mean_hamming 8.8" in md
    rows = list(csv.DictReader(open(out / "comparison.csv")))
    assert [r["run"] for r in rows][:3] == ["mnist_a", "mnist_b", "from scratch"]
    assert rows[0]["100_mean"] == "0.8000" and rows[0]["100_std"] == "0.0100" and rows[0]["100_n"] == "2"
    assert (out / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert res["table"]["counts"] == [100, 1000]


def test_random_encoder_baseline_gets_its_own_row(tmp_path):
    a = fake_run(tmp_path, "a", (0.8, 0.9))
    res = json.loads((a / "results.json").read_text())
    res["rows"] += [{"method": "random", "protocol": "random_frozen", "labels": n, "mean": m, "std": 0.0,
                     "values": [m, m]} for n, m in ((100, 0.3), (1000, 0.6))]
    (a / "results.json").write_text(json.dumps(res))
    b = fake_run(tmp_path, "b", (0.6, 0.9))           # no random baseline: nothing to add
    table = C.compare([a, b], tmp_path / "o", thesis=False)["table"]
    names = [r["name"] for r in table["rows"]]
    assert names == ["a", "b", "from scratch", "random encoder, frozen"]
    assert table["rows"][3]["cells"][1000]["mean"] == pytest.approx(0.6)
    assert [r["training"] for r in table["rows"]] == ["2.5K x 125", "2.5K x 125", "4K steps, all layers",
                                                      "none (random init)"]


def test_sort_orders_runs_by_their_mean_at_a_label_count(tmp_path, capsys):
    runs = [fake_run(tmp_path, n, acc) for n, acc in (("low", (0.6, 0.95)), ("high", (0.8, 0.9)))]
    names = lambda t: [r["name"] for r in t["rows"]]                               # noqa: E731
    assert names(C.compare(runs, tmp_path / "o", thesis=False)["table"])[:2] == ["low", "high"]  # as given
    assert names(C.compare(runs, tmp_path / "o", thesis=False, sort_by=100)["table"]) == [
        "high", "low", "from scratch"]                                             # baselines stay last
    assert names(C.compare(runs, tmp_path / "o", thesis=False, sort_by=1000)["table"])[:2] == ["low", "high"]
    assert C.main([str(r) for r in runs] + ["--sort", "300", "--out", str(tmp_path / "o")]) == 2
    assert "--sort 300: no run measured 300 labels (measured: 100, 1000)" in capsys.readouterr().err


def test_training_column_states_each_rows_budget(tmp_path):
    a = fake_run(tmp_path, "a", (0.8, 0.9))
    res = json.loads((a / "results.json").read_text())
    res["pretrain"].update(steps=20000, batch_size=800)
    res["protocol"]["scratch_steps"] = 40000                   # the thesis's budget, read from the run
    (a / "results.json").write_text(json.dumps(res))
    table = C.compare([a], tmp_path / "o", thesis=False)["table"]
    assert [r["training"] for r in table["rows"]] == ["20K x 800", "40K steps, all layers"]
    b = fake_run(tmp_path, "b", (0.9, 0.95), scratch=(0.6, 0.8))     # another encoder: each row names its own
    res = json.loads((b / "results.json").read_text())
    res["pretrain"]["encoder"] = "convnet"
    (b / "results.json").write_text(json.dumps(res))
    table = C.compare([a, b], tmp_path / "o", thesis=False)["table"]
    assert [r["training"] for r in table["rows"]][:2] == ["20K x 800, bcnn", "2.5K x 125, convnet"]
    # The two runs' baselines differ because their encoders do: each row named by its encoder.
    assert [r["name"] for r in table["rows"]][2:] == ["from scratch [bcnn]", "from scratch [convnet]"]
    assert (tmp_path / "o" / "comparison.png").is_file()


def test_different_scratch_numbers_get_a_row_each_and_protocol_choice(tmp_path):
    a = fake_run(tmp_path, "a", (0.8, 0.9), scratch=(0.5, 0.7))
    b = fake_run(tmp_path, "b", (0.6, 0.9), scratch=(0.4, 0.7))
    table = C.compare([a, b], tmp_path / "o", protocol="knn", thesis=False)["table"]
    names = [r["name"] for r in table["rows"]]
    assert names == ["a", "b", "from scratch [a]", "from scratch [b]"]
    assert table["rows"][0]["cells"][100]["mean"] == pytest.approx(0.7)
    with pytest.raises(C.CompareError, match="no 'linear:conv9' rows"):
        C.compare([a], tmp_path / "o", protocol="linear:conv9")


def test_clear_error_for_a_run_without_results(tmp_path, capsys):
    good = fake_run(tmp_path, "good", (0.8, 0.9))
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    assert C.main([str(good), str(unfinished), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "unfinished: no results.json" in err
    assert C.main([str(good), str(unfinished), "--skip-missing", "--out", str(tmp_path / "o")]) == 0
    assert "| good |" in capsys.readouterr().out
    assert C.main([str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    (unfinished / "results.json").write_text("{not json")
    with pytest.raises(C.CompareError, match="invalid JSON"):
        C.load_run(unfinished)


def _rows(protocol, by_count):
    return [{"method": protocol, "protocol": protocol, "labels": n, "mean": sum(v) / len(v), "std": 0.0,
             "values": v} for n, v in by_count.items()]


#: What identifies the labeled subsets in a results.json's protocol (keras_ssl/evaluation/pairing.py).
IDENTITY = {"dataset": "mnist", "eval_dataset": "mnist", "validation_seed": 0, "validation_images": 5000,
            "labeled_pool": 55000, "split": "test", "test_images": 10000}


def paired_run(root, name, seeds, frozen, scratch=None, file="results.json", **protocol):
    """A run directory whose results.json (``file``) holds ``frozen`` (label count -> values
    per seed) and ``scratch`` rows; its protocol: :data:`IDENTITY` updated by ``protocol``
    (a value None: the key left out, as in runs made before it was recorded)."""
    d = root / name
    d.mkdir(exist_ok=True)
    proto = {k: v for k, v in {**IDENTITY, **protocol, "seeds": seeds}.items() if v is not None}
    r = _rows("frozen_mlp", frozen) + (_rows("scratch", scratch) if scratch else [])
    (d / file).write_text(json.dumps({"config": name, "rows": r, "protocol": proto,
                                      "split": proto.get("split", "test")}))
    return d


def test_paired_difference_against_from_scratch_seed_by_seed(tmp_path):
    base = paired_run(tmp_path, "main", [0, 1, 2], {100: [0.80, 0.90, 0.70]}, scratch={100: [0.78, 0.85, 0.72]})
    ten = paired_run(tmp_path, "ten", [0, 1] + list(range(10, 18)), {100: [0.79, 0.86] + [0.5] * 8})  # seeds 0, 1
    other_pool = paired_run(tmp_path, "other", [0, 1, 2], {100: [0.9, 0.9, 0.9]}, labeled_pool=100)
    res = C.compare([base, ten, other_pool], tmp_path / "o", thesis=False)
    paired = {r["name"]: r["cells"][100] for r in res["paired"]}
    assert set(paired) == {"main", "ten"}                                 # a different pool is not paired
    assert [r["baseline"] for r in res["paired"]] == [None, "main"]       # its own; main's
    main = paired["main"]                                                 # d = +0.02, +0.05, -0.02
    assert main["n"] == 3 and main["wins"] == 2
    assert main["diff"] == pytest.approx(0.05 / 3)
    assert main["se"] == pytest.approx(((0.02 - 0.05 / 3) ** 2 + (0.05 - 0.05 / 3) ** 2
                                        + (-0.02 - 0.05 / 3) ** 2) ** 0.5 / (2 * 3) ** 0.5)
    assert paired["ten"]["n"] == 2 and paired["ten"]["diff"] == pytest.approx(0.01)
    md = res["markdown"]
    assert "## Against from scratch, seed by seed (test accuracy)" in md and "| main | +0.017 ± 0.020 (2/3) |" in md
    assert "| ten (vs main) | +0.010 ± 0.000 (2/2) |" in md
    assert res["refused"] == ["other: not paired with from scratch of main: labeled_pool differs: "
                              "100 in other, 55000 in main"]
    assert md.endswith("Not paired (the labeled subsets are not provably the same, or the encoders differ):\n\n- "
                       + res["refused"][0] + "\n")


def test_another_runs_baseline_is_borrowed_only_for_the_same_encoder(tmp_path):
    base = paired_run(tmp_path, "main", [0, 1], {100: [0.80, 0.90]}, scratch={100: [0.78, 0.85]})
    same = paired_run(tmp_path, "same", [0, 1], {100: [0.85, 0.95]})
    other = paired_run(tmp_path, "wide", [0, 1], {100: [0.95, 0.97]})
    for d, encoder in ((base, "bcnn"), (same, "bcnn"), (other, "convnet")):
        res = json.loads((d / "results.json").read_text())
        res["pretrain"] = {"steps": 10, "batch_size": 8, "encoder": encoder}
        (d / "results.json").write_text(json.dumps(res))
    res = C.compare([base, same, other], tmp_path / "o", thesis=False)
    assert [(r["name"], r["baseline"]) for r in res["paired"]] == [("main", None), ("same", "main")]
    assert res["refused"] == ["wide: not paired with from scratch of main: encoder differs: "
                              "'convnet' in wide, 'bcnn' in main"]


def test_the_same_subset_identity_pairs():
    a = {**IDENTITY, "seeds": [0, 1, 2], "head_steps": 4000}
    b = {**IDENTITY, "dataset": "tfds:other", "seeds": [2, 3], "head_steps": 10}   # pretraining, eval settings
    assert C.subset_identity(a) == C.subset_identity(b) == {k: v for k, v in IDENTITY.items() if k != "dataset"}
    assert C.pairing_refusal(a, b) is None
    assert C.pairing_refusal(a, {**b, "seeds": [5]}, ("a", "b")) == (
        "no seed in common: seeds [0, 1, 2] in a, [5] in b")


@pytest.mark.parametrize("key, other", [("eval_dataset", "tfds:svhn_cropped"), ("validation_seed", 1),
                                        ("validation_images", 1000), ("labeled_pool", 59000),
                                        ("split", "validation"), ("test_images", 200)])
def test_each_identity_field_refuses(key, other):
    why = C.pairing_refusal(IDENTITY, {**IDENTITY, key: other}, ("a", "b"))
    assert why == f"{key} differs: {IDENTITY[key]!r} in a, {other!r} in b"


def test_a_differing_validation_seed_refuses(tmp_path, capsys):
    base = paired_run(tmp_path, "main", [0, 1], {100: [0.8, 0.9]}, scratch={100: [0.7, 0.8]})
    seven = paired_run(tmp_path, "seven", [0, 1], {100: [0.8, 0.9]}, validation_seed=7)
    assert C.main([str(base), str(seven), "--out", str(tmp_path / "o"), "--no-thesis"]) == 0
    line = "seven: not paired with from scratch of main: validation_seed differs: 7 in seven, 0 in main"
    assert line in capsys.readouterr().out                                   # printed
    md = (tmp_path / "o" / "comparison.md").read_text()
    assert f"- {line}" in md and "| seven" not in md.split("## Against from scratch")[1]
    assert md.index("| main | +0.100 ± 0.000 (2/2) |") < md.index(line)    # under the paired table


def test_a_run_made_before_the_identity_was_recorded_refuses(tmp_path):
    base = paired_run(tmp_path, "main", [0, 1], {100: [0.8, 0.9]}, scratch={100: [0.7, 0.8]})
    old = paired_run(tmp_path, "old", [0, 1], {100: [0.8, 0.9]}, validation_seed=None, eval_dataset=None,
                     dataset=None, split=None, test_images=None)
    res = C.compare([base, old], tmp_path / "o", thesis=False)
    assert [r["name"] for r in res["paired"]] == ["main"]
    assert res["refused"] == ["old: not paired with from scratch of main: old's results.json made before "
                              "the protocol recorded validation_seed; rerun its evaluation"]
    # an old run with its own from-scratch rows is still paired with them: one evaluation drew both
    own = paired_run(tmp_path, "own", [0, 1], {100: [0.8, 0.9]}, scratch={100: [0.7, 0.7]}, validation_seed=None)
    res = C.compare([own], tmp_path / "o", thesis=False)
    assert res["refused"] == [] and res["paired"][0]["cells"][100]["diff"] == pytest.approx(0.15)


def test_disagreeing_baselines_are_not_paired(tmp_path):
    a = paired_run(tmp_path, "a", [0], {100: [0.8]}, scratch={100: [0.7]})
    b = paired_run(tmp_path, "b", [0], {100: [0.8]}, scratch={100: [0.6]})
    c = paired_run(tmp_path, "c", [0], {100: [0.9]})
    res = C.compare([a, b, c], tmp_path / "o", thesis=False)
    assert [r["name"] for r in res["paired"]] == ["a", "b"]
    assert res["refused"] == ["c: not paired: the from scratch rows of a, b differ on the same subsets "
                              "(another encoder or budget); compare them by hand"]


def test_split_validation_reads_results_validation(tmp_path, capsys):
    d = paired_run(tmp_path, "run", [0, 1], {100: [0.6, 0.7]}, scratch={100: [0.5, 0.5]})        # test
    paired_run(tmp_path, "run", [0, 1], {100: [0.9, 0.95]}, scratch={100: [0.8, 0.8]},
               file="results_validation.json", split="validation")
    out = tmp_path / "o"
    assert C.main([str(d), "--split", "validation", "--out", str(out), "--no-thesis"]) == 0
    md = (out / "comparison.md").read_text()
    assert md.startswith("## Few-label validation accuracy\n") and "results_validation.json" in md
    assert "| run | - | 0.925 ± 0.000 |" in md                              # the validation numbers
    assert "## Against from scratch, seed by seed (validation accuracy)" in md and "| run | +0.125" in md
    res = C.compare([d], out, thesis=False)                                  # default: the test split
    assert res["markdown"].startswith("## Few-label test accuracy\n")
    assert res["table"]["rows"][0]["cells"][100]["mean"] == pytest.approx(0.65)
    missing = paired_run(tmp_path, "testonly", [0], {100: [0.6]})
    assert C.main([str(missing), "--split", "validation", "--out", str(out)]) == 2
    assert "testonly: no results_validation.json" in capsys.readouterr().err
    assert C.main([str(d), str(missing), "--split", "validation", "--skip-missing", "--out", str(out)]) == 0


def test_kept_records_regenerate_the_same_table(tmp_path, capsys):
    """--keep copies what the comparison reads and nothing else; the table made from the
    records is the table made from the run directories."""
    a = fake_run(tmp_path, "mnist_a", (0.8, 0.9), pretext={"permutations": 10})
    b = fake_run(tmp_path, "mnist_b", (0.6, 0.95), summary=False)
    (a / "config.json").write_text(json.dumps({"name": "mnist_a"}))
    (a / "checkpoints").mkdir()
    (a / "encoder.keras").write_bytes(b"weights")
    records = tmp_path / "records"
    (records / "mnist_b").mkdir(parents=True)
    (records / "mnist_b" / "summary.json").write_text("{}")   # stale: b's new record has none
    assert C.main([str(a), str(b), "--keep", str(records)]) == 0
    assert sorted(p.name for p in (records / "mnist_a").iterdir()) == [
        "config.json", "pretext.json", "results.json", "summary.json"]
    assert sorted(p.name for p in (records / "mnist_b").iterdir()) == ["results.json"]
    from_runs = C.compare([a, b], tmp_path / "c1", log=lambda *x: None)["markdown"]
    from_records = C.compare([records / "mnist_a", records / "mnist_b"], tmp_path / "c2",
                             log=lambda *x: None)["markdown"]
    assert from_records == from_runs


def test_keep_refuses_an_unfinished_run_before_writing(tmp_path, capsys):
    a = fake_run(tmp_path, "mnist_a", (0.8, 0.9))
    unfinished = tmp_path / "mnist_u"
    unfinished.mkdir()
    (unfinished / "config.json").write_text("{}")
    assert C.main([str(a), str(unfinished), "--keep", str(tmp_path / "records")]) == 2
    assert "mnist_u: no results.json or results_validation.json" in capsys.readouterr().err
    assert not (tmp_path / "records").exists()
