"""The report of finished runs: ``python -m keras_ssl.report RUN... --out DIR``.

README-ready Markdown tables (each run's, and all runs for one protocol), the
accuracy-vs-labels plot, training curves, conv1's filters, the pretext heads'
confusion matrices, a t-SNE map of the final features, and the same pictures,
the embedding projector and an HParams session in each run's TensorBoard logs.

One module per concern: :mod:`.run` (reading a run directory; ReportError),
:mod:`.tables`, :mod:`.curves`, :mod:`.filters`, :mod:`.confusion`,
:mod:`.embedding`, :mod:`.tensorboard`, :mod:`.outputs` (files written whole,
index.md), :mod:`.runner` (the stages in order) and :mod:`.cli` (the command).
Importing the package imports no TensorFlow.
"""
from keras_ssl.report.run import ReportError


def report(*args, **kwargs):
    """:func:`keras_ssl.report.runner.report` (imported when called)."""
    from keras_ssl.report.runner import report as _report

    return _report(*args, **kwargs)


__all__ = ["ReportError", "report"]
