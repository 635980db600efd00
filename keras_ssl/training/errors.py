"""The error a training run stops with."""


class TrainingError(RuntimeError):
    """Training cannot go on (non-finite loss, bad state); the message says why."""


class Interrupted(KeyboardInterrupt):
    """Pretraining stopped by SIGINT or SIGTERM at a step boundary, after saving a
    checkpoint there: the same command resumes from ``step``. A KeyboardInterrupt,
    so code that handles Ctrl-C handles it too; ``exit_code`` is 128 + the signal."""

    def __init__(self, step: int, signum: int, checkpoint: str):
        import signal

        self.step, self.signum, self.checkpoint = step, signum, checkpoint
        self.signal_name = signal.Signals(signum).name
        self.exit_code = 128 + signum
        super().__init__(f"{self.signal_name} at step {step}; checkpoint {checkpoint}")


class RunWriteError(OSError):
    """A file of the run could not be written (disk full, no permission, read-only
    filesystem): ``filename`` is what, ``strerror`` why, and the message adds which
    checkpoint is intact and what to do. An OSError, so code that handles failed
    writes handles it too; build it with :func:`cannot_write`."""

    def __init__(self, errno_: int | None, reason: str, path: str, message: str):
        super().__init__(errno_, reason, path)
        self.message = message

    def __str__(self) -> str:
        return self.message


#: What to do about a failed write, by errno name (otherwise: "fix that").
REMEDIES = {"ENOSPC": "free space on that disk", "EDQUOT": "free space within your disk quota",
            "EACCES": "make it writable", "EPERM": "make it writable",
            "EROFS": "remount that filesystem read-write"}


def _tf_line(error: BaseException) -> str:
    """The first line of a TensorFlow error's message, without the ``{{function_node ...}}``
    and ``[Op:...]`` around it."""
    import re

    line = (str(getattr(error, "message", error)).splitlines() or [""])[0]
    return re.sub(r"\{\{.*?\}\}\s*|\s*\[Op:\w+\]", "", line).strip() or type(error).__name__


def _errno_and_reason(error: BaseException) -> tuple[int | None, str]:
    """(errno, the system's words) of an OSError or of a TensorFlow OpError, whose
    message reads ``"<path>; <strerror>"``."""
    import errno as errno_mod
    import os

    import tensorflow as tf

    if isinstance(error, OSError):
        return error.errno, error.strerror or str(error) or type(error).__name__
    line = _tf_line(error)
    reason = line.rsplit("; ", 1)[-1]
    for name in list(REMEDIES) + ["ENOTDIR", "ENOENT"]:
        code = getattr(errno_mod, name, None)
        if code is not None and os.strerror(code) == reason:
            return code, reason
    # Other words: the error's code (on a write, RESOURCE_EXHAUSTED is a full disk).
    by_code = {tf.errors.RESOURCE_EXHAUSTED: errno_mod.ENOSPC, tf.errors.PERMISSION_DENIED: errno_mod.EACCES}
    return by_code.get(getattr(error, "error_code", None)), line


def latest_on_disk(checkpoints) -> str | None:
    """The checkpoint that the state file in ``checkpoints`` names (None: none), or
    ``""`` when that cannot be read."""
    import tensorflow as tf

    try:
        return tf.train.latest_checkpoint(str(checkpoints))
    except Exception:  # noqa: BLE001 - an unreadable state file: nothing can be said for sure
        return ""


def cannot_write(target: str, path, error: BaseException, checkpoints) -> RunWriteError:
    """The RunWriteError of a failed write of ``path`` (``target``: how the message names
    it, e.g. ``"checkpoint to DIR"``) from ``error`` (an OSError or a TensorFlow OpError):
    its reason, the last good checkpoint in ``checkpoints`` (read from disk, not from
    memory: a failed save may have named the new one there) and what to do about it."""
    import errno as errno_mod

    code, reason = _errno_and_reason(error)
    remedy = REMEDIES.get(errno_mod.errorcode.get(code, ""), "fix that")
    latest = latest_on_disk(checkpoints)
    if latest:
        step = latest.rsplit("-", 1)[-1]
        intact, then = f"the last good checkpoint (step {step}: {latest}) is intact", "resume"
    elif latest is None:
        intact, then = "no checkpoint had been written yet", "start again"
    else:
        intact, then = f"the last good checkpoint, if any, is in {checkpoints}", "resume"
    return RunWriteError(code, reason, str(path), f"cannot write {target}: {reason}; {intact}; "
                                                  f"{remedy} and run the same command to {then}")


def run_write_error(run_dir, error: OSError) -> RunWriteError:
    """``error`` as the RunWriteError of a write under ``run_dir`` (itself if it is one):
    naming the file (or the run directory itself), the reason and the last good
    checkpoint in ``run_dir/checkpoints``."""
    from pathlib import Path

    if isinstance(error, RunWriteError):
        return error
    run_dir = Path(run_dir)
    path = Path(error.filename) if error.filename else run_dir
    target = f"the run directory {run_dir}" if path == run_dir else str(path)
    return cannot_write(target, path, error, run_dir / "checkpoints")


class PeerLost(RuntimeError):
    """Another worker of the cluster stopped (killed, crashed, unreachable) during
    pretraining, so this one cannot go on: its collectives failed instead of waiting
    (``train.collective_timeout_seconds``). Starting the whole cluster again resumes from
    the chief's last checkpoint. ``exit_code`` 75 (EX_TEMPFAIL: trying again can work),
    which ``python -m keras_ssl.cluster`` restarts, unlike a clear stop's 2."""

    exit_code = 75

    def __init__(self, step: int, reason: str, checkpoint: str | None):
        self.step, self.reason, self.checkpoint = step, reason, checkpoint
        super().__init__(f"another worker of the cluster stopped during pretraining after step {step} "
                         f"({reason}); start every worker again to resume from "
                         f"{checkpoint or 'the start (no checkpoint yet)'}")


#: TensorFlow's errors for a collective whose peer is gone.
PEER_ERRORS = ("UnavailableError", "AbortedError", "DeadlineExceededError", "CancelledError")


def peer_lost(step: int, error: BaseException, checkpoint: str | None) -> PeerLost:
    """The :class:`PeerLost` for a collective's ``error`` after ``step``, its reason the
    words of the transport (``Connection reset by peer``, ``Socket closed``, the
    heartbeat timeout) when the message has them."""
    import re

    text = str(getattr(error, "message", error))
    found = (re.search(r"aborted by: (.+)", text) or re.search(r'grpc_message:"([^"]+)"', text)
             or re.search(r"(The following tasks are unhealthy[^\n]*)", text))
    reason = found.group(1).strip() if found else _tf_line(error)
    return PeerLost(step, f"{type(error).__name__}: {reason}", checkpoint)
