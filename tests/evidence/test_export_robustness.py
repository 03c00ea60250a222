"""Issue 16.1 (export half): no value the database already holds can break an export.

For every date-time (and date) field an export reads, and for malformed stored values, rows are
inserted straight into a real migrated SQLite file (no ingest validation in the way: another
engineer adds that; the exports must not rely on it). Each export then still finishes, writes the
good data in every format, names each bad row in ``problems.json`` and in the manifest, and the
manifest verifies. One test goes through the contract CLI (``export --format all`` and
``export verify``).
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import uuid
from datetime import date, datetime
from pathlib import Path
from typing import Any, Callable

import pytest

from server.exports.build import run_site_export
from server.exports.manifest import verify_manifest
from server.store.audit import Actor
from tests.review.conftest import CST, PROTOCOL, Devices
from tests.server.conftest import _seeded_template, db, db_path  # noqa: F401  (fixtures reused)
from tests.support.live_server import REPO_ROOT
from tests.support.records import make_alsfrs, make_dose, make_nasal

pytestmark = pytest.mark.e2e

ODD_TIMES = ["0001-01-01T00:00:00+08:00", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59-12:00",
             "9999-12-31T23:59:59+14:00", "0999-06-01T00:00:00+08:00", "1899-12-31T23:59:59Z",
             "2026-02-30T10:00:00+08:00", "2026-03-02T10:00:00", "yesterday", "", None, 17,
             "2026-03-02T25:00:00+08:00"]
ODD_DATES = ["0001-01-01", "9999-12-31", "2026-02-30", "", None, "03/02/2026", "2026-03-02T00:00:00+08:00", 20260302]


def _seed(db) -> dict[str, str]:
    """Good data for S-001: a baseline ALSFRS-R, two diaries, dose 1 (by the caregiver)."""
    dev = Devices(db)
    d = lambda day, hh=20: datetime(2025, 3, day, hh, 0, tzinfo=CST)  # noqa: E731
    nasal = make_nasal("S-001", day=date(2025, 3, 2), entered_at=d(2))
    alsfrs = make_alsfrs("S-001", entered_at=datetime(2025, 2, 27, 10, 0, tzinfo=CST))
    dev.send([nasal, make_nasal("S-001", day=date(2025, 3, 3), entered_at=d(3)), alsfrs])
    dose = make_dose("S-001", dose_number=2, planned=date(2025, 3, 4), entered_at=d(4, 9))
    dev.send([dose], role="caregiver")
    return {"nasal_symptoms": nasal["id"], "alsfrs_r": alsfrs["id"], "dose_confirmation": dose["id"]}


def _row(db, sql: str, args: list[Any]) -> dict[str, Any]:
    cur = db.execute(sql, args)
    names = [c[0] for c in cur.description]
    return dict(zip(names, cur.fetchone()))


TAGS: dict[str, str] = {}


def clone_record(db, src: str, *, envelope: Callable[[dict], None] | None = None,
                 payload: Callable[[dict], Any] | None = None, columns: dict[str, Any] | None = None,
                 version: dict[str, Any] | None = None, raw_payload: str | None = None,
                 raw_envelope: str | None = None) -> str:
    """Insert a copy of record ``src`` under a new id with one thing spoiled, straight into the tables."""
    rid = str(uuid.uuid4())
    TAGS[rid] = repr((columns, version, raw_payload, raw_envelope, getattr(envelope, "__closure__", None) and
                      [c.cell_contents for c in envelope.__closure__],
                      getattr(payload, "__closure__", None) and [c.cell_contents for c in payload.__closure__]))
    rec = _row(db, "SELECT * FROM records WHERE id = ?", [src])
    env = json.loads(rec["envelope"])
    env["id"] = rid
    if envelope:
        envelope(env)
    ver = _row(db, "SELECT * FROM record_versions WHERE record_id = ? AND version = 1", [src])
    body = json.loads(ver["payload"])
    if payload:
        payload(body)
    rec.update(id=rid, envelope=raw_envelope if raw_envelope is not None else json.dumps(env, ensure_ascii=False),
               server_seq=db.execute("SELECT MAX(server_seq) + 1 FROM records").fetchone()[0],
               device_seq=None, **(columns or {}))
    ver.update(record_id=rid, payload=raw_payload if raw_payload is not None else json.dumps(body, ensure_ascii=False),
               **(version or {}))
    with db.conn:
        db.execute(f"INSERT INTO records ({', '.join(rec)}) VALUES ({', '.join('?' * len(rec))})", list(rec.values()))
        db.execute(f"INSERT INTO record_versions ({', '.join(ver)}) VALUES ({', '.join('?' * len(ver))})",
                   list(ver.values()))
    return rid


def new_participant(db, n: int, **spoil: Any) -> str:
    """A participant row (plus one copied diary) with one spoiled column."""
    base = _row(db, "SELECT * FROM participants WHERE subject = 'S-001'", [])
    subject = f"S-9{n:02d}"
    row = {k: v for k, v in base.items() if k != "id"}
    row.update(subject=subject, **spoil)
    with db.conn:
        db.execute(f"INSERT INTO participants ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                   list(row.values()))
    return subject


def _set(path: str, value: Any) -> Callable[[dict], None]:
    def apply(obj: dict) -> None:
        *head, last = path.split(".")
        for part in head:
            obj = obj[part]
        obj[last] = value
    return apply


# (field, what to spoil) -> inserts one bad row per odd value; returns [(kind, id)] expected in problems
def _spoil(db, ids: dict[str, str], field: str) -> list[tuple[str, str]]:
    bad: list[tuple[str, str]] = []
    if field in ("event_time", "entered_at"):
        for rtype, src in ids.items():
            for v in ODD_TIMES:
                bad.append(("record", clone_record(db, src, envelope=_set(field, v))))
    elif field == "received_at":
        for v in ODD_TIMES:
            if v is not None:  # NOT NULL column
                bad.append(("record", clone_record(db, ids["nasal_symptoms"], columns={"received_at": v})))
    elif field == "created_at":
        for v in ODD_TIMES:
            if v is not None:
                bad.append(("record", clone_record(db, ids["alsfrs_r"], version={"created_at": v})))
    elif field == "payload.administered_at":
        for v in ODD_TIMES:
            bad.append(("record", clone_record(db, ids["dose_confirmation"], payload=_set("administered_at", v))))
    elif field in ("payload.date", "payload.planned_date"):
        src = ids["nasal_symptoms" if field == "payload.date" else "dose_confirmation"]
        for v in ODD_DATES:
            bad.append(("record", clone_record(db, src, payload=_set(field.split(".")[1], v))))
    elif field == "participant":
        n = 0
        for col, values in (("first_dose_date", ODD_DATES), ("tz", ["Mars/Olympus", "", "../../etc/passwd", "UTC+8"])):
            for v in values:
                if not isinstance(v, str):  # TEXT affinity: 20260302 would be stored as the valid "20260302"
                    continue
                n += 1
                bad.append(("participant", new_participant(db, n, **{col: v})))
    elif field == "malformed":
        src = ids["nasal_symptoms"]
        bad.append(("record", clone_record(db, src, raw_payload="{not json")))
        bad.append(("record", clone_record(db, src, raw_envelope="[]")))
        bad.append(("record", clone_record(db, src, raw_envelope="\x00")))
        bad.append(("record", clone_record(db, src, payload=lambda p: p.pop("symptoms"))))
        bad.append(("record", clone_record(db, src, payload=_set("symptoms.epistaxis", "three"))))
        bad.append(("record", clone_record(db, src, payload=_set("notes", "bell\x07 and nul\x00"))))
        bad.append(("record", clone_record(db, src, columns={"type": "unknown_form"})))
        bad.append(("record", clone_record(db, src, columns={"respondent": "neighbour"})))
        bad.append(("record", clone_record(db, src, columns={"labels": "not json"})))
        bad.append(("record", clone_record(db, ids["dose_confirmation"], payload=_set("nostrils", None))))
        bad.append(("record", clone_record(db, ids["alsfrs_r"], payload=_set("items", {"1": 9}))))
    else:  # pragma: no cover
        raise AssertionError(field)
    return bad


FIELDS = ["event_time", "entered_at", "received_at", "created_at", "payload.administered_at", "payload.date",
          "payload.planned_date", "participant", "malformed"]


def _exported_ids(out: Path) -> set[str]:
    got: set[str] = set()
    for name in ("alsfrs_r", "nasal_symptoms", "dose_confirmation"):
        text = (out / "csv" / f"{name}.csv").read_bytes().decode("utf-8-sig")
        got |= {line.split(",")[0].strip('"') for line in text.splitlines()[1:]}
    return got


@pytest.mark.parametrize("field", FIELDS)
def test_one_bad_stored_value_never_breaks_an_export(db, tmp_path, field):
    ids = _seed(db)
    bad = _spoil(db, ids, field)
    assert len(bad) >= 4
    out = tmp_path / "export"
    manifest = run_site_export(db, "BJ01", out, generated_by="test", actor=Actor.cli(), protocol=PROTOCOL)
    assert verify_manifest(out) == [], "a verifiable manifest however bad the data"
    problems = json.loads((out / "problems.json").read_text(encoding="utf-8"))
    reported = {(p["kind"], p["id"]) for p in problems["problems"]}
    missing = [(b, tag) for b in bad if b not in reported for tag in [TAGS.get(b[1])]]
    assert missing == [], f"not reported: {missing}"
    assert manifest["held_back"]["count"] == problems["count"] >= len(bad)
    assert manifest["held_back"]["file"] == "problems.json"
    # the good records are in every format
    good = set(ids.values())
    assert good <= _exported_ids(out)
    bad_records = {i for k, i in bad if k == "record"}
    assert not bad_records & _exported_ids(out)
    odm = next((out / "odm").glob("*_odm_snapshot.xml")).read_text(encoding="utf-8")
    fhir = (out / "fhir" / "QuestionnaireResponse-bundle.json").read_text(encoding="utf-8")
    qs = (out / "sdtm" / "qs.csv").read_text(encoding="utf-8-sig")
    for rid in good:
        assert f'FormRepeatKey="{rid}"' in odm
    assert ids["nasal_symptoms"] in fhir and ids["alsfrs_r"] in fhir and ids["alsfrs_r"] in qs
    for rid in bad_records:
        assert rid not in odm and rid not in fhir and rid not in qs
    assert manifest["validation"]["odm"]["result"] == "valid" and manifest["validation"]["fhir"]["result"] == "valid"
    for p in problems["problems"]:
        assert p["field"] and p["rule"], p


def test_the_cli_exports_everything_else_and_says_what_it_held_back(db, db_path, tmp_path):
    ids = _seed(db)
    bad = clone_record(db, ids["nasal_symptoms"], envelope=_set("event_time", "0001-01-01T00:00:00+08:00"))
    db.close()
    out = tmp_path / "export"

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "server", "--db", str(db_path), *args], cwd=REPO_ROOT,
                              capture_output=True, text=True, timeout=120)

    done = cli("export", "--format", "all", "--out", str(out), "--site", "BJ01")
    assert done.returncode == 0, done.stderr
    assert "HELD BACK: 1" in done.stdout and bad in done.stdout and "event_time" in done.stdout
    assert (out / "manifest.json").is_file()
    ok = cli("export", "verify", str(out))
    assert ok.returncode == 0, ok.stderr
    listed = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert listed["held_back"]["count"] == 1 and bad in listed["held_back"]["items"][0]
    assert {f["path"] for f in listed["files"]} >= {"problems.json", "sdtm/qs.xpt", "sdtm/define.xml"}


def test_a_dataset_with_bad_values_is_screened_not_refused():
    """The same class at the dataset level (no database): every odd time in every time field."""
    from server.exports import export_all  # noqa: F401 - the entry point the screen serves
    from server.exports.screen import screen_dataset
    from tests.exports.factories import make_dataset

    base = make_dataset()
    for name in ("event_time", "entered_at", "received_at"):
        for v in ODD_TIMES:
            ds = copy.deepcopy(base)
            victim = ds["records"][3]
            victim[name] = v
            clean, problems = screen_dataset(ds, probe=False)
            assert [p.id for p in problems] == [victim["id"]], (name, v)
            assert len(clean["records"]) == len(base["records"]) - 1
