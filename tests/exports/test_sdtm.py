"""SDTM-style QS and EC: sponsor-defined codes documented, ECOCCUR=N for missed doses, ECTRT masked."""

from __future__ import annotations

import re

from server.exports.dataset import current_version
from tests.exports.conftest import header, read_csv

TESTCD = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,7}$")


def test_qs_columns_and_rows(exported):
    ds, out, _ = exported
    assert header(out / "sdtm" / "qs.csv")[:4] == ["STUDYID", "DOMAIN", "USUBJID", "QSSEQ"]
    rows = read_csv(out / "sdtm" / "qs.csv")
    alsfrs = [r for r in ds["records"] if r["type"] == "alsfrs_r"]
    nasal = [r for r in ds["records"] if r["type"] == "nasal_symptoms"]
    # ALSFRS-R: gastrostomy + 12 scored items + 4 domains + total; nasal: 14 symptoms + TNSS + 2 questions
    assert len(rows) == 18 * len(alsfrs) + 17 * len(nasal)
    for r in rows:
        assert r["DOMAIN"] == "QS" and TESTCD.match(r["QSTESTCD"]) and len(r["QSTEST"]) <= 40
        assert r["USUBJID"].startswith("XMEC-2024-267-002-BJ01-P-") and r["STUDYID"] == "XMEC-2024-267-002"
    for subject in ("P-001", "P-002", "P-003"):
        seqs = [int(r["QSSEQ"]) for r in rows if r["USUBJID"].endswith(subject)]
        assert seqs == list(range(1, len(seqs) + 1))


def test_qs_alsfrs_conventions(exported):
    ds, out, _ = exported
    rows = read_csv(out / "sdtm" / "qs.csv")
    rec = next(r for r in ds["records"] if r["type"] == "alsfrs_r" and len(r["versions"]) > 1)
    mine = {r["QSTESTCD"]: r for r in rows if r["QSGRPID"] == rec["id"]}
    assert "ALSF015A" in mine and "ALSF015B" not in mine, "only the scored one of 5a/5b"
    assert mine["ALSF0112"]["QSSTRESN"] == "3" and mine["ALSF01TS"]["QSSTRESN"] == "45"
    assert mine["ALSF01TS"]["QSDRVFL"] == "Y" and mine["ALSF0101"]["QSDRVFL"] == ""
    assert mine["ALSF0101"]["QSORRES"] == "Speech is normal." and mine["ALSF0101"]["QSCAT"] == "ALSFRS-R"
    assert mine["ALSF0101"]["QSEVAL"] == "CAREGIVER", "P-002's caregiver answered"
    switched = [r for r in rows if r["QSTESTCD"] == "ALSF015B"]
    assert switched and all(r["USUBJID"].endswith("P-002") for r in switched)


def test_qs_nasal_conventions(exported):
    _, out, _ = exported
    rows = [r for r in read_csv(out / "sdtm" / "qs.csv") if r["QSCAT"] == "NASAL SYMPTOM DIARY"]
    cough = [r for r in rows if r["QSTESTCD"] == "NSD0112"]
    not_done = [r for r in cough if r["QSSTAT"] == "NOT DONE"]
    assert not_done and all(r["QSREASND"] == "NO DOSE THAT DAY" and r["QSORRES"] == "" for r in not_done)
    assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2}", r["QSDTC"]) for r in rows)
    assert {r["QSORRES"] for r in rows if r["QSTESTCD"] == "NSD0106"} >= {"None", "Moderate"}
    assert {r["QSORRES"] for r in rows if r["QSTESTCD"] == "NSD01EH"} == {"Y", "N"}


def test_every_code_used_is_documented_as_sponsor_defined(exported):
    _, out, _ = exported
    codes = read_csv(out / "sdtm" / "sdtm_codes.csv")
    documented = {c["TESTCD_OR_VARIABLE"]: c for c in codes}
    for r in read_csv(out / "sdtm" / "qs.csv"):
        assert "Sponsor-defined" in documented[r["QSTESTCD"]]["STATUS"]
    for col in ("ECTRT", "ECOCCUR", "ECLAT", "ECDOSU", "ECROUTE"):
        assert col in documented
    readme = (out / "sdtm" / "README_SDTM.txt").read_text(encoding="utf-8")
    assert "sponsor-defined" in readme and "ECOCCUR=N" in readme


def test_ec_one_row_per_nostril_and_missed_doses_are_not_zero(exported):
    ds, out, _ = exported
    rows = read_csv(out / "sdtm" / "ec.csv")
    doses = [r for r in ds["records"] if r["type"] == "dose_confirmation"]
    assert len(rows) == 2 * len(doses)
    assert {r["ECTRT"] for r in rows} == {"MASKED"} and {r["ECROUTE"] for r in rows} == {"NASAL"}
    assert {r["ECLAT"] for r in rows} == {"LEFT", "RIGHT"}
    assert all(r["ECDOSE"] != "0" for r in rows)
    missed = next(d for d in doses if not current_version(d)["payload"]["given"])
    mine = [r for r in rows if r["ECGRPID"] == missed["id"]]
    assert [r["ECOCCUR"] for r in mine] == ["N", "N"]
    assert all(r["ECDOSE"] == "" and r["ECDOSU"] == "" and r["ECREASOC"] == "FELT UNWELL" for r in mine)
    assert all(r["ECSTDTC"] == current_version(missed)["payload"]["planned_date"] for r in mine)
    given = [r for r in rows if r["ECOCCUR"] == "Y"]
    assert all(r["ECDOSE"] == "1" and r["ECDOSU"] == "mL" for r in given)


def test_suppec_points_at_existing_ec_rows(exported):
    _, out, _ = exported
    ec = {(r["USUBJID"], r["ECSEQ"]) for r in read_csv(out / "sdtm" / "ec.csv")}
    supp = read_csv(out / "sdtm" / "suppec.csv")
    assert supp and all((s["USUBJID"], s["IDVARVAL"]) in ec and s["IDVAR"] == "ECSEQ" for s in supp)
    assert all(len(s["QNAM"]) <= 8 for s in supp)
    assert {s["QVAL"] for s in supp if s["QNAM"] == "ECLOSS"} == {"COUGHED_CHOKED"}
    assert {s["QVAL"] for s in supp if s["QNAM"] == "ECADMBY"} == {"CAREGIVER"}
