"""vault.json and key files: round trips, wrong secrets, every kind of damage, no key leaks."""

from __future__ import annotations

import base64
import json
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from appliance import Appliance, State
from appliance.errors import (
    KeyfileInvalid,
    VaultCorrupt,
    VaultMissing,
    WeakPassphrase,
    WrongPassphrase,
)
from appliance.keys.secret import DataKey
from appliance.keys.vault import KdfParams, Vault, read_keyfile, write_keyfile
from appliance.settings import EnclaveSettings
from tests.conftest import PASSPHRASE

FAST = KdfParams(time_cost=1, memory_kib=8192, parallelism=1)


@pytest.fixture
def dek() -> DataKey:
    return DataKey.generate()


@pytest.fixture
def vault_path(tmp_path: Path, dek: DataKey) -> Path:
    path = tmp_path / "vault.json"
    Vault.create(dek, PASSPHRASE, FAST).save(path)
    return path


# --- round trip -----------------------------------------------------------------------------


def test_round_trip_returns_the_same_key(vault_path: Path, dek: DataKey) -> None:
    vault = Vault.load(vault_path)
    assert vault.key_id == dek.key_id
    assert vault.unwrap_with_passphrase(PASSPHRASE) == dek
    assert vault.pending is None
    assert vault_path.stat().st_mode & 0o777 == 0o600


def test_wrong_passphrase_is_refused_and_vault_untouched(settings: EnclaveSettings) -> None:
    app = Appliance(settings)
    app.initialise(PASSPHRASE)
    app.seal()
    before = app.home.vault_path.read_bytes()
    with pytest.raises(WrongPassphrase):
        app.unseal("not the right passphrase")
    with pytest.raises(WrongPassphrase):
        app.change_passphrase("not the right passphrase", "another long passphrase")
    assert app.home.vault_path.read_bytes() == before
    assert app.state is State.SEALED
    app.unseal(PASSPHRASE)
    assert app.state is State.UNSEALED
    app.seal()


def test_each_save_uses_a_fresh_salt_and_nonce(dek: DataKey, tmp_path: Path) -> None:
    a = Vault.create(dek, PASSPHRASE, FAST).slots["passphrase"]
    b = Vault.create(dek, PASSPHRASE, FAST).slots["passphrase"]
    assert a["kdf"]["salt"] != b["kdf"]["salt"]
    assert a["nonce"] != b["nonce"]
    assert a["wrapped"] != b["wrapped"]


# --- damage ---------------------------------------------------------------------------------


def _doc_edit(fn: Callable[[dict[str, Any]], None]) -> Callable[[bytes], bytes]:
    def mutate(raw: bytes) -> bytes:
        doc = json.loads(raw)
        fn(doc)
        return json.dumps(doc).encode()

    return mutate


def _slot(doc: dict[str, Any]) -> dict[str, Any]:
    slot: dict[str, Any] = doc["slots"]["passphrase"]
    return slot


def _kdf(**values: Any) -> Callable[[bytes], bytes]:
    return _doc_edit(lambda d: _slot(d)["kdf"].update(values))


def _flip_decoded(field: str, where: str = "slot") -> Callable[[bytes], bytes]:
    """Flip one bit of the decoded bytes and re-encode: still valid base64."""

    def edit(doc: dict[str, Any]) -> None:
        holder = _slot(doc) if where == "slot" else _slot(doc)["kdf"]
        data = bytearray(base64.b64decode(holder[field]))
        data[len(data) // 2] ^= 0x01
        holder[field] = base64.b64encode(bytes(data)).decode()

    return _doc_edit(edit)


def _set_slot(**values: Any) -> Callable[[bytes], bytes]:
    return _doc_edit(lambda d: _slot(d).update(values))


def _wrapped_char(char: str) -> Callable[[bytes], bytes]:
    def edit(doc: dict[str, Any]) -> None:
        wrapped = _slot(doc)["wrapped"]
        _slot(doc)["wrapped"] = char + wrapped[1:] if wrapped[0] != char else "C" + wrapped[1:]

    return _doc_edit(edit)


CORRUPT: dict[str, Callable[[bytes], bytes]] = {
    "truncated": lambda raw: raw[: len(raw) // 2],
    "empty": lambda raw: b"",
    "not json": lambda raw: b"\x00\xff\xfe this is not json",
    "json list": lambda raw: b"[1, 2, 3]",
    "wrong format": _doc_edit(lambda d: d.update(format="something-else")),
    "wrong version": _doc_edit(lambda d: d.update(version=2)),
    "no slots": _doc_edit(lambda d: d.pop("slots")),
    "no passphrase slot": _doc_edit(lambda d: d["slots"].pop("passphrase")),
    "slot not an object": _doc_edit(lambda d: d["slots"].update(passphrase="x")),
    "key id not hex": _doc_edit(lambda d: d.update(key_id="zz" * 8)),
    "key id too short": _doc_edit(lambda d: d.update(key_id="abcd")),
    "pending malformed": _doc_edit(lambda d: d.update(pending="soon")),
    "wrapped not base64": _wrapped_char("!"),
    "wrapped missing": _doc_edit(lambda d: _slot(d).pop("wrapped")),
    "nonce wrong length": _set_slot(nonce=base64.b64encode(b"\x00" * 8).decode()),
    "salt not base64": _kdf(salt="%%%not-base64%%%"),
    "salt missing": _doc_edit(lambda d: _slot(d)["kdf"].pop("salt")),
    "salt too short": _kdf(salt=base64.b64encode(b"1234").decode()),
    "kdf missing": _doc_edit(lambda d: _slot(d).pop("kdf")),
    "kdf not argon2id": _kdf(name="scrypt"),
    "time cost zero": _kdf(time_cost=0),
    "time cost huge": _kdf(time_cost=10_000),
    "time cost text": _kdf(time_cost="three"),
    "time cost null": _kdf(time_cost=None),
    "time cost infinite": _kdf(time_cost=float("inf")),
    "memory tiny": _kdf(memory_kib=4),
    "memory absurd": _kdf(memory_kib=2**40),
    "memory below argon2 minimum per lane": _kdf(memory_kib=8, parallelism=2),
    "parallelism zero": _kdf(parallelism=0),
    "parallelism absurd": _kdf(parallelism=100_000),
}

# Damage that AES-GCM cannot tell apart from a wrong passphrase: the tag just fails.
INDISTINGUISHABLE: dict[str, Callable[[bytes], bytes]] = {
    "wrapped byte flipped": _flip_decoded("wrapped"),
    "wrapped base64 character changed": _wrapped_char("B"),
    "nonce byte flipped": _flip_decoded("nonce"),
    "salt byte flipped": _flip_decoded("salt", where="kdf"),
    "key id of another key": _doc_edit(lambda d: d.update(key_id="00" * 8)),
}


@pytest.mark.parametrize("mutate", CORRUPT.values(), ids=CORRUPT.keys())
def test_damaged_vault_is_vault_corrupt(vault_path: Path, mutate: Callable[[bytes], bytes]) -> None:
    vault_path.write_bytes(mutate(vault_path.read_bytes()))
    with pytest.raises(VaultCorrupt):
        Vault.load(vault_path).unwrap_with_passphrase(PASSPHRASE)


@pytest.mark.parametrize("mutate", INDISTINGUISHABLE.values(), ids=INDISTINGUISHABLE.keys())
def test_damage_inside_ciphertext_reads_as_wrong_passphrase(
    vault_path: Path, mutate: Callable[[bytes], bytes]
) -> None:
    vault_path.write_bytes(mutate(vault_path.read_bytes()))
    with pytest.raises(WrongPassphrase):
        Vault.load(vault_path).unwrap_with_passphrase(PASSPHRASE)


def test_corrupt_vault_at_unseal_is_reported_and_not_counted(
    settings: EnclaveSettings,
) -> None:
    app = Appliance(settings)
    app.initialise(PASSPHRASE)
    app.seal()
    path = app.home.vault_path
    path.write_bytes(CORRUPT["truncated"](path.read_bytes()))
    with pytest.raises(VaultCorrupt) as info:
        app.unseal(PASSPHRASE)
    assert info.value.code == "vault_corrupt"
    assert app.attempts.failed == 0
    assert app.state is State.SEALED


def test_missing_vault(tmp_path: Path, settings: EnclaveSettings) -> None:
    with pytest.raises(VaultMissing):
        Vault.load(tmp_path / "nowhere" / "vault.json")
    app = Appliance(settings)
    app.initialise(PASSPHRASE)
    app.seal()
    app.home.vault_path.unlink()
    assert app.state is State.SEALED  # the database is still there
    with pytest.raises(VaultMissing):
        app.unseal(PASSPHRASE)


# --- passphrase policy ----------------------------------------------------------------------


@pytest.mark.parametrize("weak", ["", "short", "a" * 11, "x" * 1025])
def test_weak_passphrase_refused(weak: str, dek: DataKey, settings: EnclaveSettings) -> None:
    with pytest.raises(WeakPassphrase):
        Vault.create(dek, weak, FAST)
    app = Appliance(settings)
    with pytest.raises(WeakPassphrase):
        app.initialise(weak)
    assert app.state is State.UNINITIALISED
    assert not app.home.vault_path.exists()


def test_twelve_characters_is_enough(dek: DataKey) -> None:
    assert Vault.create(dek, "a" * 12, FAST).unwrap_with_passphrase("a" * 12) == dek


def test_weak_new_passphrase_leaves_vault_unchanged(appliance: Appliance) -> None:
    before = appliance.home.vault_path.read_bytes()
    with pytest.raises(WeakPassphrase):
        appliance.change_passphrase(PASSPHRASE, "tooshort")
    assert appliance.home.vault_path.read_bytes() == before


# --- key files ------------------------------------------------------------------------------


def test_keyfile_round_trip(tmp_path: Path, vault_path: Path, dek: DataKey) -> None:
    keyfile = tmp_path / "unseal.key"
    kek = write_keyfile(keyfile)
    assert keyfile.stat().st_mode & 0o777 == 0o600
    assert read_keyfile(keyfile) == kek
    vault = Vault.load(vault_path)
    vault.set_keyfile(dek, kek)
    vault.save(vault_path)
    assert Vault.load(vault_path).unwrap_with_keyfile(read_keyfile(keyfile)) == dek


def test_keyfile_is_never_overwritten(tmp_path: Path) -> None:
    keyfile = tmp_path / "unseal.key"
    write_keyfile(keyfile)
    before = keyfile.read_bytes()
    with pytest.raises(KeyfileInvalid):
        write_keyfile(keyfile)
    assert keyfile.read_bytes() == before


@pytest.fixture
def keyfile_appliance(settings: EnclaveSettings, tmp_path: Path) -> tuple[Appliance, Path]:
    keyfile = tmp_path / "unseal.key"
    app = Appliance(settings)
    app.initialise(PASSPHRASE, keyfile_out=keyfile)
    app.seal()
    return app, keyfile


def test_unseal_with_keyfile(keyfile_appliance: tuple[Appliance, Path]) -> None:
    app, keyfile = keyfile_appliance
    app.unseal(keyfile=keyfile)
    assert app.state is State.UNSEALED
    app.seal()


def test_keyfile_readable_by_others_is_refused(
    keyfile_appliance: tuple[Appliance, Path],
) -> None:
    app, keyfile = keyfile_appliance
    keyfile.chmod(0o644)
    with pytest.raises(KeyfileInvalid, match="0600"):
        app.unseal(keyfile=keyfile)
    assert app.state is State.SEALED


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"this is not base64 at all!\n",
        base64.b64encode(b"\x01" * 16) + b"\n",  # right encoding, wrong length
        b"\xff\xfe\x00binary",
    ],
    ids=["empty", "not base64", "too short", "binary"],
)
def test_garbage_keyfile_is_refused(
    keyfile_appliance: tuple[Appliance, Path], tmp_path: Path, content: bytes
) -> None:
    app, _ = keyfile_appliance
    bad = tmp_path / "bad.key"
    bad.write_bytes(content)
    bad.chmod(0o600)
    with pytest.raises(KeyfileInvalid):
        app.unseal(keyfile=bad)
    with pytest.raises(KeyfileInvalid):
        app.unseal(keyfile=tmp_path / "missing.key")
    assert app.state is State.SEALED


def test_keyfile_of_another_vault_is_refused(
    keyfile_appliance: tuple[Appliance, Path], tmp_path: Path
) -> None:
    app, _ = keyfile_appliance
    foreign = tmp_path / "foreign.key"
    write_keyfile(foreign)
    with pytest.raises(KeyfileInvalid, match="does not belong"):
        app.unseal(keyfile=foreign)
    assert app.state is State.SEALED


def test_keyfile_on_a_vault_without_keyfile_slot(appliance: Appliance, tmp_path: Path) -> None:
    appliance.seal()
    keyfile = tmp_path / "unseal.key"
    write_keyfile(keyfile)
    with pytest.raises(KeyfileInvalid, match="no key-file slot"):
        appliance.unseal(keyfile=keyfile)


# --- no key leaks ---------------------------------------------------------------------------


def _encodings(raw: bytes) -> list[str]:
    return [
        raw.hex(),
        raw.hex().upper(),
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode(),
    ]


def test_datakey_never_prints_itself(dek: DataKey) -> None:
    rendered = [repr(dek), str(dek), f"{dek}", format(dek), repr([dek]), repr({"k": dek})]
    for text in rendered:
        assert "redacted" in text
        for secret in _encodings(dek.raw):
            assert secret not in text
    with pytest.raises(TypeError):
        pickle.dumps(dek)
    with pytest.raises(TypeError):
        pickle.dumps({"nested": [dek]})


def test_vault_file_holds_no_copy_of_the_key(appliance: Appliance) -> None:
    dek = appliance.current_key()
    text = appliance.home.vault_path.read_text()
    blob_key = dek.derive("blobs")
    assert dek.raw not in appliance.home.vault_path.read_bytes()
    for raw in (dek.raw, blob_key):
        for secret in _encodings(raw):
            assert secret not in text
    assert PASSPHRASE not in text
    assert json.loads(text)["key_id"] == dek.key_id.hex()
