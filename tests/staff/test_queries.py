"""Data clarification queries through the real staff pages: the role matrix (who may raise, answer,
close), the workflow with a correction, the thread, the lists and counts, and the audit rows."""

from __future__ import annotations

import pytest

from server.store.queries import act, raise_query
from tests.staff.conftest import HTML, csrf_of, login

EMAILS = {"investigator": "inv@bj01.example", "coordinator": "coord@bj01.example",
          "monitor": "mon@bj01.example", "admin": "admin@bj01.example"}


def client_as(app, role):
    c = app.test_client()
    assert login(c, EMAILS[role]).status_code == 303
    return c


def a_record(db, subject="S-003", rtype="nasal_symptoms"):
    return db.execute("SELECT r.id FROM records r JOIN participants p ON p.id = r.participant_id"
                      " WHERE p.subject = ? AND r.type = ? ORDER BY r.server_seq LIMIT 1", [subject, rtype]).fetchone()[0]


def staff_row(db, role):
    return next(db.query("SELECT * FROM staff WHERE email = ?", [EMAILS[role]]))


def participant(db, subject="S-003"):
    return next(db.query("SELECT * FROM participants WHERE subject = ?", [subject]))


def post(c, page, url, data):
    token = csrf_of(c.get(page, headers=HTML))
    return c.post(url, data={"csrf_token": token, **data}, headers=HTML)


@pytest.mark.parametrize("role,allowed", [("monitor", True), ("coordinator", True), ("investigator", False),
                                          ("admin", False)])
def test_who_may_raise_a_query(app, db, role, allowed):
    rec = a_record(db)
    c = client_as(app, role)
    page = c.get(f"/staff/records/{rec}/query", headers=HTML)
    assert page.status_code == (200 if allowed else 403)
    resp = post(c, "/staff/account/sessions", "/staff/participants/S-003/queries",
                {"record_id": rec, "field": "symptoms.epistaxis", "text": "Grade 2 nosebleed but no help needed?"})
    assert resp.status_code == (303 if allowed else 403)
    count = db.execute("SELECT COUNT(*) FROM queries").fetchone()[0]
    assert count == (1 if allowed else 0)


@pytest.mark.parametrize("role,answer,close", [("investigator", True, False), ("coordinator", True, False),
                                               ("monitor", False, True), ("admin", False, False)])
def test_who_may_answer_and_close(app, db, role, answer, close):
    q = raise_query(db, participant(db), a_record(db), None, "Please check this day.", staff=staff_row(db, "monitor"))
    c = client_as(app, role)
    base = f"/staff/participants/S-003/queries/{q['id']}"
    resp = post(c, "/staff/account/sessions", base + "/answer", {"text": "Checked with the participant."})
    assert resp.status_code == (303 if answer else 403)
    resp = post(c, "/staff/account/sessions", base + "/close", {"text": ""})
    assert resp.status_code == (303 if close else 403)
    state = db.execute("SELECT state FROM queries WHERE id = ?", [q["id"]]).fetchone()[0]
    assert state == ("answered" if answer else "closed" if close else "open")


def test_the_whole_workflow_with_a_correction_is_threaded_and_audited(app, db):
    rec = a_record(db)
    mon, coord = client_as(app, "monitor"), client_as(app, "coordinator")
    resp = post(mon, f"/staff/records/{rec}/query", "/staff/participants/S-003/queries",
                {"record_id": rec, "field": "symptoms.congestion", "text": "Congestion 0 but 3 the day before?"})
    assert resp.status_code == 303
    qid = db.execute("SELECT id FROM queries").fetchone()[0]
    thread = f"/staff/participants/S-003/queries/{qid}"
    assert resp.headers["Location"].endswith(thread)
    # the site sees it: participants list count, the participant page panel, the record panel, the list
    listing = coord.get("/staff/participants", headers=HTML).get_data(as_text=True)
    assert "1 open · 0 answered" in listing
    page = coord.get("/staff/participants/S-003", headers=HTML).get_data(as_text=True)
    assert f"Query {qid}" in page and 'id="queries"' in page and "Congestion 0 but 3" in page
    assert "Open queries</dt><dd>1</dd>" in page                # the summary counts it
    records = coord.get("/staff/participants/S-003/records", headers=HTML).get_data(as_text=True)
    assert f"/staff/records/{rec}/query" in records            # "Raise a query" beside each record
    inv_page = client_as(app, "investigator").get("/staff/participants/S-003/records", headers=HTML).get_data(as_text=True)
    assert f"Query {qid}" in inv_page and f"/staff/records/{rec}/query" not in inv_page
    site_list = coord.get("/staff/queries", headers=HTML).get_data(as_text=True)
    assert "S-003" in site_list and "open" in site_list

    resp = post(coord, thread, thread + "/answer", {"text": "Typing error, it was 1.", "correction_field": "symptoms.congestion",
                                                    "correction_value": "1", "correction_reason": ""})
    assert resp.status_code == 303
    version = db.execute("SELECT version, reason, requested_by FROM record_versions WHERE record_id = ?"
                         " ORDER BY version DESC", [rec]).fetchone()
    assert version[0] == 2 and version[1] == "Typing error, it was 1." and version[2] == f"query {qid}"
    assert post(mon, thread, thread + "/reopen", {"text": "Please also confirm the date."}).status_code == 303
    assert post(coord, thread, thread + "/answer", {"text": "Date confirmed."}).status_code == 303
    assert post(mon, thread, thread + "/close", {"text": "Resolved."}).status_code == 303
    page = mon.get(thread, headers=HTML).get_data(as_text=True)
    assert "closed" in page and "version 2" in page and "Resolved." in page
    assert page.count('class="query-msg') == 5
    actions = [r[0] for r in db.execute("SELECT action FROM audit WHERE entity = 'query' AND entity_id = ? ORDER BY seq",
                                        [str(qid)])]
    assert actions == ["query.raise", "query.answer", "query.reopen", "query.answer", "query.close"]
    assert db.execute("SELECT COUNT(*) FROM audit WHERE action = 'record.correct' AND entity_id = ?", [rec]).fetchone()[0] == 1
    # a closed query takes no more answers
    assert post(coord, thread, thread + "/answer", {"text": "late"}).status_code == 303
    assert db.execute("SELECT COUNT(*) FROM query_messages WHERE query_id = ?", [qid]).fetchone()[0] == 5


def test_the_pages_speak_chinese(app, db):
    q = raise_query(db, participant(db), a_record(db), "symptoms.epistaxis", "请核实。", staff=staff_row(db, "monitor"))
    c = client_as(app, "coordinator")
    token = csrf_of(c.get("/staff/account/sessions", headers=HTML))
    assert c.post("/staff/language", data={"csrf_token": token, "lang": "zh-CN"}, headers=HTML).status_code == 303
    listing = c.get("/staff/queries", headers=HTML).get_data(as_text=True)
    assert "数据质疑" in listing and "待回复" in listing
    thread = c.get(f"/staff/participants/S-003/queries/{q['id']}", headers=HTML).get_data(as_text=True)
    assert "发送回复" in thread and "请核实。" in thread


def test_rules_the_store_keeps_whoever_calls_it(db):
    mon, coord = staff_row(db, "monitor"), staff_row(db, "coordinator")
    q = raise_query(db, participant(db), a_record(db), None, "?", staff=mon)
    from shared.errors import EproError

    with pytest.raises(EproError) as err:
        act(db, q["id"], "cancel", "", staff=coord)              # not the raiser, not a monitor
    assert err.value.status == 403
    with pytest.raises(EproError) as err:
        act(db, q["id"], "reopen", "again", staff=mon)           # only an answered query goes back
    assert err.value.status == 409
    act(db, q["id"], "cancel", "", staff=mon)
    with pytest.raises(EproError) as err:
        act(db, q["id"], "close", "", staff=mon)
    assert err.value.status == 409
    with pytest.raises(EproError) as err:                       # another participant's record
        raise_query(db, participant(db, "S-001"), a_record(db), None, "?", staff=mon)
    assert err.value.status == 400
    with pytest.raises(EproError):                              # a field the entry does not have
        raise_query(db, participant(db), a_record(db), "items.1", "?", staff=mon)
    with pytest.raises(Exception, match="append-only"):
        db.execute("UPDATE query_messages SET body = 'changed'")
