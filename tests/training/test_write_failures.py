"""A disk that fills up, or a run directory that cannot be written, during a job: one
line naming the path, the reason and the intact checkpoint, exit code 2, no traceback;
the checkpoint before the failure restores, and the same command resumes from it.

No disk is filled: the checkpoint save (or TensorFlow's own state-file write, or the
atomic writer's rename) is made to fail at one step, as ENOSPC or a read-only disk
would. A real read-only directory (chmod 0o555) when not running as root."""
import errno
import json
import os
import re
from pathlib import Path

import pytest
import tensorflow as tf
from tensorflow.python.checkpoint import checkpoint_management

import support
from keras_ssl.config import load_config
from keras_ssl.training.errors import RunWriteError

STEPS, EVERY, FAIL_AT = 6, 2, 4
ENOSPC = os.strerror(errno.ENOSPC)     # "No space left on device"


@pytest.fixture
def job(tmp_path):
    """(config path, run directory): 6 steps of 4 images from a folder of 16, a checkpoint every 2."""
    images, _ = support.synthetic_digits(16)
    root = tmp_path / "imgs"
    root.mkdir()
    for i, img in enumerate(images):
        (root / f"{i:02d}.png").write_bytes(tf.io.encode_png(img).numpy())
    cfg = {"name": "disk", "encoder": support.TINY_CONVNET, "pretext": "rotation",
           "method": {"name": "classify", "hidden": 8},
           "data": {"dataset": "folder", "path": str(root), "validation_images": 0},
           "train": {**support.SMALL_TRAIN, "steps": STEPS, "batch_size": 4, "steps_per_execution": 1,
                     "checkpoint_every": EVERY, "sample_examples": 0}}
    path = tmp_path / "disk.json"
    path.write_text(json.dumps(cfg))
    return path, tmp_path / "run"


def train(cfg_path, run_dir, capsys):
    """``python -m keras_ssl.train`` in this process: (exit code, stderr)."""
    from keras_ssl.train import main

    capsys.readouterr()
    code = main(["--config", str(cfg_path), "--run-dir", str(run_dir), "--skip-eval", "--skip-export",
                 "--no-progress"])
    return code, capsys.readouterr().err


def fail_checkpoint_at(monkeypatch, step, fail):
    """Make ``CheckpointManager.save`` call ``fail(manager)`` instead of saving ``step``."""
    real = tf.train.CheckpointManager.save

    def save(self, checkpoint_number=None, **kwargs):
        if checkpoint_number == step:
            return fail(self)
        return real(self, checkpoint_number=checkpoint_number, **kwargs)

    monkeypatch.setattr(tf.train.CheckpointManager, "save", save)


def latest_step(run_dir):
    ckpt = tf.train.latest_checkpoint(str(run_dir / "checkpoints"))
    return int(ckpt.rsplit("-", 1)[1]) if ckpt else 0


def assert_restorable_and_resumes(cfg_path, run_dir, capsys, step):
    """The checkpoint on disk is that of ``step`` and restores; the same command, without
    the fault, resumes from it and finishes."""
    assert latest_step(run_dir) == step
    assert support.trainer(load_config(cfg_path), run_dir).restore() == step
    code, err = train(cfg_path, run_dir, capsys)
    assert code == 0, err[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["pretrain"]["start_step"] == step and latest_step(run_dir) == STEPS


def test_disk_full_at_a_checkpoint_stops_with_one_line_and_the_same_command_resumes(job, capsys,
                                                                                   monkeypatch):
    cfg_path, run_dir = job
    ckpts = run_dir / "checkpoints"

    def torn_write(manager):      # half an index file written, then the disk is full
        Path(manager.directory, f"ckpt-{FAIL_AT}.index").write_bytes(b"\0" * 7)
        raise OSError(errno.ENOSPC, ENOSPC, str(Path(manager.directory, f"ckpt-{FAIL_AT}.index")))

    fail_checkpoint_at(monkeypatch, FAIL_AT, torn_write)
    code, err = train(cfg_path, run_dir, capsys)
    assert code == 2
    assert err == (f"error: cannot write checkpoint to {ckpts}: {ENOSPC}; the last good checkpoint "
                   f"(step {EVERY}: {ckpts / f'ckpt-{EVERY}'}) is intact; free space on that disk and run "
                   f"the same command to resume\n")
    assert not (run_dir / "summary.json").exists() and not (run_dir / "encoder.keras").exists()
    monkeypatch.undo()
    assert_restorable_and_resumes(cfg_path, run_dir, capsys, EVERY)


def test_a_failed_state_file_write_inside_tensorflow_names_the_checkpoint_on_disk(tmp_path, digits,
                                                                                 monkeypatch):
    """TensorFlow has written ckpt-4 whole and fails to name it in the state file: the
    manager already calls ckpt-4 its latest, the disk still says ckpt-2, and ckpt-2 is
    what the message names and what a new run restores."""
    cfg = support.small_cfg(steps=STEPS, checkpoint_every=EVERY, steps_per_execution=1, batch_size=4)
    images, _ = digits(16)
    real = checkpoint_management.update_checkpoint_state_internal

    def update(save_dir, model_checkpoint_path, *args, **kwargs):
        if model_checkpoint_path.endswith(f"ckpt-{FAIL_AT}"):
            raise tf.errors.ResourceExhaustedError(None, None, f"{save_dir}/checkpoint; {ENOSPC}")
        return real(save_dir, model_checkpoint_path, *args, **kwargs)

    monkeypatch.setattr(checkpoint_management, "update_checkpoint_state_internal", update)
    t = support.trainer(cfg, tmp_path)
    with pytest.raises(RunWriteError) as failed:
        t.train(images)
    assert t.manager.latest_checkpoint.endswith(f"ckpt-{FAIL_AT}")        # what memory says
    e, ckpts = failed.value, tmp_path / "checkpoints"
    assert (e.errno, e.strerror, e.filename) == (errno.ENOSPC, ENOSPC, str(ckpts))
    assert str(e).startswith(f"cannot write checkpoint to {ckpts}: {ENOSPC}; the last good "
                             f"checkpoint (step {EVERY}: {ckpts / f'ckpt-{EVERY}'}) is intact; free space")
    monkeypatch.undo()
    again = support.trainer(cfg, tmp_path)
    assert again.restore() == EVERY
    assert again.train(images)["start_step"] == EVERY and int(again.step.numpy()) == STEPS


def test_a_read_only_checkpoint_directory_stops_with_one_line(job, capsys, monkeypatch):
    """chmod 0o555 on the checkpoint directory before step 4's save (as root, where chmod
    does not stop a write, TensorFlow's error for a read-only filesystem instead)."""
    cfg_path, run_dir = job
    ckpts = run_dir / "checkpoints"
    real = tf.train.CheckpointManager.save
    as_root = os.geteuid() == 0

    def read_only(manager):
        if as_root:   # as TensorFlow words it
            raise tf.errors.PermissionDeniedError(None, None, (
                "{{function_node __wrapped__SaveV2_dtypes_21_device_/job:localhost/replica:0/task:0/"
                f"device:CPU:0}}}} {manager.directory}/ckpt-{FAIL_AT}_temp; {os.strerror(errno.EROFS)} "
                "[Op:SaveV2]"))
        ckpts.chmod(0o555)
        return real(manager, checkpoint_number=FAIL_AT)

    fail_checkpoint_at(monkeypatch, FAIL_AT, read_only)
    try:
        code, err = train(cfg_path, run_dir, capsys)
    finally:
        ckpts.chmod(0o755)
    assert code == 2 and "Traceback" not in err and len(err.splitlines()) == 1, err[-3000:]
    reason, remedy = ((os.strerror(errno.EROFS), "remount that filesystem read-write") if as_root
                      else (os.strerror(errno.EACCES), "make it writable"))
    assert err.startswith(f"error: cannot write checkpoint to {ckpts}: {reason}; the last good checkpoint "
                          f"(step {EVERY}: "), err
    assert err.endswith(f"is intact; {remedy} and run the same command to resume\n"), err
    monkeypatch.undo()
    assert_restorable_and_resumes(cfg_path, run_dir, capsys, EVERY)


def test_disk_full_on_a_run_file_names_the_file_not_its_temporary(job, capsys, monkeypatch):
    """summary.json cannot be written after the last checkpoint: the message names it, no
    temporary is left behind, and the same command finishes the job."""
    import keras_ssl.files

    cfg_path, run_dir = job
    real = os.replace

    def replace(src, dst):
        if Path(dst).name == "summary.json":
            raise OSError(errno.ENOSPC, ENOSPC, str(src))
        return real(src, dst)

    monkeypatch.setattr(keras_ssl.files.os, "replace", replace)
    code, err = train(cfg_path, run_dir, capsys)
    monkeypatch.undo()
    ckpts = run_dir / "checkpoints"
    assert code == 2
    assert err == (f"error: cannot write {run_dir / 'summary.json'}: {ENOSPC}; the last good checkpoint "
                   f"(step {STEPS}: {ckpts / f'ckpt-{STEPS}'}) is intact; free space on that disk and run "
                   f"the same command to resume\n")
    assert not [p.name for p in run_dir.iterdir() if re.match(r"\.summary\.tmp-", p.name)]
    assert not (run_dir / "summary.json").exists()
    code, err = train(cfg_path, run_dir, capsys)
    assert code == 0, err[-3000:]
    assert json.loads((run_dir / "summary.json").read_text())["pretrain"]["resumed_finished"] is True


def test_a_failed_first_checkpoint_says_there_is_none_yet(job, capsys, monkeypatch):
    cfg_path, run_dir = job

    def over_quota(manager):
        raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT), manager.directory)

    fail_checkpoint_at(monkeypatch, EVERY, over_quota)
    code, err = train(cfg_path, run_dir, capsys)
    assert code == 2 and err.startswith(f"error: cannot write checkpoint to {run_dir / 'checkpoints'}: "), err
    assert err.endswith(f"{os.strerror(errno.EDQUOT)}; no checkpoint had been written yet; free space "
                        f"within your disk quota and run the same command to start again\n"), err
