"""Encrypted, content-addressed blob store.

Blobs are kept in a directory, encrypted with AES-256-GCM in fixed-size chunks so that
memory stays constant no matter how large a blob is.

Blob id
    ``hex(HMAC-SHA256(address_key, plaintext))``: 64 lowercase hex characters. The HMAC is
    keyed so that a file name does not reveal which well-known file is stored.

File format (all integers big-endian)::

    header = b"ENCB" | version (1 byte, = 1) | key_id (8 bytes)
             | chunk_size (4 bytes) | nonce_prefix (7 random bytes)          -> 24 bytes
    chunk_i = AESGCM(key).encrypt(nonce_prefix | i (4 bytes) | final (1 byte),
                                  plaintext_i, aad=header)                  -> len(p_i) + 16

Every chunk but the last holds exactly ``chunk_size`` plaintext bytes and has ``final = 0``;
the last one holds 0..chunk_size bytes and has ``final = 1`` (an empty blob is a single empty
final chunk). This is the STREAM construction: the counter detects reordering, the final
flag detects truncation at a chunk boundary and extension, and the header is bound to every
chunk as associated data. A reader recognises the last chunk by end-of-file, so appended
bytes make the real last chunk fail its tag. After the last chunk the plaintext HMAC is
compared with the blob id, so a file copied under another id is rejected too.

Layout: ``root/ab/cd/<blob_id>``; temp files in ``root/.tmp/``. A write goes to a temp file,
is fsynced, renamed into place with ``os.replace`` and the directory is fsynced, so a
half-written file is never visible under a blob id.
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import hmac
import os
import re
import secrets
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from appliance.errors import BlobCorrupt, BlobNotFound, StorageError
from appliance.keys.secret import key_id_for
from appliance.store.files import fsync_dir, storage_error

__all__ = ["BlobInfo", "BlobStore", "key_id_for"]

MAGIC = b"ENCB"
VERSION = 1
KEY_ID_LEN = 8
KEY_LEN = 32
NONCE_PREFIX_LEN = 7
TAG_LEN = 16
_HEADER = struct.Struct(">4sB8sI7s")
HEADER_LEN = _HEADER.size
# A tampered header could otherwise make a reader allocate gigabytes for one chunk.
MAX_CHUNK_SIZE = 1 << 26
# The nonce counter is 4 bytes; reusing a nonce under one key would break GCM.
_MAX_CHUNKS = 1 << 32
_BLOB_ID_RE = re.compile(r"[0-9a-f]{64}")
_SHARD_RE = re.compile(r"[0-9a-f]{2}")
_TMP_DIR = ".tmp"
_TMP_SUFFIX = ".part"

Opener = Callable[[Path, str], BinaryIO]


@dataclass(frozen=True)
class BlobInfo:
    """Result of :meth:`BlobStore.put`; ``created`` is False when the content was deduplicated."""

    blob_id: str
    size: int
    created: bool


def _listing(path: Path) -> list[os.DirEntry[str]]:
    """Directory entries sorted by name; a missing directory is simply empty."""
    try:
        with os.scandir(path) as entries:
            return sorted(entries, key=lambda e: e.name)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise storage_error(exc, "list stored files") from exc


def _shards(path: Path) -> list[Path]:
    # Shard directories are two hex chars; this also skips .tmp.
    return [Path(e.path) for e in _listing(path) if _SHARD_RE.fullmatch(e.name) and e.is_dir()]


def _nonce(prefix: bytes, counter: int, final: bool) -> bytes:
    return prefix + counter.to_bytes(4, "big") + (b"\x01" if final else b"\x00")


def _parse_header(header: bytes) -> tuple[int, bytes]:
    """Check magic, version and chunk size; return (chunk_size, key_id)."""
    if len(header) != HEADER_LEN:
        raise BlobCorrupt(reason="blob header is truncated")
    magic, version, key_id, chunk_size, _prefix = _HEADER.unpack(header)
    if magic != MAGIC or version != VERSION:
        raise BlobCorrupt(reason="not a blob file or unsupported version")
    if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
        raise BlobCorrupt(reason="blob header has an invalid chunk size")
    return chunk_size, key_id


def _discard(path: Path) -> None:
    # Called while another error is propagating; that error is the one worth reporting,
    # and cleanup_partial() removes anything left behind at the next start-up.
    with contextlib.suppress(OSError):
        path.unlink()


def _rechunk(stream: BinaryIO | Iterable[bytes], chunk_size: int) -> Iterator[bytes]:
    """Yield exactly ``chunk_size`` bytes at a time (the last piece may be shorter)."""
    # File objects are iterable too, but by lines: a file without newlines would be one piece.
    read = getattr(stream, "read", None)
    pieces: Iterable[bytes] = iter(lambda: read(chunk_size), b"") if read else stream
    buf = bytearray()
    for piece in pieces:
        if not buf and len(piece) == chunk_size:
            yield bytes(piece)  # common case for file objects: no copy into the buffer
            continue
        buf += piece
        while len(buf) >= chunk_size:
            with memoryview(buf) as view:  # one copy instead of two
                chunk = bytes(view[:chunk_size])
            del buf[:chunk_size]
            yield chunk
    if buf:
        yield bytes(buf)


class _Source:
    """The caller's chunks, remembering whether they raised.

    A dropped upload connection raises an OSError too; that is the caller's error to see,
    not a storage fault to report as "disk full" or "storage error".
    """

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self.failed = False

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._chunks
        except BaseException:
            self.failed = True
            raise


def _mark_last(chunks: Iterator[bytes]) -> Iterator[tuple[bytes, bool]]:
    """Pair each chunk with "is last"; an empty input becomes one empty last chunk."""
    prev = next(chunks, None)
    if prev is None:
        yield b"", True
        return
    for chunk in chunks:
        yield prev, False
        prev = chunk
    yield prev, True


class BlobStore:
    """Encrypted, content-addressed, chunked blob store rooted at a directory."""

    def __init__(
        self,
        root: Path,
        keys: dict[bytes, bytes],
        current_key_id: bytes,
        address_key: bytes,
        chunk_size: int = 1 << 20,
        opener: Opener | None = None,
    ) -> None:
        """Create a store; ``keys`` maps 8-byte key ids to 32-byte AES keys.

        ``current_key_id`` picks the key for new writes. Both stay public, mutable
        attributes: during a key rotation ``keys`` holds the old and the new key.
        ``opener(path, mode)`` opens temp files for writing; it defaults to the builtin
        ``open`` and exists for fault injection.
        """
        for key_id, key in keys.items():
            if len(key_id) != KEY_ID_LEN or len(key) != KEY_LEN:
                raise ValueError("keys must map 8-byte key ids to 32-byte keys")
        if current_key_id not in keys:
            raise ValueError("current_key_id is not in keys")
        if len(address_key) != KEY_LEN:
            raise ValueError("address_key must be 32 bytes")
        if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
            raise ValueError(f"chunk_size must be between 1 and {MAX_CHUNK_SIZE}")
        self.root = Path(root)
        # Public and mutable on purpose: key rotation adds the new key, re-encrypts, then
        # switches current_key_id and drops the old key, all on the open store.
        self.keys = keys
        self.current_key_id = current_key_id
        self._address_key = address_key
        self._chunk_size = chunk_size
        self._opener: Opener = opener or builtins.open  # type: ignore[assignment]
        self._tmp = self.root / _TMP_DIR

    def _cipher(self, key_id: bytes) -> AESGCM | None:
        key = self.keys.get(key_id)
        return None if key is None else AESGCM(key)

    def _path(self, blob_id: str) -> Path:
        # Validating before any filesystem access rules out path traversal via the id.
        if not isinstance(blob_id, str) or not _BLOB_ID_RE.fullmatch(blob_id):
            raise BlobNotFound(reason="malformed blob id")
        return self.root / blob_id[:2] / blob_id[2:4] / blob_id

    def put(self, stream: BinaryIO | Iterable[bytes]) -> BlobInfo:
        """Store the bytes of a file object or an iterable of bytes; return its BlobInfo.

        Reads ``chunk_size`` bytes at a time, so memory does not grow with the blob size.
        Raises DiskFull when the disk or quota is full and StorageError on other OS errors;
        in every failure case no file is left under a blob id or in the temp directory.
        """
        chunks = _rechunk(stream, self._chunk_size)
        tmp, blob_id, size = self._write_temp(chunks, self.current_key_id)
        path = self._path(blob_id)
        if path.exists():
            _discard(tmp)
            return BlobInfo(blob_id, size, created=False)
        self._commit(tmp, path)
        return BlobInfo(blob_id, size, created=True)

    def _write_temp(self, chunks: Iterator[bytes], key_id: bytes) -> tuple[Path, str, int]:
        """Encrypt ``chunks`` into a fresh, fsynced temp file; return (path, blob id, size)."""
        try:
            self._tmp.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise storage_error(exc, "create the temp directory") from exc
        tmp = self._tmp / (secrets.token_hex(16) + _TMP_SUFFIX)
        source = _Source(chunks)
        try:
            return tmp, *self._encrypt_to(tmp, iter(source), key_id)
        except BaseException as exc:
            _discard(tmp)  # whoever failed, never leave a partial temp file
            if isinstance(exc, OSError) and not source.failed:
                raise storage_error(exc, "write a blob") from exc
            raise

    def _encrypt_to(self, tmp: Path, chunks: Iterator[bytes], key_id: bytes) -> tuple[str, int]:
        header = _HEADER.pack(
            MAGIC, VERSION, key_id, self._chunk_size, secrets.token_bytes(NONCE_PREFIX_LEN)
        )
        prefix = header[-NONCE_PREFIX_LEN:]
        cipher = self._cipher(key_id)
        if cipher is None:
            raise ValueError("the write key is not in keys")
        mac = hmac.new(self._address_key, digestmod=hashlib.sha256)
        size = 0
        f = self._opener(tmp, "xb")
        try:
            f.write(header)
            for counter, (chunk, last) in enumerate(_mark_last(chunks)):
                if counter >= _MAX_CHUNKS:
                    raise StorageError("The file is too large to store.")
                mac.update(chunk)
                size += len(chunk)
                f.write(cipher.encrypt(_nonce(prefix, counter, last), chunk, header))
            f.flush()
            os.fsync(f.fileno())
        except BaseException:
            with contextlib.suppress(OSError):  # the write error is the one to report
                f.close()
            raise
        f.close()  # may report a deferred write error; the caller maps it
        return mac.hexdigest(), size

    def _commit(self, tmp: Path, path: Path) -> None:
        """Atomically move a finished temp file to ``path`` and make the rename durable."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, path)
        except OSError as exc:
            _discard(tmp)
            raise storage_error(exc, "store a blob") from exc
        try:
            fsync_dir(path.parent)
        except OSError as exc:
            # The file itself is complete and fsynced, so it may stay; the caller learns
            # that durability of the rename is not guaranteed.
            raise storage_error(exc, "sync the blob directory") from exc

    def open(self, blob_id: str) -> Iterator[bytes]:
        """Return an iterator of the blob's plaintext chunks, each verified before it is yielded.

        Raises BlobNotFound (missing or malformed id) and, for a bad header or unknown key,
        BlobCorrupt right away; tag failures, truncation and trailing bytes raise BlobCorrupt
        during iteration. A file stored under the wrong id is detected after the last chunk.
        """
        f, header = self._open_with_header(blob_id)
        try:
            chunk_size, key_id = _parse_header(header)
            if self._cipher(key_id) is None:
                raise BlobCorrupt(reason="blob is encrypted under an unknown key")
        except BaseException:
            f.close()
            raise
        return self._decrypt(f, blob_id, header, chunk_size)

    def read(self, blob_id: str) -> bytes:
        """Return the whole plaintext of a blob (use :meth:`open` for large blobs)."""
        return b"".join(self.open(blob_id))

    def exists(self, blob_id: str) -> bool:
        """Return True if a blob with this id is stored; malformed ids are never stored."""
        try:
            return self._path(blob_id).is_file()
        except BlobNotFound:
            return False

    def key_id_of(self, blob_id: str) -> bytes:
        """Return the id of the key a blob is encrypted under (read from its header)."""
        f, header = self._open_with_header(blob_id)
        f.close()
        return _parse_header(header)[1]

    def _open_with_header(self, blob_id: str) -> tuple[BinaryIO, bytes]:
        """Open a blob file and read its header bytes; the caller closes the file."""
        path = self._path(blob_id)
        try:
            f = builtins.open(path, "rb")  # noqa: SIM115 - returned to the caller
        except FileNotFoundError as exc:
            raise BlobNotFound(blob_id=blob_id) from exc
        except OSError as exc:
            raise storage_error(exc, "open a blob") from exc
        try:
            return f, f.read(HEADER_LEN)
        except OSError as exc:
            f.close()
            raise storage_error(exc, "read a blob") from exc

    def _decrypt(
        self, f: BinaryIO, blob_id: str, header: bytes, chunk_size: int
    ) -> Iterator[bytes]:
        cipher = self._cipher(header[5 : 5 + KEY_ID_LEN])
        if cipher is None:  # the key was dropped after open(): same answer as open() gives
            raise BlobCorrupt(reason="blob is encrypted under an unknown key")
        prefix = header[-NONCE_PREFIX_LEN:]
        mac = hmac.new(self._address_key, digestmod=hashlib.sha256)
        block_len = chunk_size + TAG_LEN
        with f:
            try:
                block = f.read(block_len)
                counter = 0
                while True:
                    # Look one block ahead: only end-of-file tells which chunk is the last.
                    following = f.read(block_len) if len(block) == block_len else b""
                    last = not following
                    plain = self._open_chunk(cipher, prefix, counter, last, block, header)
                    mac.update(plain)
                    yield plain
                    if last:
                        break
                    block, counter = following, counter + 1
            except OSError as exc:
                raise storage_error(exc, "read a blob") from exc
        if not hmac.compare_digest(mac.hexdigest(), blob_id):
            raise BlobCorrupt(reason="blob content does not match its id")

    @staticmethod
    def _open_chunk(
        cipher: AESGCM, prefix: bytes, counter: int, last: bool, block: bytes, header: bytes
    ) -> bytes:
        if len(block) < TAG_LEN or counter >= _MAX_CHUNKS:
            raise BlobCorrupt(reason="blob is truncated")
        try:
            return cipher.decrypt(_nonce(prefix, counter, last), block, header)
        except InvalidTag as exc:
            raise BlobCorrupt(reason="blob failed its integrity check") from exc

    def delete(self, blob_id: str) -> bool:
        """Delete a blob; return False if it did not exist. Malformed ids raise BlobNotFound."""
        path = self._path(blob_id)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise storage_error(exc, "delete a blob") from exc
        with contextlib.suppress(OSError):  # best effort: the unlink itself succeeded
            fsync_dir(path.parent)
        return True

    def iter_ids(self) -> Iterator[str]:
        """Yield the ids of all stored blobs in sorted order (temp files are never included)."""
        for outer in _shards(self.root):
            for inner in _shards(outer):
                prefix = outer.name + inner.name
                for entry in _listing(inner):
                    name = entry.name
                    if _BLOB_ID_RE.fullmatch(name) and name.startswith(prefix) and entry.is_file():
                        yield name

    def reencrypt(self, blob_id: str, new_key_id: bytes) -> bool:
        """Re-encrypt one blob under ``new_key_id`` atomically; False if it already uses it.

        The blob is decrypted and verified in full before the new file replaces the old
        one, so a crash or error leaves either the old or the new file, never a mix.
        """
        if new_key_id not in self.keys:
            raise ValueError("new_key_id is not in keys")
        if self.key_id_of(blob_id) == new_key_id:
            return False
        plaintext = _rechunk(self.open(blob_id), self._chunk_size)
        tmp, _mac, _size = self._write_temp(plaintext, new_key_id)
        self._commit(tmp, self._path(blob_id))
        return True

    def cleanup_partial(self) -> int:
        """Remove temp files left by interrupted writes; return how many were removed.

        Call at start-up only: it also removes the temp file of a write in progress.
        """
        removed = 0
        for entry in _listing(self._tmp):
            if not entry.is_file(follow_symlinks=False):
                continue
            try:
                os.unlink(entry.path)
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise storage_error(exc, "remove a partial write") from exc
            removed += 1
        return removed
