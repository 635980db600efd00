"""python -m keras_ssl.select: variants scored on the validation split only, the
criterion decided by the file, the table that records the choice."""
import json
import subprocess
import sys

import pytest

from keras_ssl.config import ConfigError
from keras_ssl.selection import load_selection
from keras_ssl.selection.table import SelectionError, decide, score, selection_markdown
from support import ROOT, SUBPROCESS_ENV


def _write(tmp_path, doc, name="sel.json"):
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


BASE = str(ROOT / "configs/mnist_rotation.json")


def _doc(**kw):
    doc = {"base": BASE, "variants": [{"name": "a", "set": {}}, {"name": "b", "set": {"train.learning_rate": 0.02}}]}
    doc.update(kw)
    return doc


def test_every_variant_is_scored_on_validation_with_the_shared_settings(tmp_path):
    sel = load_selection(_write(tmp_path, _doc(set={"eval.knn": False})))
    assert [v.name for v in sel.variants] == ["a", "b"]
    assert all(v.config.eval.split == "validation" and not v.config.eval.knn for v in sel.variants)
    assert sel.variants[1].config.train.learning_rate == 0.02
    assert sel.labels == tuple(sel.variants[0].config.eval.label_counts) and sel.protocol == "frozen_mlp"


def test_smoke_keeps_its_budget_over_a_variants_own(tmp_path):
    """A variant that sets its own steps (a budget-matched grid) still runs --smoke's few steps
    on tiny data; its other settings are kept, and the full run keeps the variant's steps."""
    doc = _doc(variants=[{"name": "a", "set": {}},
                         {"name": "b", "set": {"train.steps": 10000, "train.learning_rate": 0.02,
                                               "data.validation_images": 3000}}])
    smoke = load_selection(_write(tmp_path, doc), smoke=True)
    b = smoke.variants[1].config
    assert b.train.steps == 8 and b.data.validation_images == 64 and b.train.learning_rate == 0.02
    assert b.eval.split == "validation"
    full = load_selection(_write(tmp_path, doc)).variants[1].config
    assert full.train.steps == 10000 and full.data.validation_images == 3000


@pytest.mark.parametrize("doc, match", [
    (_doc(extra=1), "unknown key 'extra'"),
    ({"base": BASE}, "missing required key 'variants'"),
    (_doc(base="nowhere.json"), "'base': nowhere.json not found"),
    (_doc(variants=[{"name": "a", "set": {}}]), "at least two"),
    (_doc(variants=[{"name": "a"}, {"name": "a"}]), "'a' is listed twice"),
    (_doc(variants=[{"name": "a/../x"}, {"name": "b"}]), r"variants\[0\].name"),
    (_doc(variants=[{"name": "a"}, {"name": "b", "set": {"train.stepz": 3}}]), "variant 'b'.*train.stepz"),
    (_doc(criterion={"labels": [7]}), r"criterion.labels \[7\] not in"),
    (_doc(set={"data.validation_images": 0}), "validation_images is 0"),
])
def test_bad_selection_files_name_the_key(tmp_path, doc, match):
    path = _write(tmp_path, doc)
    with pytest.raises(ConfigError, match=match) as e:
        load_selection(path)
    assert str(path) in str(e.value)


def _results(values_by_count, seeds=(0, 1, 2), split="validation"):
    return {"split": split, "protocol": {"seeds": list(seeds)},
            "rows": [{"method": "m", "protocol": "frozen_mlp", "labels": n, "values": v,
                      "mean": sum(v) / len(v), "std": 0.0} for n, v in values_by_count.items()]}


def test_criterion_ranking_and_pairing():
    a = score(_results({10: [0.5, 0.6, 0.7], 20: [0.7, 0.8, 0.9]}), "frozen_mlp", (10, 20), "a")
    b = score(_results({10: [0.6, 0.6, 0.6], 20: [0.8, 0.8, 0.9]}), "frozen_mlp", (10, 20), "b")
    c = score(_results({10: [0.5, 0.6, 0.7], 20: [0.7, 0.8, 0.9]}), "frozen_mlp", (10, 20), "c")
    assert a["criterion"] == pytest.approx(0.7) and b["criterion"] == pytest.approx(0.7166667, abs=1e-6)
    assert a["per_seed"] == pytest.approx({"0": 0.6, "1": 0.7, "2": 0.8})
    ranked = decide([a, b, c])
    assert [r["variant"] for r in ranked] == ["b", "a", "c"]      # a ties c: listed first wins
    pb = ranked[0]["paired"]        # b - a per seed: +0.1, 0.0, -0.05
    assert pb["mean"] == pytest.approx(0.05 / 3) and pb["won"] == 1 and pb["n"] == 3
    assert ranked[1]["paired"] is None                           # a is the reference
    md = selection_markdown(ranked, {"a": {}, "b": {"x.y": 1}, "c": {}}, title="t", protocol="frozen_mlp",
                            labels=(10, 20), command="cmd")
    assert "| **b** | `x.y=1` | 0.600 ± 0.000 |" in md and "Chosen: **b**." in md
    assert "(1/3 won)" in md and "| a | (base) |" in md


def test_results_scored_on_test_cannot_decide():
    with pytest.raises(SelectionError, match="not scored on the validation split"):
        score(_results({10: [0.5]}, seeds=(0,), split="test"), "frozen_mlp", (10,), "a")
    with pytest.raises(SelectionError, match=r"no frozen_mlp row at \[20\]"):
        score(_results({10: [0.5]}, seeds=(0,)), "frozen_mlp", (10, 20), "a")


def _select(*args):
    return subprocess.run([sys.executable, "-m", "keras_ssl.select", *args, "--no-progress"], cwd=ROOT,
                          env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=600)


def test_select_end_to_end_never_scores_the_test_set(tmp_path):
    quiet = {"eval.scratch": False, "eval.linear_probe": False, "eval.random_frozen": False}
    path = _write(tmp_path, _doc(set=quiet, variants=[
        {"name": "lr_small", "set": {"train.learning_rate": 0.0001}},
        {"name": "lr_base", "set": {}},
        {"name": "head_slow", "set": {"eval.head_learning_rate": 0.001}}]))
    runs = tmp_path / "runs"
    r = _select(str(path), "--smoke", "--runs-dir", str(runs))
    assert r.returncode == 0, r.stderr[-2000:]
    root = runs / "sel_smoke"
    # head_slow differs from lr_base after pretraining only: it starts from lr_base's
    # checkpoints (copied, not trained again); lr_small pretrains on its own
    assert r.stdout.count("pretrained as") == 1
    assert f"pretrained as {root / 'lr_base'}: its checkpoints copied" in r.stdout
    ckpt = sorted(p.relative_to(root / "lr_base") for p in (root / "lr_base" / "checkpoints").rglob("*"))
    assert ckpt and ckpt == sorted(p.relative_to(root / "head_slow")
                                   for p in (root / "head_slow" / "checkpoints").rglob("*"))
    for rel in ckpt:
        if (root / "lr_base" / rel).is_file():
            assert (root / "lr_base" / rel).read_bytes() == (root / "head_slow" / rel).read_bytes()
    slow = json.loads((root / "head_slow" / "results_validation.json").read_text())
    assert slow["protocol"]["head_learning_rate"] == 0.001
    doc = json.loads((root / "selection.json").read_text())
    crit = {}
    for name in ("lr_small", "lr_base", "head_slow"):
        assert not (root / name / "results.json").exists()     # the test split was never scored
        res = json.loads((root / name / "results_validation.json").read_text())
        rows = [r for r in res["rows"] if r["protocol"] == "frozen_mlp"]
        crit[name] = sum(r["mean"] for r in rows) / len(rows)
    assert {r["variant"]: r["criterion"] for r in doc["ranked"]} == pytest.approx(crit)
    assert crit[doc["chosen"]] == max(crit.values())
    assert f"Chosen: **{doc['chosen']}**." in (root / "selection.md").read_text()
    again = _select(str(path), "--smoke", "--runs-dir", str(runs))       # finished variants are read back
    assert again.returncode == 0 and again.stdout.count("finished before") == 3


def test_select_bad_file_is_one_line(tmp_path):
    r = _select(str(_write(tmp_path, _doc(extra=1))))
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "unknown key 'extra'" in r.stderr


def test_select_into_a_run_directory_that_cannot_be_made_is_one_line(tmp_path, capsys):
    """--runs-dir names a file: the variant's run directory cannot be made; one line naming
    the variant, the directory and the reason, exit code 2, no traceback."""
    from keras_ssl.selection.cli import main

    path = _write(tmp_path, _doc())
    blocked = tmp_path / "runs"
    blocked.write_text("a file where the runs should go")
    code = main([str(path), "--smoke", "--no-progress", "--runs-dir", str(blocked)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and len(err.splitlines()) == 1, err
    run_dir = blocked / "sel_smoke" / "a"
    assert err == (f"error: variant 'a': cannot write the run directory {run_dir}: Not a directory; no "
                   f"checkpoint had been written yet; fix that and run the same command to start again\n")
