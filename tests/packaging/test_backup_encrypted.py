"""Encrypted backups (SY-09): age files to one or more public keys from the settings, restore only with
an identity file, the plaintext's sha256 checked after decryption, and plain backups only on an
explicit flag that the log and the audit trail record."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyrage
import pytest

from server.backup import backup, backups_in, manifest_path, read_manifest, restore, sha256_file, verify_backup
from server.store.audit import audit_rows
from server.db import open_db
from server.tasks.backup import daily_backup, scheduled_backup
from shared.errors import EproError
from tests.packaging.test_backup import assert_restored_matches, cli, rows

UTC = timezone.utc


def keypair(folder: Path, name: str) -> tuple[str, Path]:
    """What IT does on the machine that keeps the key (``age-keygen -o FILE``): public key, identity file."""
    ident = pyrage.x25519.Identity.generate()
    path = folder / f"{name}.key"
    path.write_text(f"# created for the test\n{ident}\n", "utf-8")
    os.chmod(path, 0o600)
    return str(ident.to_public()), path


@pytest.fixture
def keys(tmp_path):
    folder = tmp_path / "offline-keys"
    folder.mkdir()
    return [keypair(folder, "it"), keypair(folder, "sponsor")]


def test_the_backup_is_age_encrypted_to_every_recipient_and_restores_with_either_identity(tmp_path, live_db, keys):
    out = tmp_path / "backups"
    out.mkdir()
    made = backup(live_db, out, recipients=[k for k, _ in keys])
    assert made.path.name.endswith(".sqlite.age")
    data = made.path.read_bytes()
    assert data.startswith(b"age-encryption.org/v1") and b"SQLite format 3" not in data
    assert b"respondent" not in data                                  # no clinical text in clear
    # the encrypted file, its manifest and the signed audit-chain checkpoint folder; no plaintext copy
    assert sorted(p.name for p in out.iterdir()) == sorted([made.path.name, manifest_path(made.path).name,
                                                            "audit-checkpoints"])
    assert not list(live_db.parent.glob(".*snapshot*"))             # the plain snapshot is gone
    manifest = read_manifest(made.path)
    assert manifest["encryption"] == {"scheme": "age-x25519", "recipients": [k for k, _ in keys]}
    assert manifest["file"]["sha256"] == sha256_file(made.path)
    assert len(manifest["plaintext"]["sha256"]) == 64
    assert verify_backup(made.path, identity=keys[1][1]) == []
    for i, (_, identity) in enumerate(keys):
        target = tmp_path / f"restored-{i}" / "server.sqlite"
        result = restore(made.path, target, identity=identity)
        assert result["verified"] and result["encrypted"]
        assert_restored_matches(target, manifest)
        assert not list(target.parent.glob("*.decrypted*"))
    created = audit_rows(open_db(live_db), action="backup.created")[-1]["detail"]
    assert created["encrypted"] is True and created["recipients"] == 2


def test_restore_refuses_without_the_identity_or_with_another_one(tmp_path, live_db, keys):
    made = backup(live_db, tmp_path / "b.sqlite.age", recipients=[keys[0][0]])
    target = tmp_path / "r" / "server.sqlite"
    with pytest.raises(EproError) as err:
        restore(made.path, target)
    assert err.value.code == "restore.identity_required"
    with pytest.raises(EproError) as err:
        restore(made.path, target, identity=keys[1][1])               # the sponsor's key was not a recipient
    assert err.value.code == "restore.decrypt_failed"
    assert not target.exists() and not any(target.parent.iterdir())


def _reencrypt_changed_copy(path: Path, manifest: dict, public_key: str, identity: Path) -> None:
    """An attacker who knows the public key (it is public; here also the plaintext) swaps in a changed
    database encrypted to it and rehashes the manifest's file fields."""
    import sqlite3

    from server.backup import decrypt_file, encrypt_file, read_identities

    plain = path.with_name("evil.sqlite")
    decrypt_file(path, plain, read_identities(identity))
    conn = sqlite3.connect(plain)
    conn.execute("DROP TRIGGER records_no_delete")
    conn.execute("DELETE FROM records WHERE server_seq = 5")
    conn.commit()
    conn.close()
    path.unlink()
    encrypt_file(plain, path, [public_key])
    plain.unlink()
    manifest["file"].update(bytes=path.stat().st_size, sha256=sha256_file(path))
    manifest_path(path).write_text(json.dumps(manifest))


@pytest.mark.parametrize("how", ["flip_a_byte_and_rehash", "reencrypt_a_changed_database"])
def test_a_tampered_encrypted_backup_is_refused(tmp_path, live_db, keys, how):
    made = backup(live_db, tmp_path / "b.sqlite.age", recipients=[keys[0][0]])
    manifest = json.loads(made.manifest_path.read_text())
    if how == "flip_a_byte_and_rehash":
        data = bytearray(made.path.read_bytes())
        data[len(data) // 2] ^= 0x01
        made.path.write_bytes(bytes(data))
        manifest["file"].update(bytes=made.path.stat().st_size, sha256=sha256_file(made.path))
        made.manifest_path.write_text(json.dumps(manifest))
        want = "restore.decrypt_failed"
    else:
        _reencrypt_changed_copy(made.path, manifest, keys[0][0], keys[0][1])
        want = "restore.verification_failed"
    target = tmp_path / "r" / "server.sqlite"
    with pytest.raises(EproError) as err:
        restore(made.path, target, identity=keys[0][1])
    assert err.value.code == want
    if want == "restore.verification_failed":
        assert "plaintext.sha256" in [e.field for e in err.value.errors]
    assert not target.exists() and not any(target.parent.iterdir())


def test_the_cli_takes_recipients_from_the_settings_and_refuses_a_plain_backup_without_the_flag(
        tmp_path, live_db, keys, monkeypatch):
    proc = cli("--db", str(live_db), "backup", str(tmp_path / "plain.sqlite"))
    assert proc.returncode == 1 and json.loads(proc.stderr)["code"] == "backup.recipients_required"
    assert not (tmp_path / "plain.sqlite").exists()
    monkeypatch.setenv("ALS_EPRO_BACKUP_RECIPIENTS", " ".join(k for k, _ in keys))
    proc = cli("--db", str(live_db), "backup", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["encrypted"] is True and out["recipients"] == 2 and out["backup"].endswith(".age")
    target = tmp_path / "r" / "server.sqlite"
    proc = cli("--db", str(target), "restore", out["backup"])
    assert proc.returncode == 1 and json.loads(proc.stderr)["code"] == "restore.identity_required"
    proc = cli("--db", str(target), "restore", out["backup"], "--identity", str(keys[0][1]))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["verified"] is True
    monkeypatch.delenv("ALS_EPRO_BACKUP_RECIPIENTS")
    proc = cli("--db", str(live_db), "backup", str(tmp_path / "plain.sqlite"), "--unencrypted")
    assert proc.returncode == 0 and "NOT encrypted" in proc.stderr       # the log says so ...
    detail = json.loads(rows(live_db, "SELECT detail FROM audit WHERE action = 'backup.created'"
                                      " ORDER BY seq DESC LIMIT 1")[0][0])
    assert detail["encrypted"] is False and detail["unencrypted_flag"] is True   # ... and the audit row


def test_the_scheduled_backup_encrypts_and_refuses_plain_unless_the_setting_allows(tmp_path, live_db, keys):
    folder = tmp_path / "daily"
    start = datetime(2026, 1, 1, 2, 0, tzinfo=UTC)
    for day in range(3):
        daily_backup(live_db, folder, keep=2, now=start + timedelta(days=day), recipients=keys[0][0])
    names = [p.name for p in backups_in(folder)]
    assert names == ["als-epro-20260102T020000Z.sqlite.age", "als-epro-20260103T020000Z.sqlite.age"]
    with pytest.raises(EproError) as err:
        scheduled_backup({"DB": str(live_db), "BACKUP_DIR": str(tmp_path / "other"), "BACKUP_KEEP": 2})
    assert err.value.code == "backup.recipients_required"
    assert not (tmp_path / "other").exists() or not any((tmp_path / "other").iterdir())
