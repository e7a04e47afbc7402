"""Atomic file writing: results are written to a temporary file next to their destination and renamed over
it, so an interrupted run never leaves a truncated file in place of a good one. Every writer of results in
the package (text, JSON, parquet, figures, torch checkpoints) goes through :func:`write_atomic`, which
fsyncs the new file before the rename and its folder after it, so a crash right after a write loses neither
the file's bytes nor its name."""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def write_atomic(path: str | os.PathLike, writer: Callable[[str], object]) -> Path:
    """Call ``writer(tmp)`` on a fresh temporary file in ``path``'s folder, then rename it to ``path``.

    The folder is created if needed; the file gets mode 0644 (``mkstemp`` creates 0600). Whatever ``writer``
    wrote is fsynced before the rename and the folder after it. If ``writer`` raises (or the run is
    interrupted), the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        writer(tmp)
        os.chmod(tmp, 0o644)
        fsync_path(tmp)
        os.replace(tmp, path)
        fsync_path(path.parent)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError) and not exc.filename and exc.errno is not None:  # a write's error (a full disk)
            raise OSError(exc.errno, exc.strerror, str(path)) from exc  # names no file: name the one being written
        raise
    return path


def fsync_path(path: str | os.PathLike) -> None:
    """Flush a file's or a folder's contents to disk (a folder's fsync makes a rename in it durable)."""
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if os.path.isdir(path) else 0)
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    return write_atomic(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def _strict(obj):
    """``obj`` with every non-finite float (NaN, ±inf) replaced by None, recursively through dicts, lists, tuples."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_strict(v) for v in obj]
    return obj


def write_json_atomic(path: str | os.PathLike, obj, strict: bool = False) -> Path:
    """``obj`` as indented JSON with sorted keys (anything else as ``str``). ``strict``: standard JSON, every
    non-finite number written as null (Python's json writes NaN and Infinity, which strict parsers reject); the
    default keeps them, for files this package reads back itself."""
    if strict:
        return write_text_atomic(path, json.dumps(_strict(obj), indent=2, sort_keys=True, default=str,
                                                  allow_nan=False) + "\n")
    return write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_parquet_atomic(frame, path: str | os.PathLike) -> Path:
    """A pandas DataFrame to parquet (without its index)."""
    return write_atomic(path, lambda tmp: frame.to_parquet(tmp, index=False))


def save_figure_atomic(fig, path: str | os.PathLike, **savefig_kwargs) -> Path:
    """A matplotlib figure as PNG (``savefig`` keyword arguments such as ``dpi`` pass through)."""
    return write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", **savefig_kwargs))


def save_torch_atomic(obj, path: str | os.PathLike) -> Path:
    """Any object ``torch.save`` accepts (a checkpoint, a cached dataset)."""
    import torch

    return write_atomic(path, lambda tmp: torch.save(obj, tmp))
