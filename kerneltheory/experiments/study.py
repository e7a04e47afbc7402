"""The layer every experiment shares: where results go, one run per output folder, caches that are checked
before they are trusted, and figures redrawn only when their data changed.

* **Output folders.** :func:`output_dir`: ``--out DIR`` as given; by default ``./kerneltheory-results/<study>``
  (never the repository's committed results); ``--regenerate`` writes the committed results,
  ``<checkout>/experiments/<study>``, and is refused outside a source checkout. An ``--out`` that is an
  existing file is refused (``ValueError``: the commands exit with status 2).
* **One run per folder.** :class:`OutputLock` holds ``<out>/.kerneltheory.lock`` (with the holder's pid) for
  the run: a second run into the same folder stops with a clear error; the lock of a process that died is
  taken over (an OS file lock, released by the kernel when its holder dies, with the pid written in the file
  for the message).
* **Checked caches.** Every cache file carries a SHA-256 checksum of its content (:func:`write_checked_json`,
  :func:`write_checked_parquet`; parquet keeps it in the schema metadata). A file that cannot be read, whose
  checksum or key does not match, or that a caller's ``validate`` rejects (wrong shape, impossible values)
  is reported with a :class:`CacheWarning` and recomputed: never used silently, never a crash.
* **Figures.** :func:`draw_if_changed` writes ``<figure>.png.digest`` beside each figure, the digest of its
  data and plotting parameters, and skips drawing when the figure and a matching digest are on disk.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path

from ..io import write_atomic, write_text_atomic

RESULTS_DIR = "kerneltheory-results"
LOCK_NAME = ".kerneltheory.lock"
CHECKSUM_KEY = b"kerneltheory.checksum"
KEY_KEY = b"kerneltheory.key"


class CacheWarning(UserWarning):
    """A cache file was unreadable or failed its checks and is being recomputed."""


def reject(path: str | os.PathLike, reason: str) -> None:
    """Warn that the cache file ``path`` is not used (``reason``) and will be recomputed."""
    warnings.warn(f"ignoring cache file {path}: {reason}; recomputing it", CacheWarning, stacklevel=3)


# -- output folders ----------------------------------------------------------------------------------------


def source_checkout() -> Path | None:
    """The repository root when kerneltheory is imported from a source checkout, else None (a wheel)."""
    import kerneltheory

    root = Path(kerneltheory.__file__).resolve().parents[1]
    return root if (root / "pyproject.toml").is_file() and (root / "experiments").is_dir() else None


def check_out(out: str | os.PathLike) -> Path:
    """``out`` as a folder path that is a directory or can be created: ``ValueError`` naming ``--out`` if it is an
    existing file, or if its first existing ancestor is not a writable directory (nothing is created here)."""
    if isinstance(out, str) and not out.strip():  # Path("") is the current directory: name it to mean it
        raise ValueError(f"--out must name a directory, got {out!r} (for the current directory give '.')")
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ValueError(f"--out {out}: a file of that name exists; give a directory")
    parent = path if path.exists() else next((p for p in path.absolute().parents if p.exists()), None)
    if parent is None or not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"--out {out}: cannot create or write the directory ({parent} is not a writable directory)")
    return path


def output_dir(study: str, out: str | os.PathLike | None = None, *, regenerate: bool = False) -> Path:
    """The output folder of ``study``: ``out``; or, with ``regenerate``, the repository's committed
    ``experiments/<study>`` (source checkout only); or ``./kerneltheory-results/<study>``."""
    if regenerate:
        if out is not None:
            raise ValueError("--regenerate writes experiments/ of the source checkout; it takes no --out")
        root = source_checkout()
        if root is None:
            raise ValueError(
                "--regenerate rewrites the committed results in experiments/ of a source checkout, and this "
                "kerneltheory is not imported from one; use --out DIR"
            )
        return check_out(root / "experiments" / study)
    return check_out(Path(RESULTS_DIR) / study if out is None else out)


def add_output_arguments(parser, study: str, default: str = "", *, per_scale: bool = False) -> None:
    """``--out`` and ``--regenerate`` of an experiment command (``default``: what follows the default folder;
    ``per_scale``: the command writes into a ``<scale>`` subfolder of the output folder)."""
    where = " (the results go to its <scale> subfolder)" if per_scale else ""
    parser.add_argument(
        "--out", default=None, metavar="DIR",
        help=f"output folder{where} (default: ./{RESULTS_DIR}/{study}{default}, created if needed)",
    )
    parser.add_argument(
        "--regenerate",
        action="store_true",
        help=f"rewrite the committed results in experiments/{study} of the source checkout",
    )


# -- one run per folder -----------------------------------------------------------------------------------


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _holder(path: Path) -> int | None:
    try:
        return int(path.read_text(encoding="ascii").strip())
    except (OSError, ValueError, UnicodeDecodeError):
        return None


class OutputLock:
    """``with OutputLock(folder):`` — hold ``folder/.kerneltheory.lock`` for a run (see the module)."""

    def __init__(self, folder: str | os.PathLike):
        self.path = Path(folder) / LOCK_NAME
        self._fd: int | None = None

    def _busy(self, pid: int | None) -> ValueError:
        who = f"process {pid}" if pid is not None else "another process"
        return ValueError(
            f"{self.path.parent} is in use by another run ({who}, lock file {self.path}); wait for it to "
            "finish or choose another --out"
        )

    def __enter__(self) -> OutputLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            import fcntl
        except ImportError:  # no OS file locks: an exclusive create, with stale pids taken over
            fcntl = None
        for _ in range(8):
            previous = _holder(self.path)
            if fcntl is None:
                if previous is not None and _alive(previous) and previous != os.getpid():
                    raise self._busy(previous)
                with contextlib.suppress(FileNotFoundError):
                    if previous is not None and not _alive(previous):
                        os.unlink(self.path)
                try:
                    fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o644)
                except FileExistsError:
                    continue
            else:
                fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    raise self._busy(_holder(self.path)) from None
                try:
                    same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
                except FileNotFoundError:
                    same = False
                if not same:  # the previous holder removed the file after we opened it: lock the new one
                    os.close(fd)
                    continue
            if previous is not None and previous != os.getpid() and not _alive(previous):
                warnings.warn(f"taking over the lock {self.path} of process {previous}, which is not running",
                              stacklevel=2)
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode("ascii"))
            os.fsync(fd)
            self._fd = fd
            return self
        raise self._busy(_holder(self.path))

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)  # while still holding it, so a waiting run locks a fresh file
            os.close(self._fd)
            self._fd = None


# -- checked caches ---------------------------------------------------------------------------------------


def digest(obj) -> str:
    """SHA-256 (hex) of the canonical JSON of ``obj`` (NaN and ±inf spelled out; other objects by ``str``)."""
    text = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def frame_digest(frame) -> str:
    """SHA-256 of a DataFrame's columns, dtypes and values (row order counts, the index does not)."""
    import pandas as pd

    h = hashlib.sha256(json.dumps([list(map(str, frame.columns)), list(map(str, frame.dtypes))]).encode())
    h.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return h.hexdigest()


def write_checked_json(path: str | os.PathLike, payload: Mapping) -> Path:
    """``payload`` (a JSON object) with its checksum, written atomically."""
    data = dict(payload)
    return write_text_atomic(path, json.dumps({**data, "checksum": digest(data)}, sort_keys=True) + "\n")


def read_checked_json(
    path: str | os.PathLike, validate: Callable[[dict], str | None] | None = None
) -> dict | None:
    """The payload written by :func:`write_checked_json`, or None (absent; or unreadable, tampered or
    rejected by ``validate``, which returns the reason or None — with a :class:`CacheWarning`)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:  # RecursionError: nesting too deep
        reject(path, f"unreadable ({type(exc).__name__})")
        return None
    if not isinstance(data, dict) or "checksum" not in data:
        reject(path, "not a checksummed JSON object")
        return None
    checksum = data.pop("checksum")
    if checksum != digest(data):
        reject(path, "checksum mismatch (the file was modified)")
        return None
    reason = validate(data) if validate is not None else None
    if reason:
        reject(path, reason)
        return None
    return data


def write_checked_parquet(frame, path: str | os.PathLike, key=None) -> Path:
    """A DataFrame as parquet (no index) with its checksum and the digest of ``key`` in the metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta.update({CHECKSUM_KEY: frame_digest(frame).encode(), KEY_KEY: digest(key).encode()})
    table = table.replace_schema_metadata(meta)
    return write_atomic(path, lambda tmp: pq.write_table(table, tmp))


def read_checked_parquet(path: str | os.PathLike, key=None, validate=None):
    """The DataFrame written by :func:`write_checked_parquet` with the same ``key``, or None (absent, or
    rejected with a :class:`CacheWarning`: unreadable, another key, a checksum mismatch, or ``validate``)."""
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        return None
    try:
        table = pq.read_table(path)
        frame = table.to_pandas()
    except Exception as exc:  # noqa: BLE001 - any failure to parse the file means: recompute it
        reject(path, f"unreadable ({type(exc).__name__})")
        return None
    meta = table.schema.metadata or {}
    if meta.get(KEY_KEY) != digest(key).encode():
        reject(path, "written for another configuration or by other code (its key differs)")
        return None
    if meta.get(CHECKSUM_KEY) != frame_digest(frame).encode():
        reject(path, "checksum mismatch (the file was modified)")
        return None
    reason = validate(frame) if validate is not None else None
    if reason:
        reject(path, reason)
        return None
    return frame


def slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in str(text)).strip("-")


class MissingChunk(LookupError):
    """A chunk that a cached-only :class:`Chunks` needs is not on disk (its part was not run here)."""


class Chunks:
    """``root/chunks/<part>/<name>-<digest of config>.parquet``: a result computed once, reused when its
    checked file is on disk (``computed`` and ``reused`` count the two). ``cached_only``: read, never compute
    (:class:`MissingChunk` where a chunk is missing): a part another run computed, gathered for the shared tables."""

    def __init__(self, root: str | os.PathLike, part: str, cached_only: bool = False):
        self.dir = Path(root) / "chunks" / part
        self.computed = self.reused = 0
        self.cached_only = cached_only

    @staticmethod
    def key(config) -> dict:
        """What a chunk is keyed by: its configuration and the digest of the package's source
        (:func:`kerneltheory.report.source_digest`), so a chunk computed by other code is recomputed, not reused (a
        ``--regenerate`` after a fix reused the chunks of the code before it)."""
        from ..report import source_digest

        return {"config": config, "source": source_digest()}

    def path(self, name: str, config) -> Path:
        return self.dir / f"{slug(name)}-{digest(self.key(config))[:12]}.parquet"

    def load(self, name: str, config):
        return read_checked_parquet(self.path(name, config), self.key(config))

    def save(self, name: str, config, frame):
        write_checked_parquet(frame, self.path(name, config), self.key(config))
        self.computed += 1
        return frame

    def get(self, name: str, config, compute: Callable[[], object]):
        frame = self.load(name, config)
        if frame is not None:
            self.reused += 1
            return frame
        if self.cached_only:
            raise MissingChunk(str(self.path(name, config)))
        return self.save(name, config, compute())


# -- figures ----------------------------------------------------------------------------------------------


def figure_digest(data: Mapping, params=None) -> str:
    """Digest of a figure's inputs: ``data`` maps names to DataFrames (or JSON values), ``params`` the
    plotting parameters."""
    import pandas as pd

    parts = {k: frame_digest(v) if isinstance(v, pd.DataFrame) else digest(v) for k, v in data.items()}
    return digest({"data": parts, "params": params})


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".digest")


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def figure_stale(path: str | os.PathLike, data: Mapping, params=None) -> str | None:
    """The digest to record after drawing ``path`` from (``data``, ``params``), or None when ``path`` and a
    matching ``path.digest`` are on disk already (nothing to draw). The sidecar holds the digest of the inputs and
    the hash of the figure file drawn from them: a figure truncated or replaced since (a 0-byte PNG beside its
    digest was kept) is drawn again."""
    path = Path(path)
    want = figure_digest(data, params)
    with contextlib.suppress(OSError, UnicodeDecodeError):
        lines = _sidecar(path).read_text(encoding="ascii").split()
        if path.is_file() and lines == [want, _file_hash(path)]:
            return None
    return want


def figure_drawn(path: str | os.PathLike, want: str) -> None:
    """Record ``want`` (from :func:`figure_stale`) and the hash of the figure just written to ``path`` beside it."""
    path = Path(path)
    write_text_atomic(_sidecar(path), f"{want}\n{_file_hash(path)}\n")


def draw_if_changed(path: str | os.PathLike, data: Mapping, params, draw: Callable[[Path], object]):
    """Call ``draw(path)`` unless :func:`figure_stale` says the figure is up to date, then record its digest.
    Returns ``(path, drawn)``."""
    path = Path(path)
    want = figure_stale(path, data, params)
    if want is None:
        return path, False
    draw(path)
    figure_drawn(path, want)
    return path, True
