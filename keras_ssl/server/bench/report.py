"""What the benchmark prints: one JSON line per record as it is measured, then a table.

Output format (kept stable, scripts read it): each record is printed with
``json.dumps`` on its own line and flushed; :meth:`Report.table` prints a
blank line, the header, one row per ``"kind": "load"`` record (ratios
against each in-process baseline of ``ref``) and the in-process line.
``--json-out`` gets the same JSON lines (:meth:`Report.write`).
"""
from __future__ import annotations

import json
from pathlib import Path


class Report:
    """The records printed so far, in order."""

    def __init__(self):
        self.lines: list[dict] = []

    def emit(self, rec: dict) -> dict:
        self.lines.append(rec)
        print(json.dumps(rec), flush=True)
        return rec

    def write(self, path: str | Path) -> None:
        Path(path).write_text("".join(json.dumps(r) + "\n" for r in self.lines))

    @staticmethod
    def table(results: list[dict], ref: dict[str, float], batch: int) -> None:
        """The readable table of the load records, ``ref``: in-process images/s per call."""
        print()
        print(f"{'protocol':<8} {'img/req':>7} {'conc':>4} {'req/s':>9} {'img/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
              f"{'errors':>6} {'RSS MB start->end':>18} {'x adjacent':>10} "
              + " ".join(f"{'x ' + k:>12}" for k in ref))
        for r in results:
            print(f"{r['protocol']:<8} {r['images_per_request']:>7} {r['concurrency']:>4} "
                  f"{r['requests_per_s']:>9.1f} {r['images_per_s']:>9.1f} "
                  f"{r['p50_ms'] or 0:>8.2f} {r['p99_ms'] or 0:>8.2f} {r['errors']:>6} "
                  f"{str(r['rss_mb_start']) + ' -> ' + str(r['rss_mb_end']):>18} {r['ratio_vs_adjacent']:>10.3f} "
                  + " ".join(f"{r['ratio_vs_' + k]:>12.3f}" for k in ref))
        print("in-process images/s: " + ", ".join(f"{k} {v:.1f}" for k, v in ref.items())
              + f" (batch {batch})")
