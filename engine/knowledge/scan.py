"""Malware scanning hooks: YARA rules from an admin folder, and ClamAV's clamd socket.

A scanner answers :class:`ScanVerdict`; a hit quarantines the file (the appliance keeps the
blob, marks the document and tells the uploader which rule matched). Scanners read the file
in bounded windows, so a large upload never sits in memory whole.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from engine.knowledge.errors import ScannerUnavailable

_WINDOW = 32 * 1024 * 1024
_OVERLAP = 64 * 1024


@dataclass(frozen=True)
class ScanVerdict:
    """What a scanner found: ``clean`` or the names of what matched."""

    scanner: str
    matches: tuple[str, ...] = ()

    @property
    def clean(self) -> bool:
        """True when nothing matched."""
        return not self.matches


class Scanner(Protocol):
    """A malware scanner the ingestion pipeline consults before parsing."""

    name: str

    def scan(self, file: BinaryIO) -> ScanVerdict:
        """Scan the whole of ``file`` (seekable; left at offset 0)."""
        ...


class YaraScanner:
    """Every ``*.yar``/``*.yara`` file of a folder, compiled once."""

    name = "yara"

    def __init__(self, rules_dir: Path) -> None:
        import yara

        files = sorted(p for p in rules_dir.glob("*") if p.suffix in {".yar", ".yara"})
        self.rule_files = [p.name for p in files]
        try:
            self._rules = yara.compile(filepaths={p.stem: str(p) for p in files}) if files else None
        except yara.Error as exc:
            raise ScannerUnavailable(
                f"The YARA rules in {rules_dir} do not compile: {exc}"
            ) from exc

    def scan(self, file: BinaryIO) -> ScanVerdict:
        """Match the rules over the file in overlapping windows."""
        if self._rules is None:
            return ScanVerdict(self.name)
        found: set[str] = set()
        file.seek(0)
        carry = b""
        while True:
            block = file.read(_WINDOW)
            if not block:
                break
            data = carry + block
            found.update(m.rule for m in self._rules.match(data=data))
            carry = data[-_OVERLAP:]
        file.seek(0)
        return ScanVerdict(self.name, tuple(sorted(found)))


class ClamdScanner:
    """ClamAV's daemon over its UNIX socket (``INSTREAM``: the file is streamed, not shared)."""

    name = "clamav"

    def __init__(self, socket_path: Path, timeout: float = 60.0) -> None:
        self.socket_path = socket_path
        self.timeout = timeout

    def scan(self, file: BinaryIO) -> ScanVerdict:
        """Stream the file to clamd and read its verdict."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(self.timeout)
                sock.connect(str(self.socket_path))
                sock.sendall(b"zINSTREAM\0")
                file.seek(0)
                while block := file.read(1 << 16):
                    sock.sendall(struct.pack(">I", len(block)) + block)
                sock.sendall(struct.pack(">I", 0))
                reply = b""
                while chunk := sock.recv(4096):
                    reply += chunk
                    if reply.endswith(b"\0"):
                        break
        except OSError as exc:
            raise ScannerUnavailable(
                f"clamd at {self.socket_path} cannot be reached: {exc}."
            ) from exc
        finally:
            file.seek(0)
        text = reply.rstrip(b"\0").decode("utf-8", "replace").strip()
        if text.endswith("FOUND"):
            signature = text.removeprefix("stream:").removesuffix("FOUND").strip()
            return ScanVerdict(self.name, (signature,))
        if text.endswith("OK"):
            return ScanVerdict(self.name)
        raise ScannerUnavailable(f"clamd answered something unexpected: {text[:200]!r}.")


def scan_all(scanners: Sequence[Scanner], file: BinaryIO) -> ScanVerdict | None:
    """The first verdict with a match, or None when every scanner found the file clean."""
    for scanner in scanners:
        verdict = scanner.scan(file)
        if not verdict.clean:
            return verdict
    return None
