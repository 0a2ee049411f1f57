"""Shared file helpers: atomic writes, hashing, provenance, opening HDF5 and torch files, and the errors for a
missing or unreadable file."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from mgenet import MgenetError, __version__

# ----------------------------------------------------------------------------------------------------------- helpers


def glob_escape(name: str) -> str:
    """``name`` with glob metacharacters bracketed, so it matches only itself in a pattern."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


class DiskFullError(MgenetError):
    """A write that ran out of disk space (or quota): the message names the file and the space left."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        free = free_mb(self.path.parent)
        super().__init__(f"{path}: no space left on device ({free:.1f} MB free); free some space (or move results/ "
                         f"to a larger disk) and run again.")


def free_mb(folder: str | os.PathLike) -> float:
    """Free space of the file system holding ``folder``, in MB (nan if it cannot be read)."""
    try:
        return shutil.disk_usage(folder).free / 1e6
    except OSError:
        return float("nan")


def disk_full(e: BaseException | None) -> bool:
    """Whether ``e`` (or an exception it was raised from or during) is a write refused for lack of space: an OSError
    with ENOSPC/EDQUOT, or a library's error that only quotes it (HDF5, torch's zip writer, Arrow)."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        text = str(e)
        if "No space left on device" in text or "errno = 28," in text or "Disk quota exceeded" in text:
            return True
        e = e.__cause__ or e.__context__
    return False


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    A job killed outright (SIGKILL, a node lost) cannot clean up its temporary file; the next writer of the same
    target removes such leftovers first (Snakemake never runs two jobs for one output at once). A job whose Snakemake
    run is gone does not rename (:mod:`mgenet.io.owner`), and a write that runs out of disk space is
    :class:`DiskFullError` (the temporary file removed first, so the error line fits in a log on the same disk).
    """
    from mgenet.io import owner

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{glob_escape(path.name)}.tmp*"):
        stale.unlink(missing_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        try:
            yield tmp
        except Exception as e:
            if isinstance(e, DiskFullError):
                tmp.unlink(missing_ok=True)
                raise
            if disk_full(e):
                tmp.unlink(missing_ok=True)
                raise DiskFullError(path) from e
            raise
        owner.ensure_alive(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


class _SpaceGuardedFile(io.RawIOBase):
    """The file under an HDF5 file being written, seen by HDF5 through h5py's file-object driver.

    HDF5 (2.0, h5py 3.16) crashes the process (a segmentation fault) closing a file whose writes failed, and the job's
    log, often on the same full disk, stays empty. So a failed write does not reach HDF5: it is recorded, the file is
    emptied (its space freed) and later writes are dropped; :func:`create_h5` raises :class:`DiskFullError` once
    HDF5 has closed the file cleanly.
    """

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.raw = open(path, "w+b", buffering=0)  # noqa: SIM115 - closed by close()
        self.error: OSError | None = None

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.raw.seek(offset, whence)

    def tell(self) -> int:
        return self.raw.tell()

    def readinto(self, b) -> int:
        return self.raw.readinto(b)

    def _failed(self, e: OSError) -> None:
        if self.error is None:
            self.error = e
            self.raw.truncate(0)

    def write(self, b) -> int:
        view = memoryview(b).cast("B")
        if self.error is None:
            try:
                done = 0
                while done < len(view):  # an unbuffered write may write part of it
                    done += self.raw.write(view[done:])
            except OSError as e:
                self._failed(e)
        return len(view)

    def truncate(self, size: int | None = None) -> int:
        if self.error is None:
            try:
                return self.raw.truncate(size)
            except OSError as e:
                self._failed(e)
        return size if size is not None else self.tell()

    def flush(self) -> None:
        pass  # unbuffered: os.fsync is not asked for (a rename after close is as durable as the other writers)

    def close(self) -> None:
        if not self.closed:
            self.raw.close()
        super().close()


@contextlib.contextmanager
def create_h5(path: str | os.PathLike) -> Iterator[h5py.File]:
    """A new HDF5 file written atomically (:func:`atomic_path`): it appears at ``path`` only if the block succeeds.

    Raises:
        DiskFullError: the disk filled up (nothing is left behind, and HDF5 does not crash; see
            :class:`_SpaceGuardedFile`).
    """
    with atomic_path(path) as tmp:
        raw = _SpaceGuardedFile(tmp)
        try:
            with h5py.File(raw, "w") as f:
                yield f
        except Exception:
            if raw.error is not None:  # what failed next read back what was never written
                raise DiskFullError(path) from raw.error
            raise
        finally:
            raw.close()
        if raw.error is not None:
            raise DiskFullError(path) from raw.error


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def provenance(config_hash: str = "", **extra: Any) -> dict[str, Any]:
    """Attributes every artifact carries: package version, config hash and stage-specific settings."""
    attrs: dict[str, Any] = {"mgenet_version": __version__, "config_hash": config_hash}
    attrs.update(extra)
    return attrs


def write_json(obj: Any, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


class MissingFileError(MgenetError):
    """An input file that does not exist: the message names it and the fix (``otherwise``). Where the file is one of
    the workflow's artifacts, the CLI names the rule that makes it instead (:func:`mgenet.cli.rules.explain`)."""

    def __init__(self, path: str | os.PathLike, what: str, otherwise: str = "") -> None:
        self.path, self.what, self.otherwise = path, what, otherwise
        super().__init__(f"{path}: {what} not found" + (f"; {otherwise}" if otherwise else "."))


class UnreadableFileError(MgenetError):
    """An input that exists but cannot be read (truncated, corrupt, tampered with): the message names it and how to
    remake it (``fix``; without one, the CLI names the rule that remakes an artifact of the workflow)."""

    def __init__(self, path: str | os.PathLike, what: str, reason: str, fix: str = "") -> None:
        self.path, self.what, self.reason, self.fix = path, what, reason, fix
        super().__init__(f"{path}: {what} is unreadable ({reason}); {fix or 'replace it with a good copy'}.")


def first_line(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return (lines[0] if lines else type(e).__name__)[:240]


@contextlib.contextmanager
def open_h5(path: str | os.PathLike, what: str) -> Iterator[h5py.File]:
    """An HDF5 artifact opened for reading. A missing file, or one that HDF5 cannot open (cut short by a full disk or a
    copy interrupted, not HDF5 at all), is an error naming the file (the CLI adds the rule that remakes it), not
    h5py's OSError.

    Raises:
        MgenetError: the file is missing or unreadable.
    """
    path = Path(path)
    if not path.exists():
        raise MissingFileError(path, what)
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise UnreadableFileError(path, what, first_line(e)) from e
    with f:
        yield f


def read_attrs(path: str | os.PathLike, what: str) -> dict[str, Any]:
    """The provenance attributes of an HDF5 artifact (see :func:`open_h5` for the errors)."""
    with open_h5(path, what) as f:
        return dict(f.attrs)


def save_torch(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` written atomically (:func:`atomic_path`). Through a Python file object, so a full disk is the
    OSError that :class:`DiskFullError` recognises (given a path, torch's writer reports only "unexpected pos")."""
    import torch

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)


def load_torch(path: str | os.PathLike, what: str, map_location: Any = "cpu", keys: tuple[str, ...] = (),
               fix: str = "", otherwise: str = "") -> dict[str, Any]:
    """A checkpoint written by mgenet, loaded with ``torch.load(weights_only=True)``.

    A file that is not a checkpoint, is cut short, or pickles anything but tensors and plain containers (tampered
    with, or not ours) is refused with one error naming it and how to remake it, never unpickled unsafely.

    Args:
        keys: top-level keys the checkpoint must have.
        fix: the remedy to name (default: the rule that makes the file).
        otherwise: what makes the file, for a missing file of a name no rule makes (see :class:`MissingFileError`).
    Raises:
        MgenetError: missing, unreadable or unsafe file, or one without ``keys``.
    """
    import pickle

    import torch

    path = Path(path)
    if not path.exists():
        raise MissingFileError(path, what, otherwise=otherwise)
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        # torch's message is mostly advice to load unsafely; keep its one informative line
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        unsafe = [ln for ln in lines if "global" in ln.lower() and "weights only" not in ln.lower()]
        if unsafe:
            reason = f"it pickles objects other than tensors, which safe loading refuses: {unsafe[0][:200]}"
        else:
            detail = next((ln for ln in lines if "Unsupported operand" in ln or "load key" in ln), "")
            reason = f"not a PyTorch checkpoint or cut short{f': {detail[:200]}' if detail else ''}"
        raise UnreadableFileError(path, what, reason, fix) from e
    except (RuntimeError, OSError, EOFError, ValueError, KeyError, IndexError, TypeError, AttributeError) as e:
        raise UnreadableFileError(path, what, f"not a PyTorch checkpoint or cut short: {first_line(e)}", fix) from e
    if not isinstance(ckpt, dict) or any(k not in ckpt for k in keys):
        lacking = sorted(set(keys) - set(ckpt)) if isinstance(ckpt, dict) else list(keys)
        raise UnreadableFileError(path, what, f"not an mgenet {what}: no {', '.join(lacking)}", fix)
    return ckpt


def _plain(v: Any) -> Any:
    """An HDF5 attribute as a plain Python value (list, int, float, str), as ``torch.load(weights_only=True)`` and
    JSON accept."""
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    return v.decode() if isinstance(v, bytes) else v


def agreed_attrs(paths: list[str | os.PathLike], keys: tuple[str, ...], what: str) -> dict[str, Any]:
    """The provenance ``keys`` that every HDF5 file of ``paths`` carries, as plain values; keys some file lacks are
    left out.

    Raises:
        MgenetError: two files disagree on a key (they were not made with the same settings).
    """
    out: dict[str, Any] = {}
    first: dict[str, str] = {}
    missing: set[str] = set()
    for path in paths:
        with open_h5(path, what) as f:
            attrs = {k: _plain(f.attrs[k]) for k in keys if k in f.attrs}
        missing |= set(keys) - set(attrs)
        for k, v in attrs.items():
            if k in out and out[k] != v:
                raise MgenetError(f"{path}: {what} made with {k}={v!r}, but {first[k]} with {k}={out[k]!r}; "
                                  f"rebuild them all with the same settings.")
            out.setdefault(k, v)
            first.setdefault(k, str(path))
    return {k: v for k, v in out.items() if k not in missing}


