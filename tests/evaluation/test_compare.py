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
        "config": name, "rows": rows, "protocol": {"label_counts": list(counts)},
        "pretrain": {"steps": 100, "batch_size": 125, "encoder": "bcnn", "method": "classify"}}))
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
    assert "| 100 labels | 1000 labels |" in md
    assert "| mnist_a | 0.800 ± 0.010 | 0.900 ± 0.010 |" in md
    assert "| from scratch | 0.500 ± 0.000 | 0.700 ± 0.000 |" in md and md.count("from scratch") == 3   # + thesis row, paired table
    assert "| thesis: egomotion | 0.75 | 0.92 |" in md
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


def test_paired_difference_against_from_scratch_seed_by_seed(tmp_path):
    def rows(protocol, by_count):
        return [{"method": protocol, "protocol": protocol, "labels": n, "mean": sum(v) / len(v), "std": 0.0,
                 "values": v} for n, v in by_count.items()]

    def run(name, seeds, frozen, scratch=None, pool=55000):
        d = tmp_path / name
        d.mkdir()
        r = rows("frozen_mlp", frozen) + (rows("scratch", scratch) if scratch else [])
        (d / "results.json").write_text(json.dumps({"config": name, "rows": r, "protocol": {
            "seeds": seeds, "labeled_pool": pool, "validation_images": 5000}}))
        return d

    base = run("main", [0, 1, 2], {100: [0.80, 0.90, 0.70]}, scratch={100: [0.78, 0.85, 0.72]})
    ten = run("ten", [0, 1] + list(range(10, 18)), {100: [0.79, 0.86] + [0.5] * 8})   # shares seeds 0, 1
    other_pool = run("other", [0, 1, 2], {100: [0.9, 0.9, 0.9]}, pool=100)
    res = C.compare([base, ten, other_pool], tmp_path / "o", thesis=False)
    paired = {r["name"]: r["cells"][100] for r in res["paired"]}
    assert set(paired) == {"main", "ten"}                                 # a different pool is not paired
    main = paired["main"]                                                 # d = +0.02, +0.05, -0.02
    assert main["n"] == 3 and main["wins"] == 2
    assert main["diff"] == pytest.approx(0.05 / 3)
    assert main["se"] == pytest.approx(((0.02 - 0.05 / 3) ** 2 + (0.05 - 0.05 / 3) ** 2
                                        + (-0.02 - 0.05 / 3) ** 2) ** 0.5 / (2 * 3) ** 0.5)
    assert paired["ten"]["n"] == 2 and paired["ten"]["diff"] == pytest.approx(0.01)
    md = res["markdown"]
    assert "## Against from scratch, seed by seed" in md and "| main | +0.017 ± 0.020 (2/3) |" in md
