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
