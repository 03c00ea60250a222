"""The client database encrypted at rest (PS-05): SQLCipher with a key from the keyring, in-place
encryption of an old plain file that survives a SIGKILL at every step, and the refusal without a
keyring unless the site's setting allows a plain store."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import keyring
import pytest
from keyring.backends.fail import Keyring as FailKeyring

from desktop.services.entries import EntryService
from desktop.store import Outcome, Store
from desktop.store.cipher import KEY_BYTES, TMP_SUFFIX, file_state
from desktop.store.db import DB_FILENAME, StoreEncrypted
from desktop.store.keys import (
    SITE_FILE, KeyLost, KeyringUnavailable, SitePolicy, database_key, keyring_usable, open_store,
)
from tests.desktop.helpers import clock, fill_alsfrs, fill_nasal, pair
from tests.support.filekeyring import MemoryKeyring, installed

ROOT = Path(__file__).resolve().parents[2]
SENTINEL = "SENTINEL-PHI-7f3a"
KEY = bytes(range(KEY_BYTES))


@pytest.fixture
def ring():
    with installed(MemoryKeyring()) as r:
        yield r


@pytest.fixture
def no_ring():
    with installed(FailKeyring()):
        yield


def fill(store: Store) -> None:
    """Entries (one received with its receipt), a draft with a sentinel string, settings."""
    pair(store, participant="001-017")
    svc = EntryService(store, clock())
    a = svc.submit(fill_alsfrs(svc), "en").entry
    svc.submit(fill_nasal(svc, grades={"nosebleed": 1}), "en")
    store.outbox.record([Outcome(a.id, "received", "accepted",
                                 {"server_seq": 7, "received_at": "2026-03-10T02:00:00Z",
                                  "sha256": a.sha256})], "2026-03-10T02:00:01Z")
    d = svc.start("nasal_symptoms", {"date": "2026-03-11", "dosing_day": False})
    d.answers = {"respondent": "participant", "note": SENTINEL}
    svc.save(d)


def dump(store: Store) -> dict:
    return {t: sorted(json.dumps(r, sort_keys=True) for r in store.db[t].rows)
            for t in ("entries", "drafts", "settings")}


def raw_bytes(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in folder.iterdir() if p.is_file())


def test_new_store_is_encrypted_and_plain_sqlite_cannot_read_a_copy(tmp_path):
    data = tmp_path / "data"
    s = Store(data, KEY)
    fill(s)
    assert SENTINEL.encode() not in raw_bytes(data)          # neither the file nor its -wal
    s.close()
    assert file_state(data / DB_FILENAME) == "encrypted"
    copy = tmp_path / "copy.sqlite"
    copy.write_bytes((data / DB_FILENAME).read_bytes())
    con = sqlite3.connect(copy)
    with pytest.raises(sqlite3.DatabaseError, match="not a database"):
        con.execute("SELECT * FROM entries").fetchall()
    con.close()
    with pytest.raises(StoreEncrypted):
        Store(data)                                          # no key
    with pytest.raises(StoreEncrypted):
        Store(data, bytes(KEY_BYTES))                        # another key
    again = Store(data, KEY)
    assert len(again.outbox.entries()) == 2
    again.close()


def test_plain_store_is_encrypted_in_place_without_loss(tmp_path):
    data = tmp_path / "data"
    s = Store(data)
    fill(s)
    before = dump(s)
    s.close()
    assert SENTINEL.encode() in raw_bytes(data)              # plain: the draft is readable
    s = Store(data, KEY)
    assert dump(s) == before
    s.close()
    assert SENTINEL.encode() not in raw_bytes(data)
    assert not (data / (DB_FILENAME + TMP_SUFFIX)).exists()
    assert oct((data / DB_FILENAME).stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize("step", ["journal", "exported", "verified", "replaced"])
def test_a_kill_at_any_step_of_the_encryption_loses_nothing(tmp_path, step):
    data = tmp_path / "data"
    s = Store(data)
    fill(s)
    before = dump(s)
    s.close()
    proc = subprocess.run([sys.executable, "-m", "tests.desktop.encrypt_worker", str(data), KEY.hex(),
                           step], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == -9, proc.stderr                # really killed there
    state = file_state(data / DB_FILENAME)
    assert state == ("encrypted" if step == "replaced" else "plain")
    if state == "plain":                                     # the old file still opens as it was
        old = Store(data)
        assert dump(old) == before
        old.close()
    s = Store(data, KEY)                                     # the next start finishes the job
    assert dump(s) == before
    s.close()
    assert file_state(data / DB_FILENAME) == "encrypted"
    assert not (data / (DB_FILENAME + TMP_SUFFIX)).exists()


def test_the_key_lives_in_the_keyring_and_open_store_uses_it(tmp_path, ring):
    data = tmp_path / "data"
    s = open_store(data)
    assert s.encrypted
    fill(s)
    s.close()
    stored = [v for (svc, user), v in ring.data.items() if user.startswith("db-key@")]
    assert len(stored) == 1 and len(bytes.fromhex(stored[0])) == KEY_BYTES
    assert stored[0].encode() not in raw_bytes(data)
    again = open_store(data)
    assert len(again.outbox.entries()) == 2
    again.close()
    ring.data.clear()                                        # the keyring lost the key
    with pytest.raises(KeyLost):
        open_store(data)
    assert file_state(data / DB_FILENAME) == "encrypted"     # nothing overwritten


def test_without_a_keyring_the_program_refuses_a_plain_store(tmp_path, no_ring):
    data = tmp_path / "data"
    assert not keyring_usable()
    with pytest.raises(KeyringUnavailable):
        open_store(data)
    assert not (data / DB_FILENAME).exists()                 # nothing stored


def test_the_site_setting_file_allows_a_plain_store(tmp_path, no_ring):
    data = tmp_path / "data"
    data.mkdir()
    (data / SITE_FILE).write_text('{"allow_plaintext_store": false}', encoding="utf-8")
    with pytest.raises(KeyringUnavailable):
        open_store(data)
    program = tmp_path / "program"
    program.mkdir()
    (program / SITE_FILE).write_text('{"allow_plaintext_store": true}', encoding="utf-8")
    policy = SitePolicy.load(data, program_dir=program)
    assert policy.allow_plaintext_store and policy.source == str(program / SITE_FILE)
    s = open_store(data, policy)
    assert not s.encrypted
    s.close()


def test_plaintext_keyring_backends_are_refused(tmp_path):
    previous = keyring.get_keyring()

    class PlaintextKeyring(MemoryKeyring):
        pass

    PlaintextKeyring.__module__ = "keyrings.alt.file"
    keyring.set_keyring(PlaintextKeyring())
    try:
        assert not keyring_usable()
        with pytest.raises(KeyringUnavailable):
            open_store(tmp_path / "data")
    finally:
        keyring.set_keyring(previous)


def test_a_key_the_keyring_does_not_keep_is_never_used(tmp_path):
    previous = keyring.get_keyring()

    class Forgetful(MemoryKeyring):
        def get_password(self, service, username):
            return None

    keyring.set_keyring(Forgetful())
    try:
        with pytest.raises(keyring.errors.KeyringError):
            database_key(tmp_path)
    finally:
        keyring.set_keyring(previous)
