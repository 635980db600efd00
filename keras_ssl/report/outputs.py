"""Every file the report writes, written whole or not at all, and the index of them.

Contract: files go through :class:`Outputs` (``write_text``, ``save_figure``,
``save_image``, or ``record`` for files another library wrote, such as
TensorBoard event files); each is listed once, with a one-line description,
in ``index.md`` under ``--out`` (:meth:`Outputs.write_index`). Paths under
``--out`` are listed relative to it, the others (``RUN/tb/...``) as given.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from keras_ssl.files import atomic_path, write_text_atomic


def pyplot():
    """matplotlib.pyplot on the Agg backend (files only, no display needed)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


class Outputs:
    """The files written so far under ``out`` (and elsewhere), in order."""

    def __init__(self, out, command: str):
        self.out = Path(out)
        self.command = command
        self.files: dict[Path, str] = {}        # path -> description; insertion order kept

    def record(self, path, description: str) -> Path:
        """List ``path`` (already written) in the index."""
        path = Path(path)
        self.files.pop(path, None)
        self.files[path] = description
        return path

    def write_text(self, path, text: str, description: str) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, text)
        return self.record(path, description)

    def save_figure(self, fig, path, description: str, dpi: int = 100) -> Path:
        """Save a matplotlib figure as PNG (exactly ``figsize * dpi`` pixels) and close it."""
        plt = pyplot()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with atomic_path(path) as tmp:
                fig.savefig(tmp, dpi=dpi, format="png")
        finally:
            plt.close(fig)
        return self.record(path, description)

    def save_image(self, array: np.ndarray, path, description: str) -> Path:
        """Save a uint8 [H, W] (gray) or [H, W, 3] (RGB) array as a PNG of exactly that size."""
        from PIL import Image

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arr = np.asarray(array, np.uint8)
        if arr.ndim == 3 and arr.shape[-1] == 1:
            arr = arr[..., 0]
        with atomic_path(path) as tmp:
            Image.fromarray(arr).save(tmp, format="PNG")
        return self.record(path, description)

    def shown(self, path: Path) -> str:
        try:
            return Path(os.path.relpath(path, self.out)).as_posix() if _inside(path, self.out) else str(path)
        except ValueError:      # another drive (Windows)
            return str(path)

    def write_index(self, stopped: str = "") -> Path:
        """``index.md``: the command, then one line per file written (``stopped``: why the
        report stopped early, when it did)."""
        lines = ["# Report", "", f"Written by `{self.command}`.", ""]
        if stopped:
            lines += [f"Stopped early: {stopped}", ""]
        index = self.out / "index.md"
        lines.append("- `index.md`: this list of the files written")
        lines += [f"- `{self.shown(p)}`: {d}" for p, d in self.files.items() if p != index]
        self.out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(index, "\n".join(lines) + "\n")
        return index


def _inside(path: Path, root: Path) -> bool:
    try:
        Path(path).resolve().relative_to(Path(root).resolve())
        return True
    except ValueError:
        return False


def new_files(directory: Path, before: set) -> list[Path]:
    """Files under ``directory`` that are not in ``before`` (a :func:`snapshot`), sorted."""
    return sorted(p for p in snapshot(directory) if p not in before)


def snapshot(directory: Path) -> set:
    """The files under ``directory`` now (empty when it does not exist)."""
    directory = Path(directory)
    return {p for p in directory.rglob("*") if p.is_file()} if directory.is_dir() else set()
