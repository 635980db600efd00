"""The run records kept in docs/runs/ (README "Run records"): each is read like a run
directory, and each stays within the ``expected`` results of the config file it names, as
committed (a config whose stated figures drift from its kept run fails here)."""
import json
from pathlib import Path

import pytest

from keras_ssl.evaluation.compare import load_run
from keras_ssl.evaluation.expected import check_run_dirs

ROOT = Path(__file__).resolve().parents[2]
RECORDS = sorted(p.parent for p in (ROOT / "docs" / "runs").glob("*/results.json"))


def test_the_main_jobs_record_is_kept():
    assert ROOT / "docs" / "runs" / "mnist_egomotion" in RECORDS


@pytest.mark.parametrize("record", RECORDS, ids=lambda p: p.name)
def test_record_is_within_its_committed_configs_expected(record):
    run = load_run(record)
    config = ROOT / "configs" / f"{run['name']}.json"
    assert config.is_file(), f"{record}: names config {run['name']!r}, not in configs/"
    kept = json.loads((record / "config.json").read_text())
    committed = json.loads(config.read_text())
    for section in ("encoder", "pretext", "method"):            # the record is a run of this config
        assert kept[section]["name"] == committed[section]["name"], (record, section)
    lines = []
    assert check_run_dirs([record], out=lines.append, err=lines.append, expected_config=config) == 0, lines
    assert lines == [f"{record}: OK"]


def test_readme_all_methods_table_is_the_records_comparison(tmp_path):
    """README "All methods" is pasted from `python -m keras_ssl.compare docs/runs/mnist_* --sort 100
    --out docs/comparison`: every line of that table (header, runs, baselines, thesis rows) is in
    the README, so a record kept without pasting its table again, or a hand-edited cell, fails."""
    from keras_ssl.evaluation.compare import compare

    runs = [str(p) for p in sorted((ROOT / "docs" / "runs").glob("mnist_*")) if (p / "results.json").is_file()]
    first = compare(runs, tmp_path, sort_by=100, log=lambda *a: None)["markdown"].split("\n## ")[0]
    table = [line for line in first.splitlines() if line.startswith("|")]
    readme = (ROOT / "README.md").read_text()
    assert len(table) > 2 + len(runs)
    assert [line for line in table if line not in readme] == []
    assert (ROOT / "docs" / "comparison" / "comparison.md").read_text().split("\n## ")[0] == first
