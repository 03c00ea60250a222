"""Issue 10 on the server: dose and consistency labels at ingest, a planned dose flagged the day after
its on-time window."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from shared.protocol import load_protocol
from tests.exports.factories import RecordMaker, symptoms

P = load_protocol()


def test_ingest_labels_doses_and_contradictions_and_keeps_the_record_as_sent(client, db):
    from tests.server.helpers import pair, upload

    dev = pair(client, db)                        # S-001, first dose planned 2025-03-01
    mk = RecordMaker("S-001")
    cst = timezone(timedelta(hours=8))
    dose1 = mk.dose(1, date(2025, 3, 1), datetime(2025, 3, 1, 9, tzinfo=cst))
    dose2 = mk.dose(2, date(2025, 3, 4), datetime(2025, 3, 2, 9, tzinfo=cst))       # day 2
    diary = mk.nasal(date(2025, 3, 3), datetime(2025, 3, 3, 21, tzinfo=cst), symptoms(epistaxis=0), needed_help=True)
    future = mk.nasal(date(2025, 3, 6), datetime(2025, 3, 3, 21, 5, tzinfo=cst))
    results = upload(client, dev["token"], [dose1, dose2, diary, future]).get_json()["results"]
    assert [r["status"] for r in results] == ["accepted"] * 4
    labels = {r["id"]: r["labels"] for r in results}
    assert labels[dose1["id"]] == []
    assert {"dose_early", "dose_too_close"} <= set(labels[dose2["id"]])
    assert "inconsistent_epistaxis_help" in labels[diary["id"]]
    assert "inconsistent_future_date" in labels[future["id"]]
    import json
    stored = json.loads(db.execute("SELECT envelope FROM records WHERE id = ?", [diary["id"]]).fetchone()[0])
    assert stored["payload"]["epistaxis_needed_help"] is True      # stored as it arrived


def test_a_planned_dose_not_confirmed_is_flagged_the_day_after_its_window(db):
    from server.store.participants import get_participant
    from server.store.reviews import participant_flags
    p = get_participant(db, "S-001")            # dose 1 planned 2025-03-01 (day 1), window day 1-2
    cst = timezone(timedelta(hours=8))

    def keys(moment):
        return {i["key"] for i in participant_flags(db, P, p, now=moment)["flags"]}

    assert "dose_not_confirmed:S-001:1" not in keys(datetime(2025, 3, 2, 23, 59, tzinfo=cst))
    assert "dose_not_confirmed:S-001:1" in keys(datetime(2025, 3, 3, 0, 1, tzinfo=cst))
    # dose 3 (day 8) is flagged on day 10, inside the DLT window (it used to be day 17)
    assert "dose_not_confirmed:S-001:3" in keys(datetime(2025, 3, 10, 8, tzinfo=cst))


def test_day1_confirmation_is_audited_append_only_and_sent_to_the_devices(client, db):
    import pytest

    from server.store.audit import audit_for_entity
    from server.store.day1 import confirm_day1, confirmed_day1
    from server.store.participants import get_participant, participant_timeline
    from shared.errors import EproError
    from tests.server.helpers import ADMIN, pair, upload

    dev = pair(client, db)
    mk = RecordMaker("S-001")
    cst = timezone(timedelta(hours=8))
    # dose 1 planned 2025-03-01, typed as 2025-02-28 on the device
    upload(client, dev["token"], [mk.dose(1, date(2025, 3, 1), datetime(2025, 2, 28, 9, tzinfo=cst))])
    p = get_participant(db, "S-001")
    assert participant_timeline(db, p).day1 == date(2025, 2, 28) and confirmed_day1(db, p["id"]) is None
    with pytest.raises(EproError) as exc:           # another date than dose 1's needs a reason
        confirm_day1(db, "S-001", "2025-03-01", actor=ADMIN)
    assert exc.value.errors[0].field == "reason" and exc.value.errors[0].rule == "reason_required"
    confirm_day1(db, "S-001", "2025-03-01", reason="device clock was a day behind", actor=ADMIN)
    tl = participant_timeline(db, p)
    assert tl.day1 == date(2025, 3, 1) and tl.study_day(date(2025, 2, 28)) == -1
    assert [a["action"] for a in audit_for_entity(db, "participant", "S-001")][-1] == "participant.confirm_day1"
    change = db.execute("SELECT data FROM changes WHERE kind = 'timeline' ORDER BY seq DESC LIMIT 1").fetchone()[0]
    import json
    assert json.loads(change)["day1_confirmed"] == "2025-03-01" and json.loads(change)["study_day1"] == "2025-03-01"
    import sqlite3
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("UPDATE day1_confirmations SET day1 = '2025-01-01'")
    # the export counts its study days from the confirmed day, not from the mistyped dose-1 date
    from server.exports.build import build_dataset
    from server.exports.dataset import participant_timeline as export_timeline

    ds = build_dataset(db, "BJ01", generated_by="test", protocol=load_protocol())
    item = next(q for q in ds["participants"] if q["subject"] == "S-001")
    assert item["day1_confirmed"] == "2025-03-01"
    assert export_timeline(item, ds["records"]).day1 == date(2025, 3, 1)
