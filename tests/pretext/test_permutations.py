import json

import numpy as np
import pytest

from keras_ssl.pretext import permutations as P


def test_set_is_valid_seeded_and_deterministic():
    a = P.maximal_hamming_set(12, 3, "mean", seed=0)
    assert a.shape == (12, 9)
    assert np.all(np.sort(a, axis=1) == np.arange(9))
    assert len(np.unique(a, axis=0)) == 12
    assert np.array_equal(a, P.maximal_hamming_set(12, 3, "mean", seed=0))
    assert not np.array_equal(a, P.maximal_hamming_set(12, 3, "mean", seed=1))


def test_greedy_maximises_hamming_distance():
    two = P.maximal_hamming_set(2, 3, "min", seed=3)
    assert np.count_nonzero(two[0] != two[1]) == 9          # a derangement of the first
    small, large = (P.hamming_stats(P.maximal_hamming_set(n, 3, "mean", 0)) for n in (10, 100))
    assert small["mean_hamming"] > large["mean_hamming"] > 8.0   # random pairs average 8 (= 9 - 1)
    assert small["min_hamming"] >= large["min_hamming"]
    mins = P.hamming_stats(P.maximal_hamming_set(10, 3, "min", 0))
    assert mins["min_hamming"] >= 8


def test_hamming_stats_by_hand():
    s = P.hamming_stats(np.array([[0, 1, 2], [1, 0, 2], [2, 1, 0]]))
    assert s == {"size": 3, "mean_hamming": pytest.approx(7 / 3), "min_hamming": 2}   # 2, 2, 3


def test_whole_small_grid_and_bad_requests():
    assert len(P.maximal_hamming_set(24, 2, "min", 0)) == 24
    with pytest.raises(ValueError, match=r"size must be in \[1, 24\]"):
        P.maximal_hamming_set(25, 2)
    with pytest.raises(ValueError, match="grid must be 2 or 3"):
        P.maximal_hamming_set(10, 4)
    with pytest.raises(ValueError, match="criterion"):
        P.maximal_hamming_set(10, 3, "max")


def test_cli_writes_set_and_prints_stats(tmp_path, capsys):
    out = tmp_path / "perms.json"
    assert P.main(["--size", "10", "--grid", "3", "--criterion", "min", "--out", str(out), "--seed", "2"]) == 0
    printed = capsys.readouterr().out
    doc = json.loads(out.read_text())
    assert doc["size"] == 10 and doc["criterion"] == "min" and doc["seed"] == 2
    assert "size 10" in printed and f"minimum Hamming distance {doc['min_hamming']}" in printed
    assert f"average Hamming distance {doc['mean_hamming']:.3f}" in printed
    loaded = P.load_permutations(out)
    assert np.array_equal(loaded, P.maximal_hamming_set(10, 3, "min", 2))
    npy = tmp_path / "perms.npy"
    assert P.main(["--size", "5", "--out", str(npy)]) == 0
    assert P.load_permutations(npy).shape == (5, 9)
    assert P.main(["--size", "0", "--out", str(npy)]) == 2


def test_load_rejects_non_permutations(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"permutations": [[0, 1, 1], [0, 1, 2]]}))
    with pytest.raises(ValueError, match="not permutations"):
        P.load_permutations(bad)
    with pytest.raises(ValueError, match="not found"):
        P.load_permutations(tmp_path / "missing.json")
