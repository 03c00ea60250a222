"""Backups that restore (SY-09, EX-07, AT-09): SQLite's online backup API plus a sidecar manifest.

:func:`backup` copies a live WAL database in one step of ``sqlite3.Connection.backup`` (one read
transaction, so the copy is a consistent snapshot while the server keeps writing), turns the copy
into a single self-contained file (``journal_mode=DELETE``), checks it (``integrity_check``, the audit
hash chain) and writes ``<file>.manifest.json`` beside it: row count and digest per table, the list
digest of every record's sha256, the audit chain head, the schema, the software version, UTC time and
the file's own sha256. The live database then gets a ``backup.created`` audit row.

:func:`restore` copies a backup into a temporary file next to the target, recomputes everything the
manifest says and moves the file into place only when all of it matches and the audit chain verifies
(``verify_chain``); otherwise the target is left absent or untouched. It refuses a target that holds
data unless ``force`` is given, and even then keeps the old file as ``<target>.pre-restore-<UTC>``.
The restored database gets a ``backup.restored`` audit row, so a restore is itself on the record.

**Encryption (SY-09).** With recipients (age X25519 public keys, ``ALS_EPRO_BACKUP_RECIPIENTS``) the
backup is an age file ``als-epro-<UTC>.sqlite.age`` (pyrage): the plain snapshot is made next to the
live database (never in the backup folder), encrypted to every recipient, and removed. The server
holds only public keys; :func:`restore` takes the identity file (``--identity``). The manifest stays
plain beside it: the encrypted file's size and sha256 (a changed byte is refused before decrypting),
the plaintext's size and sha256, and every digest as before, all recomputed after decryption. A plain
backup needs ``unencrypted=True`` (CLI ``--unencrypted``; scheduled: ``BACKUP_ALLOW_UNENCRYPTED``); it
is logged as a warning and its ``backup.created`` audit row says ``"encrypted": false``.

Everything here is plain functions over paths and sqlite-utils databases (no Flask, no Qt).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Sequence

from sqlite_utils import Database

import shared
from server.clock import iso, utc_now
from server.db import open_db, write_tx
from server.store.anchor import backup_checkpoint
from server.store.audit import Actor, verify_chain, write_audit
from shared.canonical import record_sha256
from shared.errors import EproError, FieldError

FORMAT = "als-epro-backup/1"
MANIFEST_SUFFIX = ".manifest.json"
#: file names the scheduled backup writes and prunes (nothing else in the folder is ever touched)
NAME_RE = re.compile(r"^als-epro-(\d{8})T(\d{6})Z\.sqlite(?:\.age)?$")
AGE_SUFFIX = ".age"
log = logging.getLogger("server.backup")
_CHUNK = 1 << 20


# --- describing a database ------------------------------------------------------------------------

def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _cell(value: Any) -> Any:
    return {"$hex": value.hex()} if isinstance(value, (bytes, bytearray, memoryview)) else value


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def user_tables(db) -> list[str]:
    """Every table except SQLite's own, by name (the migrations table included)."""
    return [r[0] for r in db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
        " ORDER BY name").fetchall()]


def _order_by(db, table: str) -> str:
    pk = sorted((r[5], r[1]) for r in db.execute(f'PRAGMA table_info("{table}")').fetchall() if r[5])
    return ", ".join(f'"{name}"' for _, name in pk) if pk else "rowid"


def table_digest(db, table: str) -> dict[str, Any]:
    """Row count and the sha256 of the list of per-row sha256s (rows as canonical JSON, key order)."""
    cur = db.execute(f'SELECT * FROM "{table}" ORDER BY {_order_by(db, table)}')
    names = [d[0] for d in cur.description]
    digest, rows = hashlib.sha256(), 0
    for values in cur:
        rows += 1
        digest.update(_sha(_canonical(dict(zip(names, map(_cell, values))))).encode("ascii") + b"\n")
    return {"rows": rows, "digest": digest.hexdigest()}


def schema_sha256(db) -> str:
    """Digest of every table, index and trigger definition (a dropped append-only trigger shows)."""
    rows = db.execute("SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite\\_%'"
                      " ESCAPE '\\' ORDER BY type, name").fetchall()
    return _sha(_canonical([list(r) for r in rows]))


def record_hashes(db, upto: int | None = None) -> dict[str, Any]:
    """Count, the digest of the ``id sha256`` list in server order, and records whose stored envelope
    no longer hashes to its stored sha256 (contract §1 canonical form); ``upto``: only records with
    ``server_seq <= upto``."""
    if "records" not in user_tables(db):
        return {"count": 0, "sha256_list_digest": _sha(""), "max_server_seq": None, "mismatched": []}
    digest, count, last, bad = hashlib.sha256(), 0, None, []
    limit = "" if upto is None else f" WHERE server_seq <= {int(upto)}"
    for rid, sha, envelope, seq in db.execute(
            f"SELECT id, sha256, envelope, server_seq FROM records{limit} ORDER BY server_seq"):
        count, last = count + 1, seq
        digest.update(f"{rid} {sha}\n".encode("utf-8"))
        try:
            ok = record_sha256(json.loads(envelope)) == sha
        except (ValueError, TypeError, AttributeError):
            ok = False
        if not ok:
            bad.append(rid)
    return {"count": count, "sha256_list_digest": digest.hexdigest(), "max_server_seq": last,
            "mismatched": bad}


def describe(db) -> dict[str, Any]:
    """What a manifest records about a database, recomputed from its contents."""
    tables = user_tables(db)
    chain = verify_chain(db) if "audit" in tables else None
    head = db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone() if chain else None
    migrations = ([f"{r[0]}:{r[1]}" for r in db.execute("SELECT migration_set, name FROM _migrations ORDER BY rowid")]
                  if "_migrations" in tables else [])
    records = record_hashes(db)
    return {
        "schema": {"migrations": migrations, "sha256": schema_sha256(db)},
        "tables": {t: table_digest(db, t) for t in tables},
        "records": {k: records[k] for k in ("count", "sha256_list_digest", "max_server_seq")},
        "records_mismatched": records["mismatched"],
        "audit": {"rows": chain.rows if chain else 0, "head_seq": head[0] if head else None,
                  "head_hash": head[1] if head else None, "chain_ok": bool(chain and chain.ok),
                  "first_bad_seq": chain.first_bad_seq if chain else None,
                  "problem": chain.problem if chain else "no audit table"},
    }


def integrity_problems(db) -> list[str]:
    rows = [r[0] for r in db.execute("PRAGMA integrity_check").fetchall()]
    return [] if rows == ["ok"] else rows


# --- manifest ---------------------------------------------------------------------------------------

def manifest_path(backup_path: str | Path) -> Path:
    p = Path(backup_path)
    return p.with_name(p.name + MANIFEST_SUFFIX)


def read_manifest(backup_path: str | Path) -> dict[str, Any]:
    path = manifest_path(backup_path)
    if not path.is_file():
        raise EproError("restore.manifest_missing", 400, detail=f"{path} not found; a backup without its "
                        "manifest cannot be verified")
    try:
        manifest = json.loads(path.read_text("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise EproError("restore.manifest_invalid", 400, detail=f"{path} is not JSON") from None
    needed = ("format", "file", "tables", "records", "audit", "schema")
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or any(k not in manifest for k in needed):
        raise EproError("restore.manifest_invalid", 400, detail=f"{path} is not an {FORMAT} manifest")
    return manifest


def compare(manifest: dict[str, Any], actual: dict[str, Any]) -> list[FieldError]:
    """Every difference between what the manifest says and what the database holds."""
    out: list[FieldError] = []

    def differ(field: str, want: Any, got: Any) -> None:
        if want != got:
            out.append(FieldError(field, "mismatch", f"manifest says {want!r}, backup holds {got!r}"))

    want_tables, got_tables = manifest.get("tables", {}), actual["tables"]
    for name in sorted(set(want_tables) | set(got_tables)):
        if name not in got_tables or name not in want_tables:
            out.append(FieldError(f"tables.{name}", "missing",
                                  "table missing from the backup" if name not in got_tables
                                  else "table not listed in the manifest"))
            continue
        differ(f"tables.{name}.rows", want_tables[name].get("rows"), got_tables[name]["rows"])
        differ(f"tables.{name}.digest", want_tables[name].get("digest"), got_tables[name]["digest"])
    for key in ("count", "sha256_list_digest", "max_server_seq"):
        differ(f"records.{key}", manifest["records"].get(key), actual["records"][key])
    for rid in actual["records_mismatched"][:20]:
        out.append(FieldError(f"records.{rid}.sha256", "hash", "stored envelope does not hash to its sha256"))
    for key in ("rows", "head_seq", "head_hash"):
        differ(f"audit.{key}", manifest["audit"].get(key), actual["audit"][key])
    if not actual["audit"]["chain_ok"]:
        out.append(FieldError("audit.chain", "verify_chain",
                              f"audit chain broken at row {actual['audit']['first_bad_seq']}: "
                              f"{actual['audit']['problem']}"))
    differ("schema.sha256", manifest["schema"].get("sha256"), actual["schema"]["sha256"])
    differ("schema.migrations", manifest["schema"].get("migrations"), actual["schema"]["migrations"])
    return out


def file_problems(backup_path: Path, manifest: dict[str, Any]) -> list[FieldError]:
    """The backup file's size and sha256 against the manifest (a changed byte anywhere shows)."""
    if not backup_path.is_file():
        return [FieldError("file", "missing", f"{backup_path} not found")]
    size, sha = backup_path.stat().st_size, sha256_file(backup_path)
    problems = []
    if manifest["file"].get("bytes") != size:
        problems.append(FieldError("file.bytes", "mismatch",
                                   f"manifest says {manifest['file'].get('bytes')}, file has {size}"))
    if manifest["file"].get("sha256") != sha:
        problems.append(FieldError("file.sha256", "mismatch", "the backup file was changed after it was written"))
    return problems


def content_problems(conn, manifest: dict[str, Any]) -> tuple[list[FieldError], dict[str, Any] | None]:
    """Integrity, contents against the manifest, chain and append-only guards of an open database."""
    from server.migrations import missing_guards

    problems = [FieldError("file", "integrity_check", p) for p in integrity_problems(conn)]
    if problems:
        return problems, None
    facts = describe(conn)
    problems = compare(manifest, facts)
    problems += [FieldError(f"schema.{g}", "missing", "append-only trigger missing")
                 for g in missing_guards(Database(conn))]
    return problems, facts


def is_encrypted(manifest: dict[str, Any]) -> bool:
    return (manifest.get("encryption") or {}).get("scheme", "none") != "none"


def plaintext_problems(path: Path, manifest: dict[str, Any]) -> list[FieldError]:
    """A decrypted backup against the manifest's plaintext size and sha256."""
    want = manifest.get("plaintext") or {}
    problems = []
    if want.get("bytes") != path.stat().st_size:
        problems.append(FieldError("plaintext.bytes", "mismatch", "the decrypted backup has another size"))
    if want.get("sha256") != sha256_file(path):
        problems.append(FieldError("plaintext.sha256", "mismatch",
                                   "the decrypted backup is not the file the manifest describes"))
    return problems


def verify_backup(backup_path: str | Path, manifest: dict[str, Any] | None = None,
                  identity: str | Path | None = None) -> list[FieldError]:
    """Problems with a backup file against its manifest (file hash first, then contents); [] is good.

    An encrypted backup needs the ``identity`` file to check its contents."""
    backup_path = Path(backup_path)
    manifest = manifest if manifest is not None else read_manifest(backup_path)
    problems = file_problems(backup_path, manifest)
    if problems:
        return problems
    plain, temp = backup_path, None
    if is_encrypted(manifest):
        if identity is None:
            return [FieldError("identity", "required", "an encrypted backup is checked with its identity file")]
        temp = backup_path.with_name(f".{backup_path.name}.verify-{os.getpid()}")
        decrypt_file(backup_path, temp, read_identities(identity))
        plain = temp
    try:
        problems = plaintext_problems(plain, manifest) if temp is not None else []
        if problems:
            return problems
        conn = sqlite3.connect(f"file:{plain}?mode=ro", uri=True)
        try:
            return content_problems(conn, manifest)[0]
        finally:
            conn.close()
    finally:
        if temp is not None:
            _remove_db_files(temp)


def reconcile(db, manifest: dict[str, Any]) -> list[FieldError]:
    """Is ``db`` a continuation of the backup ``manifest`` describes (EX-07)? Every record in the backup
    is still there, unchanged and in the same order, and the audit chain verifies and still passes
    through the backup's head. Use it after a migration or a server move; [] is good."""
    out: list[FieldError] = []
    if manifest["records"]["count"]:
        now = record_hashes(db, manifest["records"]["max_server_seq"])
        for key in ("count", "sha256_list_digest"):
            if now[key] != manifest["records"][key]:
                out.append(FieldError(f"records.{key}", "mismatch",
                                      f"backup {manifest['records'][key]!r}, database {now[key]!r}"))
        out += [FieldError(f"records.{rid}.sha256", "hash", "stored envelope does not hash to its sha256")
                for rid in now["mismatched"][:20]]
    chain = verify_chain(db)
    if not chain.ok:
        out.append(FieldError("audit.chain", "verify_chain",
                              f"audit chain broken at row {chain.first_bad_seq}: {chain.problem}"))
    if manifest["audit"]["head_seq"] is not None:
        row = db.execute("SELECT hash FROM audit WHERE seq = ?", [manifest["audit"]["head_seq"]]).fetchone()
        if row is None or row[0] != manifest["audit"]["head_hash"]:
            out.append(FieldError("audit.head_hash", "mismatch",
                                  f"audit row {manifest['audit']['head_seq']} is not the backup's chain head"))
    return out


# --- files ------------------------------------------------------------------------------------------

def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    if os.name == "posix":
        _fsync(path)


def _owner_only(path: Path) -> None:
    """Backups hold clinical data and password hashes: readable by their owner only (POSIX)."""
    if os.name == "posix":
        os.chmod(path, 0o600)


def _remove_db_files(path: Path) -> None:
    for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")):
        p.unlink(missing_ok=True)


def _holds_data(path: Path) -> bool:
    wal = Path(f"{path}-wal")
    return (path.exists() and path.stat().st_size > 0) or (wal.exists() and wal.stat().st_size > 0)


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(doc, ensure_ascii=False, indent=2) + "\n", "utf-8")
    _owner_only(tmp)
    _fsync(tmp)
    os.replace(tmp, path)


def stamp(now: datetime) -> str:
    """``20251125T020000Z``: the UTC time part of backup file names."""
    return iso(now)[:19].replace("-", "").replace(":", "") + "Z"


def default_name(now: datetime, encrypted: bool = False) -> str:
    return f"als-epro-{stamp(now)}.sqlite" + (AGE_SUFFIX if encrypted else "")


# --- age encryption ---------------------------------------------------------------------------------

def parse_recipients(value: Any) -> list[str]:
    """Recipients from the settings: a list, or a string of ``age1…`` keys separated by spaces/commas."""
    if not value:
        return []
    items = value if isinstance(value, (list, tuple)) else re.split(r"[\s,]+", str(value))
    return [str(i).strip() for i in items if str(i).strip()]


def _recipients(keys: Sequence[str]) -> list[Any]:
    import pyrage

    out = []
    for key in keys:
        try:
            out.append(pyrage.x25519.Recipient.from_str(key))
        except Exception:  # noqa: BLE001 (pyrage raises its own error types)
            raise EproError("backup.recipient_invalid", 400, errors=[
                FieldError("BACKUP_RECIPIENTS", "age_recipient",
                           f"{key[:12]}… is not an age public key (age1…)")]) from None
    return out


def read_identities(path: str | Path) -> list[Any]:
    """The age identities (``AGE-SECRET-KEY-1…`` lines; ``#`` comments) in an identity file."""
    import pyrage

    try:
        lines = Path(path).read_text("utf-8").splitlines()
    except OSError as exc:
        raise EproError("restore.identity_unreadable", 400, detail=f"{path}: {exc.strerror}") from None
    out = []
    for line in lines:
        line = line.strip()
        if line and not line.startswith("#"):
            try:
                out.append(pyrage.x25519.Identity.from_str(line))
            except Exception:  # noqa: BLE001
                raise EproError("restore.identity_invalid", 400,
                                detail=f"{path} holds a line that is not an age identity") from None
    if not out:
        raise EproError("restore.identity_invalid", 400, detail=f"{path} holds no age identity")
    return out


def _new_private_file(path: Path):
    _remove_db_files(path)
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    return os.fdopen(fd, "wb")


def encrypt_file(plain: Path, out: Path, recipients: Sequence[str]) -> None:
    import pyrage

    keys = _recipients(recipients)
    with open(plain, "rb") as reader, _new_private_file(out) as writer:
        pyrage.encrypt_io(reader, writer, keys)
        writer.flush()
        os.fsync(writer.fileno())


def decrypt_file(encrypted: Path, out: Path, identities: Sequence[Any]) -> None:
    import pyrage

    try:
        with open(encrypted, "rb") as reader, _new_private_file(out) as writer:
            pyrage.decrypt_io(reader, writer, list(identities))
    except (pyrage.DecryptError, OSError):    # a wrong key, or a changed chunk (age's MAC)
        _remove_db_files(out)
        raise EproError("restore.decrypt_failed", 400, detail=(
            "the backup does not decrypt with this identity (another key, or the file was changed)")) \
            from None


# --- backup -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BackupResult:
    path: Path
    manifest_path: Path
    manifest: dict[str, Any]

    def summary(self) -> dict[str, Any]:
        m = self.manifest
        return {"backup": str(self.path), "manifest": str(self.manifest_path), "bytes": m["file"]["bytes"],
                "sha256": m["file"]["sha256"], "created_at": m["created_at"], "records": m["records"]["count"],
                "audit_rows": m["audit"]["rows"], "audit_head_hash": m["audit"]["head_hash"],
                "chain_ok": m["audit"]["chain_ok"], "encrypted": is_encrypted(m),
                "recipients": len((m.get("encryption") or {}).get("recipients") or [])}


def backup(db_path: str | Path, dest: str | Path, *, actor: Actor | None = None,
           now: datetime | None = None, busy_timeout_ms: int = 10000,
           recipients: Sequence[str] = (), unencrypted: bool = False) -> BackupResult:
    """Back up the (possibly live, WAL) database at ``db_path`` to ``dest`` (a file, or a folder to
    put ``als-epro-<UTC>.sqlite[.age]`` in) with its manifest; refuses to overwrite an existing file.

    Encrypted to ``recipients`` (age public keys); without any, only with ``unencrypted=True``.
    """
    db_path, dest = Path(db_path), Path(dest)
    actor = actor or Actor.cli()
    now = now or utc_now()
    recipients = parse_recipients(recipients)
    if not recipients and not unencrypted:
        raise EproError("backup.recipients_required", 400, errors=[FieldError(
            "BACKUP_RECIPIENTS", "required",
            "Set ALS_EPRO_BACKUP_RECIPIENTS to one or more age public keys, or pass --unencrypted.")])
    if recipients:
        _recipients(recipients)                 # a bad key fails before anything is written
    if not db_path.is_file():
        raise EproError("backup.source_missing", 400, detail=f"{db_path} does not exist")
    if dest.is_dir():
        dest = dest / default_name(now, encrypted=bool(recipients))
    if dest.exists() or manifest_path(dest).exists():
        raise EproError("backup.target_exists", 400, detail=f"{dest} exists; backups are never overwritten")
    if not dest.parent.is_dir():
        raise EproError("backup.target_missing", 400, detail=f"folder {dest.parent} does not exist")
    partial = dest.with_name(dest.name + ".partial")
    # the plain snapshot of an encrypted backup stays beside the live database, never in the backup folder
    snapshot = db_path.with_name(f".{dest.name}.snapshot") if recipients else partial
    _remove_db_files(partial)
    _remove_db_files(snapshot)
    source = open_db(db_path, busy_timeout_ms=busy_timeout_ms)
    try:
        copy = sqlite3.connect(str(snapshot))
        _owner_only(snapshot)
        try:
            source.conn.backup(copy)          # one step: one read transaction, a consistent snapshot
            copy.execute("PRAGMA journal_mode=DELETE")  # a single self-contained file
            problems = integrity_problems(copy)
            if problems:
                raise EproError("backup.integrity_failed", 500, detail="; ".join(problems[:5]))
            facts = describe(copy)
        finally:
            copy.close()
        _fsync(snapshot)
        plaintext = {"bytes": snapshot.stat().st_size, "sha256": sha256_file(snapshot)}
        if recipients:
            encrypt_file(snapshot, partial, recipients)
            _remove_db_files(snapshot)
            encryption = {"scheme": "age-x25519", "recipients": recipients}
        else:
            encryption = {"scheme": "none", "reason": "unencrypted flag"}
            log.warning("backup %s is NOT encrypted (unencrypted flag): keep it off shared storage", dest)
        manifest = {
            "format": FORMAT, "created_at": iso(now), "created_by": str(actor),
            "software_version": shared.__version__, "source": str(db_path.resolve()),
            # unencrypted, the backup file is the snapshot just hashed
            "file": {"name": dest.name, "bytes": partial.stat().st_size,
                     "sha256": sha256_file(partial) if recipients else plaintext["sha256"]},
            "plaintext": plaintext, "encryption": encryption,
            **{k: facts[k] for k in ("schema", "tables", "records", "audit")},
        }
        if facts["records_mismatched"]:
            manifest["records"]["mismatched"] = facts["records_mismatched"]
        os.replace(partial, dest)
        _write_json(manifest_path(dest), manifest)
        _fsync_dir(dest.parent)
        with write_tx(source):
            write_audit(source, actor, "backup.created", entity="backup", entity_id=dest.name,
                        detail={"file": dest.name, "file_sha256": manifest["file"]["sha256"],
                                "records": manifest["records"]["count"], "audit_rows": manifest["audit"]["rows"],
                                "audit_head_hash": manifest["audit"]["head_hash"],
                                "chain_ok": manifest["audit"]["chain_ok"],
                                "encrypted": bool(recipients), "recipients": len(recipients),
                                **({} if recipients else {"unencrypted_flag": True})}, now=now)
        backup_checkpoint(source, dest, now=now)   # the chain head, signed, beside it and in AUDIT_ANCHOR_DIR
    except BaseException:
        _remove_db_files(partial)
        _remove_db_files(snapshot)
        raise
    finally:
        source.close()
    return BackupResult(dest, manifest_path(dest), manifest)


# --- restore ----------------------------------------------------------------------------------------

def restore(backup_path: str | Path, target: str | Path, *, force: bool = False, dry_run: bool = False,
            actor: Actor | None = None, now: datetime | None = None,
            identity: str | Path | None = None) -> dict[str, Any]:
    """Restore ``backup_path`` into ``target`` only if it verifies against its manifest.

    Raises :class:`EproError` (``restore.*``) and leaves the target as it was when anything differs.
    ``force`` replaces a target that holds data (kept as ``<target>.pre-restore-<UTC>``); stop the
    server first. ``dry_run`` does every check in a temporary copy and removes it. An encrypted
    backup needs ``identity`` (an age identity file); it is decrypted next to the target and the
    plaintext checked against the manifest's sha256 before anything else.
    """
    from server.migrations import pending

    backup_path, target = Path(backup_path), Path(target)
    actor = actor or Actor.cli()
    now = now or utc_now()
    if not backup_path.is_file():
        raise EproError("restore.backup_missing", 400, detail=f"{backup_path} not found")
    manifest = read_manifest(backup_path)
    if not dry_run and _holds_data(target) and not force:
        raise EproError("restore.target_not_empty", 409,
                        detail=f"{target} already holds a database; use --force to replace it "
                               "(the old file is kept as .pre-restore-<time>)")
    problems = file_problems(backup_path, manifest)
    if problems:
        raise EproError("restore.verification_failed", 400, detail="the backup file does not match its manifest",
                        errors=problems)
    encrypted = is_encrypted(manifest)
    if encrypted and identity is None:
        raise EproError("restore.identity_required", 400, errors=[FieldError(
            "identity", "required", "This backup is encrypted: pass --identity FILE (the age private key).")])
    identities = read_identities(identity) if encrypted else []
    target.parent.mkdir(parents=True, exist_ok=True)
    work = target.with_name(target.name + ".restoring")
    plain = target.with_name(target.name + ".decrypted") if encrypted else backup_path
    _remove_db_files(work)
    try:
        if encrypted:
            decrypt_file(backup_path, plain, identities)
        if encrypted:               # a plain backup's file hash was checked above
            problems = plaintext_problems(plain, manifest)
            if problems:
                raise EproError("restore.verification_failed", 400,
                                detail="the decrypted backup does not match its manifest", errors=problems)
        src = sqlite3.connect(f"file:{plain}?mode=ro", uri=True)
        dst = sqlite3.connect(str(work))
        _owner_only(work)
        try:
            src.backup(dst)
        finally:
            dst.close()
            src.close()
        db = open_db(work)             # WAL, foreign keys, as the server opens it
        try:
            problems, facts = content_problems(db.conn, manifest)
            if problems:
                raise EproError("restore.verification_failed", 400,
                                detail="the restored copy does not match the manifest", errors=problems)
            todo = pending(db)
            if not dry_run:
                with write_tx(db):
                    write_audit(db, actor, "backup.restored", entity="backup", entity_id=manifest["file"]["name"],
                                detail={"file": backup_path.name, "file_sha256": manifest["file"]["sha256"],
                                        "backup_created_at": manifest.get("created_at"),
                                        "records": facts["records"]["count"], "audit_rows": facts["audit"]["rows"],
                                        "audit_head_hash": facts["audit"]["head_hash"]}, now=now)
                # the copy's chain was verified up to its head above: check only the rows just written
                head = facts["audit"]
                after = verify_chain(db, after=None if head["head_seq"] is None else (head["head_seq"],
                                                                                      head["head_hash"]))
                if not after.ok:  # pragma: no cover - the row just written is ours
                    raise EproError("restore.verification_failed", 500, detail=after.problem)
            with db.ensure_autocommit_on():
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            db.close()
        if encrypted:
            _remove_db_files(plain)
        result = {"backup": str(backup_path), "target": str(target), "dry_run": dry_run,
                  "encrypted": encrypted,
                  "records": facts["records"]["count"], "audit_rows": facts["audit"]["rows"] + (0 if dry_run else 1),
                  "backup_audit_head_hash": facts["audit"]["head_hash"], "tables": len(facts["tables"]),
                  "pending_migrations": todo, "replaced": None, "verified": True}
        if dry_run:
            _remove_db_files(work)
            return result
        _fsync(work)
        if _holds_data(target):
            result["replaced"] = str(_set_aside(target, now))
        else:
            _remove_db_files(target)
        os.replace(work, target)
        _remove_db_files(work)     # a -wal/-shm left by the work copy
        _fsync_dir(target.parent)
        return result
    except BaseException:
        _remove_db_files(work)
        if encrypted:
            _remove_db_files(plain)
        raise


def _set_aside(target: Path, now: datetime) -> Path:
    """Fold the old target's WAL into it and move it to ``<target>.pre-restore-<UTC>`` (never delete)."""
    old = sqlite3.connect(str(target))
    try:
        old.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        old.close()
    aside = target.with_name(f"{target.name}.pre-restore-{stamp(now)}")
    os.replace(target, aside)
    for suffix in ("-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    return aside


# --- retention --------------------------------------------------------------------------------------

def backups_in(folder: str | Path) -> list[Path]:
    """The backups in ``folder`` named as :func:`default_name` writes them, oldest first."""
    folder = Path(folder)
    return sorted((p for p in folder.iterdir() if NAME_RE.match(p.name)), key=lambda p: p.name)


def prune(folder: str | Path, keep: int) -> tuple[list[Path], list[Path]]:
    """Keep the backups of the newest ``keep`` days (by the UTC date in the name); remove the others
    with their manifests. Returns ``(kept, removed)``. Other files are never touched."""
    if int(keep) < 1:
        raise ValueError("keep must be at least 1")
    files = backups_in(folder)
    days = sorted({NAME_RE.match(p.name).group(1) for p in files}, reverse=True)[:int(keep)]
    kept = [p for p in files if NAME_RE.match(p.name).group(1) in days]
    removed = [p for p in files if p not in kept]
    for p in removed:
        manifest_path(p).unlink(missing_ok=True)
        p.unlink()
    return kept, removed


def iter_problems_text(problems: Iterable[FieldError]) -> str:
    return "; ".join(f"{p.field}: {p.message}" for p in problems)
