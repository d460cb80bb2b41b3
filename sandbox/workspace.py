"""A run's private writable directory, and race-free file access confined to it.

Every path from a caller (a model, really) is relative; it is walked one component at a time
with ``openat``-style ``dir_fd`` calls and ``O_NOFOLLOW``, so neither ``..``, an absolute path,
a symlink planted by sandboxed code, nor one swapped in between a check and the use can lead
outside the workspace.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from sandbox.errors import WorkspaceFileMissing, WorkspaceFileTooLarge, WorkspacePathInvalid

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True)
class WorkspaceEntry:
    path: str
    size: int


def _parts(relative: str) -> list[str]:
    if not relative or "\x00" in relative:
        raise WorkspacePathInvalid("An empty path is not a workspace file.", path=relative)
    pure = PurePosixPath(relative)
    if pure.is_absolute():
        raise WorkspacePathInvalid(f"{relative!r} is absolute; use a path inside the workspace.")
    parts = [p for p in pure.parts if p not in ("", ".")]
    if not parts or any(p == ".." for p in parts):
        raise WorkspacePathInvalid(f"{relative!r} leaves the workspace.", path=relative)
    return parts


class Workspace:
    """A directory that sandboxed code may write; removed by :meth:`remove` unless kept."""

    def __init__(self, path: Path, owner: tuple[int, int] | None = None) -> None:
        self.path = path
        self.owner = owner

    @classmethod
    def create(cls, root: Path | None = None, owner: tuple[int, int] | None = None) -> Workspace:
        """A fresh private directory under ``root`` (the system temp dir when None); when
        ``owner`` is given (running as root) it is handed to the sandbox's uid and gid."""
        if root is not None:
            root.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = Path(tempfile.mkdtemp(prefix="run-", dir=root))
        if owner is not None:
            os.chown(path, *owner)
        path.chmod(0o700)
        return cls(path, owner)

    def _open_parent(self, parts: list[str], create: bool) -> int:
        """An fd of the directory holding the last component, every step ``O_NOFOLLOW``.
        A missing directory is ``FileNotFoundError`` (reads) or created (writes); a link, a
        non-directory or a race with sandboxed code is :class:`WorkspacePathInvalid`."""
        fd = os.open(self.path, _DIR_FLAGS)
        try:
            for name in parts[:-1]:
                try:
                    nxt = self._step(fd, name, create)
                except FileNotFoundError:
                    if not create:
                        raise
                    raise WorkspacePathInvalid(
                        f"{'/'.join(parts)!r} changed while it was being opened."
                    ) from None
                except OSError as exc:
                    raise WorkspacePathInvalid(
                        f"{'/'.join(parts)!r} goes through a link or a non-directory."
                    ) from exc
                os.close(fd)
                fd = nxt
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _step(self, fd: int, name: str, create: bool) -> int:
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=fd)
        except FileNotFoundError:
            if not create:
                raise
        made = True
        try:
            os.mkdir(name, 0o755, dir_fd=fd)
        except FileExistsError:
            made = False
        nxt = os.open(name, _DIR_FLAGS, dir_fd=fd)
        if made and self.owner is not None:
            os.fchown(nxt, *self.owner)
        return nxt

    def write(self, relative: str, data: bytes, max_bytes: int | None = None) -> WorkspaceEntry:
        """Create or replace a regular file; a symlink in the way is refused, never followed."""
        parts = _parts(relative)
        if max_bytes is not None and len(data) > max_bytes:
            raise WorkspaceFileTooLarge(f"{relative} would be {len(data)} bytes (max {max_bytes}).")
        parent = self._open_parent(parts, create=True)
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
            try:
                fd = os.open(parts[-1], flags, 0o644, dir_fd=parent)
            except OSError as exc:
                raise WorkspacePathInvalid(
                    f"{relative!r} is a link or not a regular file; it is left alone."
                ) from exc
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    raise WorkspacePathInvalid(f"{relative!r} is not a regular file.")
                if self.owner is not None:
                    os.fchown(fd, *self.owner)
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
        finally:
            os.close(parent)
        return WorkspaceEntry("/".join(parts), len(data))

    def read(self, relative: str, max_bytes: int) -> bytes:
        """A regular file's bytes (links refused); over ``max_bytes`` is a typed error."""
        parts = _parts(relative)
        try:
            parent = self._open_parent(parts, create=False)
        except FileNotFoundError:
            raise WorkspaceFileMissing(f"No file {relative!r} in the workspace.") from None
        try:
            try:
                fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
            except FileNotFoundError:
                raise WorkspaceFileMissing(f"No file {relative!r} in the workspace.") from None
            except OSError as exc:
                raise WorkspacePathInvalid(f"{relative!r} is a link; it is not followed.") from exc
            try:
                info = os.fstat(fd)
                if not stat.S_ISREG(info.st_mode):
                    raise WorkspacePathInvalid(f"{relative!r} is not a regular file.")
                if info.st_size > max_bytes:
                    raise WorkspaceFileTooLarge(
                        f"{relative} is {info.st_size} bytes; the limit is {max_bytes}."
                    )
                chunks = []
                while chunk := os.read(fd, 65536):
                    chunks.append(chunk)
                return b"".join(chunks)[:max_bytes]
            finally:
                os.close(fd)
        finally:
            os.close(parent)

    def entries(self) -> list[WorkspaceEntry]:
        """Regular files, sorted by path; links and special files are not listed."""
        return sorted(self._walk(), key=lambda e: e.path)

    def _walk(self) -> Iterator[WorkspaceEntry]:
        for dirpath, dirnames, filenames in os.walk(self.path, followlinks=False):
            dirnames.sort()
            for name in filenames:
                full = Path(dirpath) / name
                info = full.lstat()
                if stat.S_ISREG(info.st_mode):
                    yield WorkspaceEntry(full.relative_to(self.path).as_posix(), info.st_size)

    def snapshot(self) -> dict[str, tuple[int, int]]:
        """(mtime_ns, size) per file, to tell which files a run produced or changed."""
        found: dict[str, tuple[int, int]] = {}
        for dirpath, _dirs, filenames in os.walk(self.path, followlinks=False):
            for name in filenames:
                full = Path(dirpath) / name
                info = full.lstat()
                if stat.S_ISREG(info.st_mode):
                    found[full.relative_to(self.path).as_posix()] = (info.st_mtime_ns, info.st_size)
        return found

    def usage_bytes(self) -> int:
        """Bytes the workspace's files take (for the workspace quota)."""
        total = 0
        for dirpath, _dirs, filenames in os.walk(self.path, followlinks=False):
            for name in filenames:
                try:
                    total += (Path(dirpath) / name).lstat().st_blocks * 512
                except FileNotFoundError:
                    continue
        return total

    def write_inputs(self, files: Mapping[str, bytes]) -> None:
        """Put the caller's input files in place before a run."""
        for relative, data in files.items():
            self.write(relative, data)

    def remove(self) -> None:
        """Delete the directory and everything in it (links are removed, not followed)."""
        shutil.rmtree(self.path, ignore_errors=False, onerror=_force_remove)


def _force_remove(function: object, path: str, exc_info: object) -> None:
    # Sandboxed code may leave a directory without write permission; fix it and retry.
    parent = os.path.dirname(path)
    os.chmod(parent, 0o700)
    if os.path.isdir(path) and not os.path.islink(path):
        os.chmod(path, 0o700)
        shutil.rmtree(path, onerror=_force_remove)
    else:
        os.unlink(path)
