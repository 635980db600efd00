"""The error a training run stops with."""


class TrainingError(RuntimeError):
    """Training cannot go on (non-finite loss, bad state); the message says why."""
