"""Published figures we compare against (not our results).

Few-label MNIST test accuracy from the thesis reproduction of "Learning to
See by Moving" (Torti López 2017, final table): see
shared reference ``thesis_protocol.md``.

Contract: ``LABEL_COUNTS`` is the one list of the thesis's label counts (the
evaluation's default, the columns of every table); ``THESIS_TABLE`` gives one
accuracy per count, in that order; :func:`thesis_by_count` pairs them.
"""
from __future__ import annotations

LABEL_COUNTS: tuple[int, ...] = (100, 300, 1000, 10000)

THESIS_TABLE: dict[str, tuple[float, ...]] = {
    "from scratch": (0.42, 0.70, 0.82, 0.97),
    "SFA (m = 10)": (0.52, 0.71, 0.77, 0.82),
    "SFA (m = 100)": (0.58, 0.73, 0.80, 0.88),
    "egomotion": (0.75, 0.90, 0.92, 0.99),
}


def thesis_by_count() -> dict[str, dict[int, float]]:
    """Each thesis row as label count -> accuracy (insertion order: the table's)."""
    return {name: dict(zip(LABEL_COUNTS, vals)) for name, vals in THESIS_TABLE.items()}
