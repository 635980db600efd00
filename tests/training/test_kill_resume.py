"""kill -9 (or SIGTERM, a preemption notice) during pretraining, then the same
command: the run ends where the uninterrupted run ends, bit for bit, having lost at
most one checkpoint interval (SIGTERM: no step). Real subprocesses of
``python -m keras_ssl.train``, dropout 0.5 in the head (its random state must come
back from the checkpoint too). PIRL and NPID: their memory bank too. kill -9 during
the few-label evaluation: no half-written results, intact checkpoints, and the same
command evaluates again without pretraining again."""
import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from support import ROOT, SUBPROCESS_ENV

STEPS, EVERY = 400, 20

CONFIG = {
    "name": "kill_resume", "seed": 4,
    "encoder": {"name": "convnet", "filters": [4, 8], "output": "gap"},
    "pretext": {"name": "egomotion", "max_shift_px": 2, "max_rotation_deg": 10, "rotation_bins": 4},
    "method": {"name": "classify", "hidden": 32, "dropout": 0.5},
    "data": {"max_pretrain_images": 512, "validation_images": 0},
    "train": {"steps": STEPS, "batch_size": 16, "steps_per_execution": 5, "checkpoint_every": EVERY,
              "log_every": 20, "sample_examples": 0, "learning_rate": 0.05},
}


def command(cfg_path, run_dir, *, evaluate=False):
    """``python -m keras_ssl.train`` of ``cfg_path`` into ``run_dir`` (no export; no
    evaluation unless ``evaluate``)."""
    return [sys.executable, "-m", "keras_ssl.train", "--config", str(cfg_path), "--run-dir", str(run_dir),
            *(() if evaluate else ("--skip-eval",)), "--skip-export", "--no-progress"]


def latest_step(run_dir):
    ckpt = tf.train.latest_checkpoint(str(run_dir / "checkpoints"))
    return int(ckpt.rsplit("-", 1)[1]) if ckpt else 0


def encoder_weights(run_dir):
    import keras

    import keras_ssl.encoders  # noqa: F401  (registers the custom layers)
    return [w.numpy() for w in keras.models.load_model(run_dir / "encoder.keras").weights]


def bank_entries(run_dir):
    """The memory bank (``method/bank/entries``) of the run's latest checkpoint."""
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(run_dir / "checkpoints")))
    return reader.get_tensor("method/bank/entries/.ATTRIBUTES/VARIABLE_VALUE")


def run_to_end(cfg_path, run_dir, **flags):
    """The command, run to its end (exit code 0)."""
    p = subprocess.run(command(cfg_path, run_dir, **flags), cwd=ROOT, env=SUBPROCESS_ENV,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    return p


def straight_run(tmp_path_factory, config, **flags):
    """(config path, run directory) of the uninterrupted run of ``config``."""
    tmp = tmp_path_factory.mktemp("straight")
    cfg_path = tmp / f"{config['name']}.json"
    cfg_path.write_text(json.dumps(config))
    run_to_end(cfg_path, tmp / "run", **flags)
    return cfg_path, tmp / "run"


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """(config path, run directory) of the uninterrupted run."""
    return straight_run(tmp_path_factory, CONFIG)


def signal_when(cfg_path, run_dir, signum, ready, timeout=300, **flags):
    """Start the command, send ``signum`` once ``ready()`` holds (polled every 20 ms,
    failing if the run ends first or ``timeout`` seconds pass); returns (exit code, stderr)."""
    proc = subprocess.Popen(command(cfg_path, run_dir, **flags), cwd=ROOT, env=SUBPROCESS_ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            assert proc.poll() is None, "the run ended before it could be interrupted"
            assert time.monotonic() < deadline, f"not ready to be interrupted after {timeout} s"
            time.sleep(0.02)
        assert proc.poll() is None, "the run ended before it could be interrupted"
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=60)
    return proc.returncode, err


def interrupt(cfg_path, run_dir, signum, every=EVERY):
    """Start the command, send ``signum`` once it has written its second checkpoint
    (``every``: the config's checkpoint_every); returns (exit code, stderr)."""
    return signal_when(cfg_path, run_dir, signum, lambda: latest_step(run_dir) >= 2 * every)


def resume_and_compare(cfg_path, run_dir, straight_dir, start):
    run_to_end(cfg_path, run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["pretrain"]["start_step"] == start          # resumed from the last checkpoint
    for a, b in zip(encoder_weights(straight_dir), encoder_weights(run_dir), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_sigkill_after_a_checkpoint_then_the_same_command(straight, tmp_path):
    cfg_path, straight_dir = straight
    killed = tmp_path / "killed"
    code, _ = interrupt(cfg_path, killed, signal.SIGKILL)
    assert code == -signal.SIGKILL
    at_kill = latest_step(killed)
    assert 2 * EVERY <= at_kill < STEPS and not (killed / "encoder.keras").exists()
    resume_and_compare(cfg_path, killed, straight_dir, at_kill)


@pytest.mark.slow
def test_sigterm_saves_at_the_next_step_and_says_how_to_resume(straight, tmp_path):
    cfg_path, straight_dir = straight
    stopped = tmp_path / "stopped"
    code, err = interrupt(cfg_path, stopped, signal.SIGTERM)
    assert code == 128 + signal.SIGTERM, err[-3000:]
    at_stop = latest_step(stopped)
    assert f"stopped by SIGTERM at step {at_stop}" in err and "run the same command again" in err
    assert 2 * EVERY <= at_stop < STEPS
    resume_and_compare(cfg_path, stopped, straight_dir, at_stop)


# -- memory-bank methods: the bank must come back from the checkpoint too ---------------

BANK_STEPS, BANK_EVERY = 60, 10


def bank_config(method, pretext):
    """A tiny memory-bank run (``method`` on ``pretext``): 256 images, a 16-d bank with
    batch norm in the head, 64 negatives, checkpoints every BANK_EVERY steps."""
    return {**CONFIG, "name": f"kill_resume_{method}", "pretext": pretext,
            "method": {"name": method, "embedding": 16, "negatives": 64, "head_batch_norm": True},
            "data": {"max_pretrain_images": 256, "validation_images": 0},
            "train": {**CONFIG["train"], "steps": BANK_STEPS, "checkpoint_every": BANK_EVERY,
                      "log_every": BANK_EVERY}}


BANK_CONFIGS = {"pirl": bank_config("pirl", {"name": "pirl", "transform": "rotation"}),
                "npid": bank_config("npid", {"name": "augment"})}


@pytest.mark.slow
@pytest.mark.parametrize("method", sorted(BANK_CONFIGS))
def test_sigkill_of_a_memory_bank_method_resumes_weights_and_bank(method, tmp_path_factory):
    """PIRL and NPID killed after a checkpoint, then the same command: the final encoder
    and the memory bank equal the uninterrupted run's, bit for bit, and the bank moved
    (the comparison sees the updates the resumed run made)."""
    cfg_path, straight_dir = straight_run(tmp_path_factory, BANK_CONFIGS[method])
    killed = tmp_path_factory.mktemp("killed") / "run"
    code, _ = interrupt(cfg_path, killed, signal.SIGKILL, every=BANK_EVERY)
    assert code == -signal.SIGKILL
    at_kill = latest_step(killed)
    assert 2 * BANK_EVERY <= at_kill < BANK_STEPS and not (killed / "encoder.keras").exists()
    bank_at_kill = bank_entries(killed)
    resume_and_compare(cfg_path, killed, straight_dir, at_kill)
    assert latest_step(killed) == latest_step(straight_dir) == BANK_STEPS
    resumed, straight_bank = bank_entries(killed), bank_entries(straight_dir)
    assert np.abs(resumed - bank_at_kill).max() > 1e-3, "the resumed run must move the bank"
    np.testing.assert_array_equal(resumed, straight_bank)


# -- kill -9 during the few-label evaluation ----------------------------------------------

EVAL_STEPS = 40
EVAL_CONFIG = {**CONFIG, "name": "kill_eval",
               "train": {**CONFIG["train"], "steps": EVAL_STEPS},
               "eval": {"label_counts": [20, 50], "seeds": [0], "head_steps": 100, "scratch_steps": 300,
                        "linear_probe_steps": 50, "max_test_images": 200}}
#: Seconds between the evaluation's start (encoder.keras written) and the kill: the
#: evaluation above takes several seconds, so the kill lands in it, not after it.
INTO_EVAL = 1.0
RESULTS = ("results.json", "results.md")


@pytest.fixture(scope="module")
def straight_eval(tmp_path_factory):
    """(config path, run directory) of the uninterrupted job, pretraining and evaluation."""
    return straight_run(tmp_path_factory, EVAL_CONFIG, evaluate=True)


def file_id(path):
    """(inode, mtime) of ``path``, None when absent: it changes when the file is replaced."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns


def evaluation_started(run_dir):
    """A ``ready`` for :func:`signal_when`: true INTO_EVAL s after the job (re)wrote
    encoder.keras, which it does at the end of pretraining, just before it evaluates."""
    before, seen = file_id(run_dir / "encoder.keras"), []

    def ready():
        now = file_id(run_dir / "encoder.keras")
        if not seen and now is not None and now != before:
            seen.append(time.monotonic())
        return bool(seen) and time.monotonic() - seen[0] >= INTO_EVAL
    return ready


def contents(run_dir, names):
    """{name: bytes} of the files of ``run_dir`` that exist among ``names``."""
    return {n: (run_dir / n).read_bytes() for n in names if (run_dir / n).exists()}


def checkpoints(run_dir):
    """{file name: bytes} of the run's checkpoints/ directory."""
    return {p.name: p.read_bytes() for p in sorted((run_dir / "checkpoints").iterdir())}


def kill_during_evaluation(cfg_path, run_dir):
    """kill -9 the job in its evaluation; checks that the results files are the ones that
    were there before (none, or a whole earlier version) and that the checkpoints are those
    of the finished pretraining, untouched."""
    results_before = contents(run_dir, RESULTS)
    code, err = signal_when(cfg_path, run_dir, signal.SIGKILL, evaluation_started(run_dir), evaluate=True)
    assert code == -signal.SIGKILL, err[-3000:]
    assert contents(run_dir, RESULTS) == results_before
    for name, data in results_before.items():   # whole, not just unchanged
        if name.endswith(".json"):
            assert json.loads(data)["rows"]
    assert latest_step(run_dir) == EVAL_STEPS
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(run_dir / "checkpoints")))
    assert reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE") == EVAL_STEPS
    return checkpoints(run_dir)


def result_means(run_dir):
    return [(r["protocol"], r["labels"], r["mean"])
            for r in json.loads((run_dir / "results.json").read_text())["rows"]]


@pytest.mark.slow
def test_sigkill_during_evaluation_then_the_same_command(straight_eval, tmp_path):
    """Killed in its evaluation, the job leaves no results file (a killed re-evaluation of
    the finished run: the previous results, byte for byte) and its checkpoints intact; the
    same command then evaluates without pretraining again and writes the results of the
    uninterrupted job."""
    cfg_path, straight_dir = straight_eval
    run_dir = tmp_path / "run"
    ckpts = kill_during_evaluation(cfg_path, run_dir)
    assert not any((run_dir / n).exists() for n in RESULTS)
    assert (run_dir / "encoder.keras").is_file()          # pretraining had ended: evaluating
    run_to_end(cfg_path, run_dir, evaluate=True)
    pretrain = json.loads((run_dir / "summary.json").read_text())["pretrain"]
    assert pretrain["resumed_finished"] is True and pretrain["start_step"] == EVAL_STEPS
    assert checkpoints(run_dir) == ckpts                   # nothing pretrained again
    assert result_means(run_dir) == result_means(straight_dir)
    assert (run_dir / "results.md").is_file()
    # The same command on the finished run evaluates again: killed in it, the results of the
    # previous evaluation stay, whole.
    assert kill_during_evaluation(cfg_path, run_dir) == ckpts
    assert result_means(run_dir) == result_means(straight_dir)
