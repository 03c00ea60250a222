"""SDTM-style QS and EC: sponsor-defined codes documented, ECOCCUR=N for missed doses, ECTRT masked."""

from __future__ import annotations

import re

import pytest

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


# --- issue 10 §5: analysis-ready SDTM ------------------------------------------------------------------

def _qs(out):
    return read_csv(out / "sdtm" / "qs.csv")


def test_studyid_is_the_sponsor_protocol_id_and_the_nct_number_is_kept(exported):
    from shared.protocol import load_protocol

    _, out, _ = exported
    sponsor = load_protocol().data["study"]["sponsor_protocol_id"]
    assert sponsor == "XMEC-2024-267-002"
    for name in ("qs", "ec", "suppqs", "suppec", "dfs", "ts"):
        assert {r["STUDYID"] for r in read_csv(out / "sdtm" / f"{name}.csv")} == {sponsor}, name
    ts = {r["TSPARMCD"]: r["TSVAL"] for r in read_csv(out / "sdtm" / "ts.csv")}
    assert ts["REGID"] == "NCT06598202" and ts["SPONSOR"] == sponsor
    assert {r["REGID"] for r in read_csv(out / "sdtm" / "dfs.csv")} == {"NCT06598202"}


def test_visits_come_from_the_protocol_schedule(exported):
    from server.exports.visits import protocol_for, protocol_visits

    ds, out, _ = exported
    planned = {v.name: v.num for v in protocol_visits(protocol_for("NCT06598202"))}
    assert planned["BASELINE"] == 0 and planned["DAY 1"] == 1 and planned["DAY 365"] == 365
    for r in _qs(out) + read_csv(out / "sdtm" / "ec.csv"):
        if r["VISIT"].startswith("UNSCHEDULED"):
            assert float(r["VISITNUM"]) % 1 == pytest.approx(0.01)
        else:
            assert planned[r["VISIT"]] == float(r["VISITNUM"]), r["VISIT"]
    qs = _qs(out)
    by_group = {r["QSGRPID"]: r for r in qs}
    alsfrs_base = [r for r in qs if r["QSTESTCD"] == "ALSF01TS" and r["VISIT"] == "BASELINE"]
    assert {r["USUBJID"][-5:] for r in alsfrs_base} == {"P-001", "P-002"}, "P-003 has no baseline report"
    weekly = {(r["USUBJID"][-5:], r["VISIT"]) for r in qs if r["QSTESTCD"] == "ALSF01TS"}
    assert ("P-001", "DAY 8") in weekly and ("P-001", "DAY 15") in weekly and ("P-001", "DAY 22") in weekly
    # the second diary of study day 6 fills no planned item: unscheduled after DAY 6
    second = [r for r in ds["records"] if r["type"] == "nasal_symptoms" and r["participant"] == "P-001"
              and r["versions"][-1]["payload"]["date"] == "2026-03-07"]
    assert sorted(by_group[r["id"]]["VISIT"] for r in second) == ["DAY 6", "UNSCHEDULED 6.01"]
    ec = read_csv(out / "sdtm" / "ec.csv")
    assert [r["VISIT"] for r in ec if r["USUBJID"].endswith("P-001") and r["ECLAT"] == "LEFT"] == \
        ["DAY 1", "DAY 4", "DAY 8", "DAY 11"]


def test_epochs_and_study_days(exported):
    qs = _qs(exported[1])
    for r in qs:
        day = int(r["QSDY"])
        assert day != 0
        if r["VISIT"] == "BASELINE":
            assert r["EPOCH"] == "SCREENING"
        elif 1 < day <= 14:
            assert r["EPOCH"] == "TREATMENT"
        elif day > 14:
            assert r["EPOCH"] == "FOLLOW-UP"
    ec = read_csv(exported[1] / "sdtm" / "ec.csv")
    assert {r["EPOCH"] for r in ec if r["ECOCCUR"] == "Y"} == {"TREATMENT"}


def test_date_times_are_participant_local_with_offset(exported):
    ds, out, _ = exported
    qs = _qs(out)
    recs = {r["id"]: r for r in ds["records"]}
    for r in qs:
        if r["QSCAT"] == "ALSFRS-R":
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+08:00", r["QSDTC"]), r["QSDTC"]
            from datetime import datetime
            assert datetime.fromisoformat(r["QSDTC"]) == datetime.fromisoformat(recs[r["QSGRPID"]]["event_time"])
    ec = read_csv(out / "sdtm" / "ec.csv")
    given = [r for r in ec if r["ECOCCUR"] == "Y"]
    assert given and all(r["ECSTDTC"].endswith("+08:00") for r in given)


def test_a_device_in_another_zone_still_gives_participant_local_times(dataset, tmp_path):
    """A record sent with a UTC offset (device clock in UTC) is shown in the participant's zone."""
    from datetime import datetime, timezone

    from server.exports import sdtm_export

    rec = next(r for r in dataset["records"] if r["type"] == "alsfrs_r" and r["participant"] == "P-001")
    local = datetime.fromisoformat(rec["event_time"])
    rec["event_time"] = local.astimezone(timezone.utc).isoformat()
    sdtm_export(dataset, tmp_path)
    row = next(r for r in read_csv(tmp_path / "qs.csv") if r["QSGRPID"] == rec["id"])
    assert row["QSDTC"] == local.isoformat(timespec="seconds") and row["QSDTC"].endswith("+08:00")


def test_baseline_flag_on_the_last_pre_dose_value(exported):
    ds, out, _ = exported
    qs = _qs(out)
    flagged = [r for r in qs if r["QSBLFL"] == "Y"]
    assert flagged and all(r["EPOCH"] == "SCREENING" for r in flagged)
    for subject in ("P-001", "P-002", "P-003"):
        mine = [r for r in flagged if r["USUBJID"].endswith(subject)]
        codes = [r["QSTESTCD"] for r in mine]
        assert len(codes) == len(set(codes)), "one baseline per test and subject"
        nasal = {r["QSTESTCD"] for r in mine if r["QSCAT"] == "NASAL SYMPTOM DIARY"}
        assert "NSD0102" in nasal and "NSD0112" not in nasal, "pre-dose diary; no cough grade (NOT DONE) flagged"
        alsfrs = {r["QSTESTCD"] for r in mine if r["QSCAT"] == "ALSFRS-R"}
        assert ("ALSF01TS" in alsfrs) == (subject != "P-003")


def test_respondent_is_kept_including_with_help(dataset, tmp_path):
    from server.exports import sdtm_export

    helped = next(r for r in dataset["records"] if r["type"] == "alsfrs_r" and r["participant"] == "P-001")
    helped["respondent"] = "participant_assisted"
    sdtm_export(dataset, tmp_path)
    supp = read_csv(tmp_path / "suppqs.csv")
    mine = {r["QNAM"]: r["QVAL"] for r in supp if r["IDVARVAL"] == helped["id"]}
    assert mine == {"RESPOND": "SELF WITH HELP", "ASSISTED": "Y"}
    assert all(r["IDVAR"] == "QSGRPID" for r in supp)
    carer = {r["QVAL"] for r in supp if r["QNAM"] == "RESPOND" and r["USUBJID"].endswith("P-002")}
    assert carer == {"CAREGIVER"}
    qs = [r for r in read_csv(tmp_path / "qs.csv") if r["QSGRPID"] == helped["id"]]
    assert {r["QSEVAL"] for r in qs} == {"STUDY SUBJECT"}
    suppec = read_csv(tmp_path / "suppec.csv")
    assert {r["QVAL"] for r in suppec if r["QNAM"] == "RESPOND" and r["USUBJID"].endswith("P-002")} == {"CAREGIVER"}


def test_delta_fs_per_subject_or_why_not(exported):
    from datetime import date

    from shared.scoring import delta_fs

    _, out, _ = exported
    dfs = {r["SUBJID"]: r for r in read_csv(out / "sdtm" / "dfs.csv")}
    assert set(dfs) == {"P-001", "P-002", "P-003"}
    p1 = dfs["P-001"]
    assert p1["BLTOTAL"] == "46" and p1["DFSREAS"] == "" and p1["RFSTDTC"] == "2026-03-02T09:30:00+08:00"
    assert float(p1["DFS"]) == pytest.approx(delta_fs(46, "2025-06", date(2026, 2, 27)), abs=1e-4)
    assert dfs["P-003"]["DFS"] == "" and dfs["P-003"]["DFSREAS"] == "NO PRE-DOSE ALSFRS-R TOTAL"


def test_analysis_files_are_verbatim_no_spreadsheet_apostrophe(dataset, tmp_path):
    from server.exports import sdtm_export

    missed = next(r for r in dataset["records"] if r["type"] == "dose_confirmation"
                  and not r["versions"][-1]["payload"]["given"])
    for v in missed["versions"]:
        v["payload"]["missed_reason_text"] = "=HYPERLINK(\"http://x\")"
        v["payload"]["kit_number"] = "-K-17"
    sdtm_export(dataset, tmp_path)
    supp = read_csv(tmp_path / "suppec.csv")
    assert "=HYPERLINK(\"http://x\")" in {r["QVAL"] for r in supp if r["QNAM"] == "ECREASTX"}
    assert "-K-17" in {r["QVAL"] for r in supp if r["QNAM"] == "ECKITNO"}
    for path in tmp_path.glob("*.csv"):
        for row in read_csv(path):
            assert not any(v.startswith("'") for v in row.values()), path.name


def test_study_days_count_from_the_day_one_staff_confirmed(dataset, tmp_path):
    """A dose-1 time typed wrong on a device never moves day 1: the day staff confirmed is what the
    CSV participants file and the SDTM study days count from."""
    from datetime import date, timedelta

    from server.exports import csv_export, sdtm_export
    from server.exports.dataset import participant_timeline

    p1 = next(p for p in dataset["participants"] if p["subject"] == "P-001")
    before = participant_timeline(p1, dataset["records"]).day1
    sdtm_export(dataset, tmp_path / "before")
    confirmed = before - timedelta(days=1)
    p1["day1_confirmed"] = confirmed.isoformat()
    sdtm_export(dataset, tmp_path / "after")
    csv_export(dataset, tmp_path / "csv")
    old = {(r["QSGRPID"], r["QSTESTCD"]): int(r["QSDY"]) for r in read_csv(tmp_path / "before" / "qs.csv")
           if r["USUBJID"].endswith("P-001")}
    new = {(r["QSGRPID"], r["QSTESTCD"]): int(r["QSDY"]) for r in read_csv(tmp_path / "after" / "qs.csv")
           if r["USUBJID"].endswith("P-001")}
    assert old and old.keys() == new.keys()
    for key, day in old.items():   # one day later on the study calendar; there is no day 0
        assert new[key] == (day + 1 if day != -1 else 1), (key, day, new[key])
    parts = {r["subject"]: r for r in read_csv(tmp_path / "csv" / "participants.csv")}
    assert date.fromisoformat(parts["P-001"]["day1"]) == confirmed
