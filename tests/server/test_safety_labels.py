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
