"""Build the export dataset of one site from the database, and run a whole site export.

:func:`site_source` reads the site as a :class:`server.exports.Source`: the study and sign-offs first,
then one participant with every record and version at a time, then the audit trail, each only when the
export asks for it; :func:`build_dataset` gathers it into the plain dict :mod:`server.exports.dataset`
documents. :func:`run_site_export` reads one consistent snapshot (one read transaction) and streams it
through :func:`server.exports.export_all` (memory holds one participant, not the site), then adds the review evidence the formats do not carry — investigator sign-offs with their current status
(valid / invalidated, re-signature required) and flag acknowledgements — under ``review/``, lists those
files in the same manifest, and writes the ``export.create`` audit row (who, where, formats, counts,
the manifest's sha256). A demo database (:func:`server.demo.is_demo_db`) is exported with
``study.demo`` true, so every file and the manifest say "DEMO — synthetic data".
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from sqlite_utils import Database

import shared
from server.clock import iso, utc_now
from server.db import query, write_tx
from server.exports import Source
from server.exports.manifest import MANIFEST, write_manifest
from server.exports.queries import write_query_files
from server.exports.screen import PROBLEMS_FILE, HeldBack, problems_body
from server.store.audit import Actor, write_audit
from server.store.day1 import confirmed_day1
from server.store.sites import get_site
from shared.csv_safe import spreadsheet_csv
from shared.protocol import Protocol

ALL = ("csv", "odm", "sdtm", "fhir")
REVIEW_DIR = "review"


def _actor_dict(text: str, staff: Mapping[str, dict[str, Any]], devices: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    """An export Actor from a store actor string (``staff:3``, ``device:D-1``, ``cli:user``, ``system:x``)."""
    kind, _, ident = text.partition(":")
    if kind == "staff" and ident in staff:
        s = staff[ident]
        return {"kind": "staff", "id": ident, "role": s["role"], "name": s["email"]}
    if kind == "device" and ident in devices:
        return {"kind": "device", "id": ident, "role": devices[ident]["role"], "name": None}
    if kind in ("staff", "device", "cli", "system"):
        return {"kind": kind, "id": ident or kind, "role": kind, "name": None}
    return {"kind": "system", "id": text or "unknown", "role": "system", "name": None}


def _audit_actor(row: Mapping[str, Any]) -> str:
    return f"{row['actor_kind']}:{row['actor_id']}" if row["actor_id"] else row["actor_kind"]


def is_demo(db: Database) -> bool:
    try:
        from server.demo import is_demo_db
    except ImportError:  # the demo package is optional
        return False
    return is_demo_db(db)


def _record_item(r: Mapping[str, Any], versions: list[Mapping[str, Any]], staff: Mapping[str, dict[str, Any]],
                 devices: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    """One stored record as a dataset record (raises on a value that cannot be decoded)."""
    env = json.loads(r["envelope"])
    if not isinstance(env, dict):
        raise ValueError("the stored envelope is not a JSON object")
    if r["device_id"]:
        origin = _actor_dict(f"device:{r['device_id']}", staff, devices)
    else:
        origin = _actor_dict(f"staff:{r['staff_id']}", staff, devices)
    record_versions = []
    for v in versions:
        by = origin if v["version"] == 1 else _actor_dict(v["created_by"], staff, devices)
        record_versions.append({
            "version": v["version"], "payload": json.loads(v["payload"]), "created_at": v["created_at"],
            "created_by": by, "requested_by": v["requested_by"], "reason": v["reason"],
            "changes": json.loads(v["changes"])})
    return {
        "id": r["id"], "type": r["type"], "participant": r["subject"], "respondent": r["respondent"],
        "instrument_version": r["instrument_version"], "schema_version": r["schema_version"],
        "event_time": env.get("event_time"), "entered_at": env.get("entered_at"), "received_at": r["received_at"],
        "server_seq": r["server_seq"], "sha256": r["sha256"], "originator": origin,
        "labels": json.loads(r["labels"]), "versions": record_versions}


def _signoff_items(db: Database, site_id: int, staff: Mapping[str, dict[str, Any]],
                   held: list[HeldBack]) -> list[dict[str, Any]]:
    """Investigator sign-offs for the ODM Signature elements (each row decoded on its own)."""
    from server.store.signoffs import _with_status

    out = []
    rows = query(db, "SELECT s.*, p.subject FROM signoffs s JOIN participants p ON p.id = s.participant_id"
                     " WHERE p.site_id = ? ORDER BY s.id", [site_id])
    for row in rows:
        try:
            try:
                item = _with_status(db, [row])[0]
                state = item["status"]["state"]
            except Exception:  # noqa: BLE001 - the status needs every covered record; report, keep the signature
                item = dict(row, covered=json.loads(row["covered"]))
                state = "unknown"
            signer = _actor_dict(f"staff:{item['staff_id']}", staff, {})
            signer["name"] = item["printed_name"]
            out.append({"id": item["id"], "subject": item["subject"], "signer": signer,
                        "printed_name": item["printed_name"], "meaning": item["meaning"],
                        "signed_at": item["signed_at"], "state": state,
                        "covered": [{"record_id": c["record_id"], "version": int(c["version"])} for c in item["covered"]]})
        except Exception as exc:  # noqa: BLE001 - any stored value: report, never fail the export
            held.append(HeldBack("signoff", str(row.get("id")), row.get("subject"), "signoff",
                                 f"{type(exc).__name__}: {exc}"[:160]))
    return out


def _participant_item(db: Database, p: Mapping[str, Any], site: Mapping[str, Any], enrolled: Mapping[str, Any] | None,
                      staff: Mapping[str, dict[str, Any]], devices: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    item = {"subject": p["subject"], "site": site["code"],
            "status": "withdrawn" if p["status"] == "withdrawn" else "enrolled",
            "onset": p["onset"], "first_dose_date": p["first_dose_date"], "tz": p["tz"]}
    day1 = confirmed_day1(db, p["id"])
    if day1 is not None:
        item["day1_confirmed"] = day1.isoformat()
    item["enrolled_at"] = enrolled["at"] if enrolled else p["enrolled_at"]
    if enrolled:
        item["enrolled_by"] = _actor_dict(_audit_actor(enrolled), staff, devices)
    return item


def _participant_records(db: Database, p: Mapping[str, Any], staff: Mapping[str, dict[str, Any]],
                         devices: Mapping[str, dict[str, Any]], held: list[HeldBack]) -> list[dict[str, Any]]:
    """One participant's records with every version, in server order (one bad row is held back)."""
    versions: dict[str, list[dict[str, Any]]] = {}
    for v in db.query("SELECT v.* FROM record_versions v JOIN records r ON r.id = v.record_id"
                      " WHERE r.participant_id = ? ORDER BY v.record_id, v.version", [p["id"]]):
        versions.setdefault(v["record_id"], []).append(v)
    records = []
    for r in db.query("SELECT r.*, ? AS subject FROM records r WHERE r.participant_id = ? ORDER BY r.server_seq",
                      [p["subject"], p["id"]]):
        try:
            records.append(_record_item(r, versions.get(r["id"], []), staff, devices))
        except Exception as exc:  # noqa: BLE001 - any stored value: report, never fail the export
            held.append(HeldBack("record", str(r["id"]), r["subject"], "stored row",
                                 f"cannot be decoded: {type(exc).__name__}: {exc}"[:160]))
    return records


def _audit_item(a: Mapping[str, Any]) -> dict[str, Any]:
    try:
        detail = json.loads(a["detail"])
    except (TypeError, ValueError):
        detail = a["detail"]  # kept verbatim as text
    return {"seq": a["seq"], "at": a["at"], "actor": _audit_actor(a), "action": a["action"],
            "entity": a["entity"] or "", "entity_id": a["entity_id"] or "", "detail": detail}


def site_source(db: Database, site_code: str, *, generated_by: str, protocol: Protocol,
                now: datetime | None = None) -> Source:
    """The site's export dataset as a :class:`server.exports.Source`: the head (study, sign-offs) read
    now, then one participant with its records at a time, then the audit rows, each read from the
    database only when the export asks for it. Read it inside one read transaction (one snapshot;
    :func:`run_site_export` does). A row that cannot be decoded is held back (``held``)."""
    held: list[HeldBack] = []
    site = get_site(db, site_code)
    staff = {str(r["id"]): r for r in query(db, "SELECT id, email, role FROM staff")}
    sponsor = protocol.data.get("study", {}).get("sponsor_protocol_id")
    head = {
        "study": {"protocol_id": protocol.id, "protocol_version": protocol.version,
                  **({"sponsor_protocol_id": sponsor} if sponsor else {}),
                  "site": {"code": site["code"], "name": site["name"]}, "demo": is_demo(db)},
        "generated_at": iso(now or utc_now()),
        "generated_by": generated_by,
        "software_version": shared.__version__,
        "signoffs": _signoff_items(db, site["id"], staff, held),
    }

    def chunks() -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
        enrolments = {r["entity_id"]: r for r in query(
            db, "SELECT entity_id, at, actor_kind, actor_id FROM audit WHERE action = 'participant.enroll'"
                " AND site_id = ? ORDER BY seq", [site["id"]])}
        for p in query(db, "SELECT * FROM participants WHERE site_id = ? ORDER BY subject", [site["id"]]):
            devices = {r["id"]: r for r in query(db, "SELECT id, role FROM devices WHERE participant_id = ?", [p["id"]])}
            yield (_participant_item(db, p, site, enrolments.get(p["subject"]), staff, devices),
                   _participant_records(db, p, staff, devices, held))

    def audit() -> Iterator[dict[str, Any]]:
        for a in db.query("SELECT * FROM audit WHERE site_id = ? ORDER BY seq", [site["id"]]):
            yield _audit_item(a)

    return Source(head, chunks(), audit(), held, unique_ids=True)


@contextmanager
def _snapshot(db: Database) -> Iterator[None]:
    """One read transaction (unless one is open): nothing written meanwhile is half-included."""
    own_tx = not db.conn.in_transaction
    if own_tx:
        db.conn.execute("BEGIN")
    try:
        yield
    finally:
        if own_tx:
            db.conn.execute("COMMIT")


def build_dataset(db: Database, site_code: str, *, generated_by: str, protocol: Protocol,
                  now: datetime | None = None, held_back: list[HeldBack] | None = None) -> dict[str, Any]:
    """The export dataset of one site as one dict (shape: :mod:`server.exports.dataset`): every
    participant of :func:`site_source` at once. A stored row that cannot be decoded is left out and
    appended to ``held_back`` (the export reports it); nothing raises for one bad row."""
    with _snapshot(db):
        source = site_source(db, site_code, generated_by=generated_by, protocol=protocol, now=now)
        participants, records = [], []
        for p, recs in source.chunks:
            participants.append(p)
            records += recs
        records.sort(key=lambda r: r["server_seq"])
        audit = list(source.audit)
    if held_back is not None:
        held_back += source.held
    signoffs = source.head.pop("signoffs")
    return {**source.head, "participants": participants, "records": records, "audit": audit, "signoffs": signoffs}


# --- review evidence files ------------------------------------------------------------------------------

SIGNOFF_COLUMNS = ("signoff_id", "subject", "period_from", "period_to", "printed_name", "signer_account",
                   "meaning", "signed_at_utc", "signed_at_local", "time_zone", "records_covered", "content_sha256",
                   "signature_sha256", "status", "status_detail")
FLAG_REVIEW_COLUMNS = ("review_id", "subject", "flag_key", "rule", "record_id", "record_version", "outcome",
                       "ae_number", "note", "reviewed_by", "staff_role", "reviewed_at_utc", "state_now")
_README = """ALS ePRO export — review evidence / 审阅证据
{marker}
signatures.csv   Investigator sign-offs: printed name, meaning, time (UTC and local), the records covered
                 and their hashes, and the status now: valid, or invalidated (a covered record was
                 corrected after signing; re-signature required).
                 研究者签署：姓名、含义、时间（UTC 与当地时间）、覆盖的记录及其哈希值、当前状态：
                 有效，或已失效（签署后覆盖的记录被更正，需要重新签署）。
flag_reviews.csv Acknowledgements of safety flags: outcome (not an adverse event / recorded as adverse
                 event no. … / participant contacted), note, who, when, and whether the flag's record
                 changed since (state_now = changed).
                 安全提示的确认：结论（非不良事件 / 已记录为不良事件编号… / 已联系受试者）、备注、
                 确认人、时间，以及之后该记录是否被更改（state_now = changed）。
"""


def _csv_bytes(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> bytes:
    """A review CSV for a spreadsheet: BOM, CRLF, every cell quoted and defused (OWASP CSV injection)."""
    return ("\ufeff" + spreadsheet_csv(header, rows)).encode("utf-8")


def _status_detail(status: Mapping[str, Any]) -> str:
    if status["state"] == "invalidated":
        changed = "; ".join(f"{c['record_id']} v{c['signed_version']}→v{c['current_version']}"
                            for c in status["changed"])
        return f"invalidated, re-signature required: {changed}"
    if status["state"] == "broken":
        return f"does not verify: {status['problem']}"
    added = len(status["added_since"])
    return f"{added} entr{'y' if added == 1 else 'ies'} in the period arrived after signing" if added else ""


def _site_signoffs(db: Database, site_id: int, held: list[HeldBack]) -> list[dict[str, Any]]:
    """Every sign-off at the site with its status, decoded row by row (one bad row is reported)."""
    from server.store.signoffs import _with_status

    out = []
    for row in query(db, "SELECT s.*, p.subject FROM signoffs s JOIN participants p ON p.id = s.participant_id"
                         " WHERE p.site_id = ? ORDER BY s.id", [site_id]):
        try:
            out.append(_with_status(db, [row])[0])
        except Exception as exc:  # noqa: BLE001 - any stored value: report, never fail the export
            held.append(HeldBack("signoff", str(row["id"]), row["subject"], "status",
                                 f"cannot be recomputed: {type(exc).__name__}: {exc}"[:160]))
            out.append(dict(row, covered=[], status={"state": "broken", "problem": "see problems.json"}))
    return out


def write_review_files(db: Database, site_id: int, protocol: Protocol, out_dir: Path, *, demo: bool,
                       now: datetime, held_back: list[HeldBack] | None = None) -> tuple[list[Path], dict[str, int]]:
    """``review/signatures.csv``, ``review/flag_reviews.csv`` and ``review/README.txt``; paths and counts.
    A sign-off or flag state that cannot be computed from what is stored is written as such and
    appended to ``held_back``."""
    from server.store.participants import participant_by_id
    from server.store.reviews import participant_flags

    held = held_back if held_back is not None else []
    emails = {r["id"]: r["email"] for r in query(db, "SELECT id, email FROM staff")}
    folder = out_dir / REVIEW_DIR
    folder.mkdir(parents=True, exist_ok=True)
    signoffs = _site_signoffs(db, site_id, held)
    rows = [[s["id"], s["subject"], s["period_from"], s["period_to"], s["printed_name"], emails.get(s["staff_id"], ""),
             s["meaning"], s["signed_at"], s["signed_at_local"], s["tz"], len(s["covered"]), s["content_sha256"],
             s["signature_sha256"], s["status"]["state"], _status_detail(s["status"])] for s in signoffs]
    (folder / "signatures.csv").write_bytes(_csv_bytes(SIGNOFF_COLUMNS, rows))
    reviews = query(db, "SELECT f.*, p.subject FROM flag_reviews f JOIN participants p ON p.id = f.participant_id"
                        " WHERE p.site_id = ? ORDER BY f.id", [site_id])
    states: dict[int, dict[str, str]] = {}
    for pid in sorted({r["participant_id"] for r in reviews}):
        try:
            found = participant_flags(db, protocol, participant_by_id(db, pid), now=now)["flags"]
            states[pid] = {i["key"]: i["state"] for i in found}
        except Exception as exc:  # noqa: BLE001 - any stored value: report, never fail the export
            subject = next(r["subject"] for r in reviews if r["participant_id"] == pid)
            held.append(HeldBack("participant", subject, None, "flag states",
                                 f"cannot be recomputed: {type(exc).__name__}: {exc}"[:160]))
            states[pid] = {}
    rows = []
    for r in reviews:
        state = states[r["participant_id"]].get(r["flag_key"], "no longer raised" if states[r["participant_id"]]
                                                 else "unknown (see problems.json)")
        latest = max(x["id"] for x in reviews if x["flag_key"] == r["flag_key"])
        rows.append([r["id"], r["subject"], r["flag_key"], r["rule"], r["record_id"], r["record_version"],
                     r["outcome"], r["ae_number"], r["note"], r["actor"], r["staff_role"], r["reviewed_at"],
                     state if r["id"] == latest else "superseded"])
    (folder / "flag_reviews.csv").write_bytes(_csv_bytes(FLAG_REVIEW_COLUMNS, rows))
    marker = "*** DEMO — synthetic data / 演示数据——合成数据 ***\n" if demo else ""
    (folder / "README.txt").write_text(_README.format(marker=marker), encoding="utf-8")
    files = [folder / "README.txt", folder / "signatures.csv", folder / "flag_reviews.csv"]
    return files, {"signoffs": len(signoffs), "flag_reviews": len(reviews),
                   "signoffs_invalidated": sum(s["status"]["state"] == "invalidated" for s in signoffs)}


def _add_to_manifest(out_dir: Path, extra: list[Path], review_counts: Mapping[str, int],
                     review_held: list[HeldBack]) -> dict[str, Any]:
    body = json.loads((out_dir / MANIFEST).read_text(encoding="utf-8"))
    listed = [out_dir / e["path"] for e in body["files"]]
    meta = {k: v for k, v in body.items() if k not in ("format", "marker", "verify_with", "files")}
    meta["counts"] = {**{k: v for k, v in body["counts"].items() if k != "files"}, "review": dict(review_counts)}
    if review_held:
        problems = json.loads((out_dir / PROBLEMS_FILE).read_text(encoding="utf-8"))
        problems = problems_body([*(HeldBack(**p) for p in problems["problems"]), *review_held])
        (out_dir / PROBLEMS_FILE).write_text(json.dumps(problems, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        meta["held_back"] = {**meta["held_back"], "count": problems["count"],
                             "items": [*meta["held_back"]["items"], *(str(p) for p in review_held)][:200]}
    write_manifest(out_dir, listed + extra, meta)
    return json.loads((out_dir / MANIFEST).read_text(encoding="utf-8"))


def run_site_export(db: Database, site_code: str, out_dir: str | Path, *, formats: Iterable[str] = ALL,
                    generated_by: str, actor: Actor, protocol: Protocol,
                    now: datetime | None = None) -> dict[str, Any]:
    """Export one site into ``out_dir`` (new or empty) and audit it; returns the manifest dict. A stored
    value that cannot be written is held back and reported (``problems.json``, manifest ``held_back``),
    never failing the export as a whole."""
    from server.exports import export_all

    from server.exports.queries import odm_annotations

    formats = tuple(formats)
    out = Path(out_dir)
    site = get_site(db, site_code)
    with _snapshot(db):  # read participant by participant, written as read (memory flat in participants)
        source = site_source(db, site_code, generated_by=generated_by, protocol=protocol, now=now)
        manifest = export_all(source, out, formats, odm_annotations=odm_annotations(db, site["id"]))
    demo = source.head["study"]["demo"]
    review_held: list[HeldBack] = []
    extra, review_counts = write_review_files(db, site["id"], protocol, out, demo=demo,
                                              now=now or utc_now(), held_back=review_held)
    extra += write_query_files(db, site["id"], out, annotate=False)  # data queries (issue 12): queries.csv
    manifest = _add_to_manifest(out, extra, review_counts, review_held)
    digest = hashlib.sha256((out / MANIFEST).read_bytes()).hexdigest()
    with write_tx(db):
        write_audit(db, actor, "export.create", entity="export", entity_id=out.name, site_id=site["id"],
                    detail={"site": site_code, "formats": list(formats), "out": str(out.resolve()),
                            "generated_by": generated_by, "generated_at": manifest["generated_at"],
                            "demo": demo, "counts": manifest["counts"],
                            "held_back": manifest["held_back"]["count"], "manifest_sha256": digest})
    return manifest


def zip_bytes(out_dir: str | Path) -> bytes:
    """The export folder as one zip (paths relative to the folder, under its name)."""
    out = Path(out_dir)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(out.rglob("*")):
            if f.is_file():
                zf.write(f, f"{out.name}/{f.relative_to(out).as_posix()}")
    return buf.getvalue()
