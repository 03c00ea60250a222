"""Role × staff route × object owner (IA-02, ASVS 4.2.1 IDOR), from the URL map.

``tests/server/test_auth_matrix.py`` checks role × route with placeholder URLs; this fills every
route argument with a real object of the staff member's own site and of the other site (participant,
device, record, staff account, sign-in session, export), signs in through the real form as each BJ01
role, and requires: another site's object is never served (403 or 404, never 2xx or a redirect that
acted) — except the admin permissions, which span sites by design — and every route argument is one
this test knows how to fill, so a new kind of object cannot slip past it.
"""

from __future__ import annotations

import re

import pytest

from server import create_app
from server.auth import CROSS_SITE, ROLE_PERMISSIONS
from server.db import open_db
from server.migrations import migrate
from server.store.participants import get_participant
from server.store.queries import raise_query
from server.store.staff import add_staff
from tests.server.helpers import ADMIN, PASSWORD, pair, seed, upload
from tests.staff.conftest import csrf_of, login
from tests.support.records import make_nasal

ROLES = {"investigator": "inv@bj01.example", "coordinator": "coord@bj01.example",
         "monitor": "mon@bj01.example", "admin": "admin@bj01.example"}
OTHER_SITE = "inv@sh02.example"
HTML = {"Accept": "text/html"}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Two sites with a participant, a device, a record, a signed-in staff member and an export each."""
    path = tmp_path_factory.mktemp("staff-objects") / "server.sqlite"
    db = open_db(path)
    migrate(db)
    seed(db)
    app = create_app({"DB": str(path), "TESTING": True})
    client = app.test_client()
    objects: dict[str, dict[str, str]] = {"own": {}, "other": {}}
    for side, subject in (("own", "S-001"), ("other", "S-101")):
        dev = pair(client, db, subject)
        record = make_nasal(subject)
        assert upload(client, dev["token"], [record]).status_code == 200
        objects[side].update(subject=subject, device_id=dev["device_id"], record_id=record["id"])
    for side, email in (("own", "inv@bj01.example"), ("other", OTHER_SITE)):
        objects[side]["staff_id"] = str(db.execute("SELECT id FROM staff WHERE email = ?", [email]).fetchone()[0])
    # a data query on each site's record (issue 12), raised by that site's monitor
    add_staff(db, "mon@sh02.example", "SH02", "monitor", PASSWORD, actor=ADMIN)
    for side, subject, email in (("own", "S-001", "mon@bj01.example"), ("other", "S-101", "mon@sh02.example")):
        monitor = next(db.query("SELECT * FROM staff WHERE email = ?", [email]))
        q = raise_query(db, get_participant(db, subject), objects[side]["record_id"], None, "probe?", staff=monitor)
        objects[side]["query_id"] = str(q["id"])
    # the other site's investigator signs in (a live session) and makes an export
    other = app.test_client()
    assert login(other, OTHER_SITE, PASSWORD).status_code == 303
    token = csrf_of(other.get("/staff/exports", headers=HTML))
    assert other.post("/staff/exports", data={"csrf_token": token, "formats": "csv"}).status_code == 303
    export = db.execute("SELECT entity_id FROM audit WHERE action = 'export.create' ORDER BY seq DESC").fetchone()[0]
    objects["other"].update(
        session_id=str(db.execute("SELECT s.id FROM staff_sessions s JOIN staff t ON t.id = s.staff_id"
                                  " WHERE t.email = ? AND s.ended_at IS NULL", [OTHER_SITE]).fetchone()[0]),
        name=export, path="manifest.json", flag_key="nasal:any", signoff_id="1")
    objects["own"].update(session_id="999999", name="BJ01-00000000T000000Z-1", path="manifest.json",
                          flag_key="nasal:any", signoff_id="999999")
    db.close()
    return app, objects


def _routes(app):
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        kind = getattr(view, "auth_kind", "")
        if rule.arguments and (kind.startswith("staff:") or kind == "signed_in"):
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                yield method, rule, kind


def _url(rule, values: dict[str, str]) -> str:
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", lambda m: values[m.group(1)], rule.rule)


def test_every_route_argument_is_an_object_this_matrix_can_fill(world):
    app, objects = world
    arguments = {a for _m, rule, _k in _routes(app) for a in rule.arguments}
    assert arguments, "staff routes with object arguments exist"
    assert arguments <= set(objects["own"]) & set(objects["other"]), arguments - set(objects["other"])


@pytest.mark.parametrize("role", sorted(ROLES))
def test_another_sites_objects_are_never_served(world, role):
    app, objects = world
    client = app.test_client()
    assert login(client, ROLES[role], PASSWORD).status_code == 303
    token = csrf_of(client.get("/staff/account/sessions", headers=HTML))
    checked = 0
    for method, rule, kind in _routes(app):
        if kind.startswith("staff:") and kind.split(":", 1)[1] in CROSS_SITE:
            continue          # admin permissions span every site by design (contract §4)
        url = _url(rule, objects["other"])
        if method == "GET":
            resp = client.get(url, headers=HTML)
        else:
            resp = client.post(url, data={"csrf_token": token, "reason": "probe", "confirm": "1"}, headers=HTML)
        assert resp.status_code in (403, 404), (role, method, url, resp.status_code)
        checked += 1
    assert checked >= 10
    # and the refusals left nothing behind: the other site's session is alive, its device not revoked
    app_db = open_db(app.config["DB"])
    try:
        assert app_db.execute("SELECT ended_at FROM staff_sessions WHERE id = ?",
                              [int(objects["other"]["session_id"])]).fetchone()[0] is None
        assert app_db.execute("SELECT revoked_at FROM devices WHERE id = ?",
                              [objects["other"]["device_id"]]).fetchone()[0] is None
    finally:
        app_db.close()


def test_the_same_routes_serve_the_own_sites_objects_to_permitted_roles(world):
    app, objects = world
    clients = {}
    for role in ("investigator", "monitor"):   # the monitor for what only monitors hold (queries, issue 12)
        clients[role] = app.test_client()
        assert login(clients[role], ROLES[role], PASSWORD).status_code == 303
    served = 0
    for method, rule, kind in _routes(app):
        if method != "GET" or kind in ("signed_in", "staff:admin_users", "staff:admin_devices"):
            continue
        perm = kind.split(":", 1)[1]
        client = clients["investigator" if perm in ROLE_PERMISSIONS["investigator"] else "monitor"]
        resp = client.get(_url(rule, objects["own"]), headers=HTML)
        assert resp.status_code not in (401, 403), (rule.rule, resp.status_code)
        served += resp.status_code == 200
    assert served >= 5     # the own participant, record, device pages… really render
