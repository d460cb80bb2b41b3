"""Encrypted blob store: round trips, tamper detection, fault injection, rotation, memory."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance.errors import BlobCorrupt, BlobNotFound, DiskFull, StorageError
from appliance.store.blobs import HEADER_LEN, TAG_LEN, BlobStore, key_id_for

KEY_A = bytes(range(32))
KEY_B = bytes(range(100, 132))
ADDRESS_KEY = b"\x5a" * 32
CHUNK = 4096
BLOCK = CHUNK + TAG_LEN


def make_store(
    root: Path,
    keys: tuple[bytes, ...] = (KEY_A,),
    current: bytes | None = None,
    chunk_size: int = CHUNK,
    opener: Any = None,
) -> BlobStore:
    return BlobStore(
        root,
        {key_id_for(k): k for k in keys},
        key_id_for(current or keys[0]),
        ADDRESS_KEY,
        chunk_size=chunk_size,
        opener=opener,
    )


def blob_path(root: Path, blob_id: str) -> Path:
    return root / blob_id[:2] / blob_id[2:4] / blob_id


def temp_files(root: Path) -> list[Path]:
    tmp = root / ".tmp"
    return sorted(tmp.iterdir()) if tmp.exists() else []


@pytest.fixture
def store(tmp_path: Path) -> BlobStore:
    return make_store(tmp_path)


# --- round trips ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 5 * 1024 * 1024 + 7]
)
def test_round_trip_preserves_content(store: BlobStore, tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    info = store.put(io.BytesIO(data))
    assert info.size == size
    assert info.created
    assert store.read(info.blob_id) == data
    assert store.exists(info.blob_id)
    assert list(store.iter_ids()) == [info.blob_id]
    assert temp_files(tmp_path) == []
    # Every chunk carries a tag; an exact multiple of the chunk size adds no empty chunk.
    chunks = max(1, -(-size // CHUNK))
    assert blob_path(tmp_path, info.blob_id).stat().st_size == HEADER_LEN + size + chunks * TAG_LEN


def test_iterable_and_file_object_give_the_same_id(store: BlobStore) -> None:
    data = os.urandom(3 * CHUNK + 123)
    pieces = [data[i : i + 1000] for i in range(0, len(data), 1000)]
    from_iter = store.put(iter(pieces))
    from_file = store.put(io.BytesIO(data))
    assert from_iter.blob_id == from_file.blob_id
    assert not from_file.created
    assert b"".join(store.open(from_iter.blob_id)) == data


def test_plaintext_never_reaches_the_disk(store: BlobStore, tmp_path: Path) -> None:
    marker = b"TOP-SECRET-PAYROLL-2025"
    data = marker * 2000
    info = store.put([data])
    on_disk = blob_path(tmp_path, info.blob_id).read_bytes()
    assert marker not in on_disk
    # The id is keyed, so it does not reveal which well-known file is stored.
    assert info.blob_id != hashlib.sha256(data).hexdigest()


def test_same_content_is_stored_once(store: BlobStore, tmp_path: Path) -> None:
    data = os.urandom(10_000)
    first = store.put([data])
    second = store.put([data[:5000], data[5000:]])
    assert first.created
    assert not second.created
    assert second.blob_id == first.blob_id
    assert list(store.iter_ids()) == [first.blob_id]
    assert temp_files(tmp_path) == []


def test_delete_and_listing(store: BlobStore) -> None:
    ids = sorted(store.put([os.urandom(50)]).blob_id for _ in range(5))
    assert list(store.iter_ids()) == ids
    assert store.delete(ids[0])
    assert not store.delete(ids[0])
    assert not store.exists(ids[0])
    assert list(store.iter_ids()) == ids[1:]
    with pytest.raises(BlobNotFound):
        store.read(ids[0])


# --- missing and malformed ids --------------------------------------------------------------


def test_missing_blob_is_not_found(store: BlobStore) -> None:
    missing = "ab" * 32
    assert not store.exists(missing)
    assert not store.delete(missing)
    with pytest.raises(BlobNotFound):
        store.read(missing)
    with pytest.raises(BlobNotFound):
        store.key_id_of(missing)


@pytest.mark.parametrize(
    "bad_id",
    [
        "../../etc/passwd",
        "../passwd",
        "",
        "A" * 64,
        "a" * 63,
        "a" * 65,
        "../" + "a" * 61,
        "/" + "a" * 63,
    ],
)
def test_malformed_ids_are_rejected(tmp_path: Path, bad_id: str) -> None:
    store = make_store(tmp_path / "store")
    outside = tmp_path / "passwd"
    outside.write_bytes(b"root:x:0:0")
    assert not store.exists(bad_id)
    for call in (store.read, store.open, store.delete, store.key_id_of):
        with pytest.raises(BlobNotFound):
            call(bad_id)
    assert outside.read_bytes() == b"root:x:0:0"


# --- tamper detection -----------------------------------------------------------------------


@pytest.fixture
def stored(store: BlobStore, tmp_path: Path) -> tuple[BlobStore, str, Path]:
    info = store.put([os.urandom(3 * CHUNK + 100)])  # three full chunks and a short one
    return store, info.blob_id, blob_path(tmp_path, info.blob_id)


@pytest.mark.parametrize(
    "cut",
    [
        HEADER_LEN - 1,
        HEADER_LEN,
        HEADER_LEN + BLOCK,
        HEADER_LEN + 2 * BLOCK,
        HEADER_LEN + 3 * BLOCK,
        HEADER_LEN + 100,
        HEADER_LEN + BLOCK + 5,
        HEADER_LEN + 3 * BLOCK + 50,
        -1,
    ],
    ids=lambda c: f"cut{c}",
)
def test_truncated_blob_is_corrupt(stored: tuple[BlobStore, str, Path], cut: int) -> None:
    store, blob_id, path = stored
    data = path.read_bytes()
    path.write_bytes(data[:cut])
    with pytest.raises(BlobCorrupt):
        store.read(blob_id)


def test_every_flipped_byte_is_detected(tmp_path: Path) -> None:
    small = make_store(tmp_path, chunk_size=16)
    blob_id = small.put([b"forty bytes of very secret plaintext!!!!"]).blob_id
    path = blob_path(tmp_path, blob_id)
    original = path.read_bytes()
    for pos in range(len(original)):
        damaged = bytearray(original)
        damaged[pos] ^= 0x01
        path.write_bytes(damaged)
        with pytest.raises(BlobCorrupt):
            small.read(blob_id)
    path.write_bytes(original)
    assert small.read(blob_id) == b"forty bytes of very secret plaintext!!!!"


def test_flipped_byte_in_large_blob_is_detected(stored: tuple[BlobStore, str, Path]) -> None:
    store, blob_id, path = stored
    original = path.read_bytes()
    for pos in (0, 4, 5, 12, 20, HEADER_LEN, HEADER_LEN + BLOCK - 1, 2 * BLOCK, len(original) - 1):
        damaged = bytearray(original)
        damaged[pos] ^= 0x80
        path.write_bytes(damaged)
        with pytest.raises(BlobCorrupt):
            store.read(blob_id)


def test_swapped_chunks_are_detected(stored: tuple[BlobStore, str, Path]) -> None:
    store, blob_id, path = stored
    data = path.read_bytes()
    body = data[HEADER_LEN:]
    path.write_bytes(data[:HEADER_LEN] + body[BLOCK : 2 * BLOCK] + body[:BLOCK] + body[2 * BLOCK :])
    with pytest.raises(BlobCorrupt):
        store.read(blob_id)


@pytest.mark.parametrize("extra", [b"x", b"\x00" * BLOCK, b"garbage" * 1000])
def test_appended_bytes_are_detected(stored: tuple[BlobStore, str, Path], extra: bytes) -> None:
    store, blob_id, path = stored
    with path.open("ab") as f:
        f.write(extra)
    with pytest.raises(BlobCorrupt):
        store.read(blob_id)


def test_repeated_last_chunk_is_detected(stored: tuple[BlobStore, str, Path]) -> None:
    store, blob_id, path = stored
    data = path.read_bytes()
    path.write_bytes(data + data[HEADER_LEN + 3 * BLOCK :])
    with pytest.raises(BlobCorrupt):
        store.read(blob_id)


def test_file_under_another_id_is_detected(store: BlobStore, tmp_path: Path) -> None:
    real = store.put([b"invoice for ACME"]).blob_id
    other = store.put([b"invoice for Initech"]).blob_id
    blob_path(tmp_path, other).write_bytes(blob_path(tmp_path, real).read_bytes())
    with pytest.raises(BlobCorrupt):
        store.read(other)


def test_bad_magic_and_version_are_corrupt(stored: tuple[BlobStore, str, Path]) -> None:
    store, blob_id, path = stored
    original = path.read_bytes()
    for damaged in (b"XXXX" + original[4:], original[:4] + b"\x02" + original[5:], b""):
        path.write_bytes(damaged)
        with pytest.raises(BlobCorrupt):
            store.open(blob_id)


# --- fault injection ------------------------------------------------------------------------


class FaultyFile:
    """A real file whose Nth write (counted across the opener) raises an OSError."""

    def __init__(self, real: Any, opener: FaultyOpener) -> None:
        self._real = real
        self._opener = opener

    def write(self, data: bytes) -> int:
        self._opener.writes += 1
        if self._opener.writes == self._opener.fail_at:
            raise OSError(self._opener.err, os.strerror(self._opener.err))
        return self._real.write(data)

    def close(self) -> None:
        self._real.close()
        if self._opener.fail_on_close:
            raise OSError(self._opener.err, os.strerror(self._opener.err))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class FaultyOpener:
    def __init__(self, fail_at: int = 0, err: int = errno.ENOSPC, fail_on_close: bool = False):
        self.fail_at = fail_at
        self.err = err
        self.fail_on_close = fail_on_close
        self.writes = 0

    def __call__(self, path: Path, mode: str) -> FaultyFile:
        return FaultyFile(open(path, mode), self)


DATA = os.urandom(4 * CHUNK + 10)  # header + five chunks = six writes


def count_writes(root: Path) -> int:
    counter = FaultyOpener()
    info = make_store(root, opener=counter).put([DATA])
    make_store(root).delete(info.blob_id)
    return counter.writes


@pytest.mark.parametrize(
    ("err", "expected"),
    [
        (errno.ENOSPC, DiskFull),
        (errno.EDQUOT, DiskFull),
        (errno.EIO, StorageError),
        (errno.EACCES, StorageError),
    ],
)
def test_every_failed_write_leaves_nothing_behind(
    tmp_path: Path, err: int, expected: type[Exception]
) -> None:
    total = count_writes(tmp_path)
    assert total == 6
    for n in range(1, total + 1):
        faulty = make_store(tmp_path, opener=FaultyOpener(fail_at=n, err=err))
        with pytest.raises(expected) as caught:
            faulty.put([DATA])
        assert type(caught.value) is expected, f"write {n}"
        assert isinstance(caught.value.__cause__, OSError)
        assert caught.value.__cause__.errno == err
        assert list(faulty.iter_ids()) == [], f"write {n} left a blob"
        assert temp_files(tmp_path) == [], f"write {n} left a temp file"
    healthy = make_store(tmp_path)
    info = healthy.put([DATA])
    assert info.created
    assert healthy.read(info.blob_id) == DATA


def test_deferred_error_on_close_leaves_nothing_behind(tmp_path: Path) -> None:
    faulty = make_store(tmp_path, opener=FaultyOpener(fail_on_close=True))
    with pytest.raises(DiskFull):
        faulty.put([DATA])
    assert list(faulty.iter_ids()) == []
    assert temp_files(tmp_path) == []


def test_failing_source_stream_leaves_nothing_behind(store: BlobStore, tmp_path: Path) -> None:
    def upload() -> Iterator[bytes]:
        yield os.urandom(3 * CHUNK)
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        store.put(upload())
    assert list(store.iter_ids()) == []
    assert temp_files(tmp_path) == []


def test_cleanup_partial_removes_stale_temp_files(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    assert store.cleanup_partial() == 0
    kept = store.put([b"keep me"]).blob_id
    tmp = tmp_path / ".tmp"
    (tmp / "3f9a.part").write_bytes(b"ENCB half written")
    (tmp / ("cd" * 32)).write_bytes(b"looks like an id")
    assert list(store.iter_ids()) == [kept]
    assert store.cleanup_partial() == 2
    assert temp_files(tmp_path) == []
    assert store.read(kept) == b"keep me"


# --- key rotation ---------------------------------------------------------------------------


def test_reencrypt_moves_blob_to_new_key(tmp_path: Path) -> None:
    data = os.urandom(3 * CHUNK + 77)
    info = make_store(tmp_path, keys=(KEY_A,)).put([data])
    assert make_store(tmp_path).key_id_of(info.blob_id) == key_id_for(KEY_A)

    # A different chunk size on the rotating store: old blobs keep their own.
    rotating = make_store(tmp_path, keys=(KEY_A, KEY_B), current=KEY_B, chunk_size=1000)
    assert rotating.read(info.blob_id) == data
    assert rotating.reencrypt(info.blob_id, key_id_for(KEY_B))
    assert not rotating.reencrypt(info.blob_id, key_id_for(KEY_B))
    assert rotating.key_id_of(info.blob_id) == key_id_for(KEY_B)
    assert rotating.read(info.blob_id) == data
    assert temp_files(tmp_path) == []

    assert make_store(tmp_path, keys=(KEY_B,)).read(info.blob_id) == data
    with pytest.raises(BlobCorrupt):
        make_store(tmp_path, keys=(KEY_A,)).read(info.blob_id)


def test_rotation_on_an_open_store(store: BlobStore) -> None:
    """The rotation flow: add the new key, re-encrypt every blob, switch, drop the old key."""
    contents = [os.urandom(n) for n in (0, 10, CHUNK, 2 * CHUNK + 1)]
    ids = [store.put([data]).blob_id for data in contents]
    new_id = key_id_for(KEY_B)
    store.keys[new_id] = KEY_B
    moved = sum(1 for blob_id in store.iter_ids() if store.reencrypt(blob_id, new_id))
    assert moved == len(ids)
    store.current_key_id = new_id
    del store.keys[key_id_for(KEY_A)]
    assert [store.read(blob_id) for blob_id in ids] == contents
    fresh = store.put([b"written after the rotation"])
    assert store.key_id_of(fresh.blob_id) == new_id


def test_reencrypt_of_damaged_blob_keeps_the_original(stored: tuple[BlobStore, str, Path]) -> None:
    _store, blob_id, path = stored
    damaged = bytearray(path.read_bytes())
    damaged[-1] ^= 0x01
    path.write_bytes(damaged)
    rotating = make_store(path.parents[2], keys=(KEY_A, KEY_B))
    with pytest.raises(BlobCorrupt):
        rotating.reencrypt(blob_id, key_id_for(KEY_B))
    assert path.read_bytes() == damaged
    assert temp_files(path.parents[2]) == []
    with pytest.raises(ValueError):
        rotating.reencrypt(blob_id, b"\x00" * 8)


# --- constant memory ------------------------------------------------------------------------


def test_large_blob_streams_in_constant_memory(tmp_path: Path) -> None:
    mib = 1 << 20
    store = make_store(tmp_path, chunk_size=mib)
    pieces = [os.urandom(300_000) for _ in range(7)]
    count = (64 * mib) // 300_000 + 1

    def source() -> Iterator[bytes]:
        for i in range(count):
            yield pieces[i % len(pieces)]

    expected = hashlib.sha256()
    for piece in source():
        expected.update(piece)

    tracemalloc.start()
    try:
        info = store.put(source())
        got = hashlib.sha256()
        for chunk in store.open(info.blob_id):
            got.update(chunk)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.size == count * 300_000 > 64 * mib
    assert got.hexdigest() == expected.hexdigest()
    assert peak < 8 * mib, f"peak {peak / mib:.1f} MiB"
