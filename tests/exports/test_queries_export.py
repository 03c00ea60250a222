"""Queries in a site export: ``queries.csv`` listed in the manifest, and ODM annotations on the queried
item (or the entry) that keep the file valid against the ODM 1.3.2 schema."""

from __future__ import annotations

import csv

from lxml import etree

from server import create_app
from server.db import open_db
from server.exports.build import run_site_export
from server.exports.manifest import verify_manifest
from server.exports.validate import ODM_NS, validate_odm
from server.migrations import migrate
from server.store.audit import Actor
from server.store.participants import get_participant
from server.store.queries import act, raise_query
from shared.protocol import load_protocol
from tests.server.helpers import pair, seed, upload
from tests.support.records import make_nasal


def test_queries_go_into_the_csv_and_onto_the_odm_items(tmp_path):
    db = open_db(tmp_path / "s.sqlite")
    migrate(db)
    seed(db)
    app = create_app({"DB": str(tmp_path / "s.sqlite"), "TESTING": True})
    dev = pair(app.test_client(), db, "S-001")
    rec = make_nasal("S-001", grades={"congestion": 2})
    assert upload(app.test_client(), dev["token"], [rec]).status_code == 200
    staff = {r["email"]: r for r in db.query("SELECT * FROM staff")}
    p = get_participant(db, "S-001")
    q1 = raise_query(db, p, rec["id"], "symptoms.congestion", "=HYPERLINK(\"x\") congestion 2?", staff=staff["mon@bj01.example"])
    act(db, q1["id"], "answer", "Confirmed by phone.", staff=staff["coord@bj01.example"])
    raise_query(db, p, rec["id"], None, "Entered 3 days late?", staff=staff["coord@bj01.example"])

    out = tmp_path / "export"
    manifest = run_site_export(db, "BJ01", out, formats=("csv", "odm"), generated_by="test", actor=Actor("test", "t"),
                               protocol=load_protocol())
    assert "queries.csv" in [f["path"] for f in manifest["files"]]
    assert verify_manifest(out) == []
    with (out / "queries.csv").open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["query_id"], r["action"], r["staff_role"]) for r in rows] == [
        (str(q1["id"]), "raise", "monitor"), (str(q1["id"]), "answer", "coordinator"), (str(q1["id"] + 1), "raise", "coordinator")]
    assert rows[0]["text"].startswith("'=HYPERLINK")          # never a formula in a spreadsheet
    odm = next(out.rglob("*_odm.xml"))
    assert validate_odm(odm) == []
    tree = etree.parse(str(odm))
    ns = {"o": ODM_NS}
    item = tree.xpath(f"//o:FormData[@FormRepeatKey='{rec['id']}']//o:ItemData[@ItemOID='IT.NASAL_SYMPTOMS.CONGESTION']"
                      "/o:Annotation/o:Comment", namespaces=ns)
    assert len(item) == 1 and item[0].get("SponsorOrSite") == "Sponsor"
    assert "answered" in item[0].text and "Confirmed by phone." in item[0].text
    assert item[0].text.count("=HYPERLINK") == 1              # verbatim in ODM
    whole = tree.xpath(f"//o:FormData[@FormRepeatKey='{rec['id']}']/o:Annotation/o:Comment", namespaces=ns)
    assert len(whole) == 1 and "Entered 3 days late?" in whole[0].text and whole[0].get("SponsorOrSite") == "Site"
