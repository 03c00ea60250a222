"""Seeded client states for screenshots and UI tests: every screen with realistic data.

Each scene is ``(name, build)`` where ``build(window)`` drives a fresh window (paired or not) to
one screen. The data are synthetic: participant 001-017, first dose 2026-03-10, today is study day 4.
"""

from __future__ import annotations

from datetime import datetime
from typing import Callable
from zoneinfo import ZoneInfo

from shared.protocol import load_protocol
from shared.vocab import ALSFRS_ITEM_KEYS_5A, NASAL_SYMPTOMS

from desktop.clock import FixedClock
from desktop.store import Outcome, Pairing, Store

BEIJING = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 3, 13, 10, 15, tzinfo=BEIJING)


def clock() -> FixedClock:
    return FixedClock(NOW)


def pair(store: Store, role: str = "caregiver", show_scores: bool = False) -> None:
    proto = load_protocol().participant_projection()
    proto["show_scores_to_participant"] = show_scores
    store.settings.save_pairing(Pairing(
        server_url="https://epro.example.org", device_id="dev-demo", participant="001-017", role=role,
        originator="caregiver:c-1", device_name="Kitchen PC", protocol=proto))
    store.settings.set("timeline", {"first_dose_date": "2026-03-10", "tz": "Asia/Shanghai"})


def _receipt(store: Store, entry, seq: int, at: str) -> None:
    store.outbox.record([Outcome(entry.id, "received", "accepted",
                                 {"server_seq": seq, "received_at": at, "sha256": entry.sha256})], at)


def seed_history(ctx, attention: bool = True, waiting: bool = True) -> None:
    """A few days of entries: received with receipts, one waiting, one needing attention."""
    svc, store, clk = ctx.entries, ctx.store, ctx.clock
    real = clk.now()
    plan = [
        ("alsfrs_r", datetime(2026, 3, 8, 19, 40, tzinfo=BEIJING), {"score": 3}),
        ("nasal_symptoms", datetime(2026, 3, 10, 8, 0, tzinfo=BEIJING), {"date": "2026-03-10"}),
        ("dose_confirmation", datetime(2026, 3, 10, 9, 20, tzinfo=BEIJING), {"n": 1, "date": "2026-03-10"}),
        ("nasal_symptoms", datetime(2026, 3, 11, 20, 5, tzinfo=BEIJING), {"date": "2026-03-11", "grade": 1}),
        ("nasal_symptoms", datetime(2026, 3, 12, 20, 30, tzinfo=BEIJING), {"date": "2026-03-12"}),
    ]
    seq = 100
    for kind, at, o in plan:
        clk.set(at)
        d = svc.start(kind, {"date": o.get("date"), "dosing_day": o.get("date") == "2026-03-10",
                             "dose_number": o.get("n"), "planned_date": o.get("date")})
        if kind == "alsfrs_r":
            items = {k: o["score"] if k in ("2", "8", "9") else 4 for k in ALSFRS_ITEM_KEYS_5A}
            d.answers = {"respondent": "participant_assisted", "gastrostomy": False, "items": items}
        elif kind == "nasal_symptoms":
            dosing = o["date"] == "2026-03-10"
            sym = {n: 0 for n in NASAL_SYMPTOMS if n != "cough_choking_dosing" or dosing}
            sym["congestion"] = o.get("grade", 0)
            d.answers = {"respondent": "caregiver", "symptoms": sym, "sought_medical_care": False}
        else:
            d.answers = {"respondent": "caregiver", "given": True, "administered_at": at.isoformat(),
                         "administered_by": "caregiver", "nostrils": "both",
                         "volume": {"left": "full", "right": "full"},
                         "retained": {"left": True, "right": True}, "kit_number": "K-0417"}
        entry = svc.submit(d, "zh-CN" if seq % 2 else "en").entry
        seq += 1
        if at.day < 12 or not waiting:
            _receipt(store, entry, seq, at.astimezone(ZoneInfo("UTC")).isoformat())
    if attention:
        clk.set(datetime(2026, 3, 12, 21, 0, tzinfo=BEIJING))
        d = svc.start("dose_confirmation", {"dose_number": 1, "planned_date": "2026-03-10"})
        d.answers = {"respondent": "caregiver", "given": False, "missed_reason": "forgot"}
        e = svc.submit(d, "en").entry
        store.outbox.record([Outcome(e.id, "needs_attention", "conflict", None, "different content",
                                     ({"field": "id", "rule": "conflict", "message": "different content"},))],
                            "2026-03-12T13:01:00+00:00")
    clk.set(real)


def _form(kind: str, answers: dict, page: str, context: dict | None = None) -> Callable:
    def build(w) -> None:
        d = w.ctx.entries.start(kind, context or {})
        d.answers = answers
        d.page = page
        w.ctx.entries.save(d)
        w.open_form(kind, draft=d)
    return build


ITEMS_SOME = {k: 4 for k in ("1", "2", "4", "5a", "6", "7", "8", "9", "10", "11")}


def _today_with_draft(w) -> None:
    seed_history(w.ctx)
    d = w.ctx.entries.start("alsfrs_r", {})
    d.answers = {"respondent": "caregiver", "gastrostomy": False, "items": {"1": 4, "2": 3, "3": 4, "4": 3}}
    d.page = "item:5a"
    d.context["progress"] = [5, 12]
    w.ctx.entries.save(d)
    w.show_today()


def _history(w) -> None:
    seed_history(w.ctx)
    w.show_history()


def _history_chart(w) -> None:
    seed_history(w.ctx)
    real = w.ctx.clock.now()
    for day, low in ((12, ("2", "8")), (13, ("2", "8", "9", "4"))):
        w.ctx.clock.set(datetime(2026, 3, day, 9, 0, tzinfo=BEIJING))
        d = w.ctx.entries.start("alsfrs_r", {})
        d.answers = {"respondent": "participant", "gastrostomy": False,
                     "items": {k: 3 if k in low else 4 for k in ALSFRS_ITEM_KEYS_5A}}
        w.ctx.entries.submit(d, "en")
    w.ctx.clock.set(real)
    w.show_history()


def _entry(w) -> None:
    seed_history(w.ctx)
    e = [x for x in w.ctx.store.outbox.entries() if x.state == "received"][0]
    w.screens["entry"].full_receipt = True
    w.show_entry(e.id)


def _safety(w) -> None:
    svc = w.ctx.entries
    d = svc.start("nasal_symptoms", {"date": "2026-03-13", "dosing_day": True})
    sym = {n: 0 for n in NASAL_SYMPTOMS}
    sym["epistaxis"] = 2
    d.answers = {"respondent": "caregiver", "symptoms": sym, "epistaxis_needed_help": True,
                 "sought_medical_care": False}
    w.after_submit(svc.submit(d, w.ctx.lang))


def _revoked(w) -> None:
    seed_history(w.ctx, attention=False)
    w.ctx.store.settings.set("revoked", {"outcome": "revoked", "code": "auth.device_revoked"})
    w.show_start()


def _overdue(w) -> None:
    seed_history(w.ctx, attention=False, waiting=True)
    w.ctx.clock.set(datetime(2026, 3, 14, 21, 0, tzinfo=BEIJING))
    w.show_today()


def _pairing_error(w) -> None:
    s = w.screens["pairing"]
    s.values.update(url="https://epro.example.org", code="K7QX-9M2P")
    s.error_key = "pairing.error.code_used"
    w.show_pairing()


def _reminder(w) -> None:
    w.ctx.clock.set(datetime(2026, 3, 13, 21, 0, tzinfo=BEIJING))
    w.ctx.check_reminders()
    w.show_today()


DOSE_CTX = {"dose_number": 2, "planned_date": "2026-03-13", "due_key": "dose:2"}
DOSE_GIVEN = {"respondent": "caregiver", "given": True, "administered_by": "caregiver", "nostrils": "both",
              "volume": {"left": "full", "right": "partial"}, "retained": {"left": True, "right": False},
              "loss": ["sneezed"], "kit_number": "K-0417"}

def _high_contrast(w) -> None:
    w.ctx.set_contrast("on")
    _form("alsfrs_r", {"respondent": "caregiver", "gastrostomy": False, "items": {"1": 4, "2": 4, "3": 3}},
          "item:3")(w)


# (name, needs pairing, build)
def _typed(kind: str, answers: dict, page: str, digit: int) -> Callable:
    """A form page as it is after the digit ``digit`` answered ``page`` by keyboard (and went on)."""
    def build(w) -> None:
        from desktop.ui.qt import QApplication, QEvent, QKeyEvent, Qt
        _form(kind, answers, page)(w)
        key = getattr(Qt.Key, f"Key_{digit}")
        QApplication.sendEvent(w.current(), QKeyEvent(QEvent.Type.KeyPress, key, Qt.KeyboardModifier.NoModifier,
                                                      str(digit)))
    return build


def _read_aloud(start_ms: int) -> Callable:
    """An item page after "Read aloud" was pressed while the speech engine is still starting
    (``start_ms`` long) or, with 0, after it failed to start in time."""
    def build(w) -> None:
        import time as _time
        from desktop.ui.qt import QApplication
        from desktop.ui.speech import Speaker
        from desktop.ui.widgets import WrapButton
        w.access.speaker = Speaker(parent=w, factory=lambda: _time.sleep(0.5), start_ms=start_ms)
        _form("alsfrs_r", {"respondent": "caregiver", "gastrostomy": False, "items": {"1": 4, "2": 4}}, "item:3")(w)
        button = next(b for b in w.current().findChildren(WrapButton, "readAloud") if b.isVisible())
        button.click()
        if not start_ms:
            QApplication.processEvents()
    return build


SCENES: list[tuple[str, bool, Callable]] = [
    ("01-pairing", False, lambda w: w.show_pairing()),
    ("02-pairing-error", False, _pairing_error),
    ("03-paired", True, lambda w: w.show_paired()),
    ("04-today", True, _today_with_draft),
    ("05-today-reminder", True, _reminder),
    ("06-alsfrs-respondent", True, _form("alsfrs_r", {}, "respondent")),
    ("07-alsfrs-gastrostomy", True, _form("alsfrs_r", {"respondent": "caregiver"}, "gastrostomy")),
    ("08-alsfrs-item", True, _form("alsfrs_r", {"respondent": "caregiver", "gastrostomy": False,
                                                 "items": {"1": 4, "2": 4, "3": 3}}, "item:3")),
    ("09-alsfrs-item-who", True, _form("alsfrs_r", {"respondent": "participant", "gastrostomy": False,
                                                     "items": {"11": 2}, "item_respondent": {"11": "caregiver"}},
                                        "item:11")),
    ("08b-alsfrs-item-typed", True, _typed("alsfrs_r", {"respondent": "caregiver", "gastrostomy": False,
                                                        "items": {"1": 4, "2": 4}}, "item:3", 3)),
    ("08c-read-aloud-starting", True, _read_aloud(5000)),
    ("08d-read-aloud-not-started", True, _read_aloud(0)),
    ("10b-alsfrs-review-typed", True, _typed("alsfrs_r", {"respondent": "caregiver", "gastrostomy": False,
                                                          "items": dict(ITEMS_SOME, **{"3": 3})}, "item:12", 2)),
    ("10-alsfrs-review", True, _form("alsfrs_r", {"respondent": "caregiver", "gastrostomy": False,
                                                   "items": ITEMS_SOME}, "review")),
    ("11-nasal-any", True, _form("nasal_symptoms", {"respondent": "caregiver"}, "any",
                                  {"date": "2026-03-13", "dosing_day": True})),
    ("12-nasal-symptom", True, _form("nasal_symptoms", {"respondent": "caregiver", "none": False,
                                                         "symptoms": {"rhinorrhea": 1}}, "symptom:congestion",
                                      {"date": "2026-03-13", "dosing_day": True})),
    ("13-nasal-notes", True, _form("nasal_symptoms", {"respondent": "caregiver", "none": False,
                                                       "notes": "Stuffy in the morning only."}, "notes",
                                    {"date": "2026-03-13", "dosing_day": True})),
    ("14-nasal-review-none", True, _form("nasal_symptoms", {"respondent": "participant", "none": True},
                                          "review", {"date": "2026-03-13", "dosing_day": False})),
    ("15-dose-which", True, _form("dose_confirmation", {}, "")),
    ("16-dose-given", True, _form("dose_confirmation", {"respondent": "caregiver"}, "given", DOSE_CTX)),
    ("17-dose-time", True, _form("dose_confirmation", {"respondent": "caregiver", "given": True}, "time", DOSE_CTX)),
    ("18-dose-loss", True, _form("dose_confirmation", dict(DOSE_GIVEN, administered_at="2026-03-13T09:05:00+08:00"),
                                 "loss", DOSE_CTX)),
    ("19-dose-missed-reason", True, _form("dose_confirmation", {"respondent": "caregiver", "given": False},
                                          "reason", DOSE_CTX)),
    ("20-dose-review", True, _form("dose_confirmation", dict(DOSE_GIVEN, administered_at="2026-03-13T09:05:00+08:00",
                                                             missed_reason=None), "review", DOSE_CTX)),
    ("21-safety-notice", True, _safety),
    ("22-history", True, _history),
    ("23-history-chart", True, _history_chart),
    ("24-entry-receipt", True, _entry),
    ("25-settings", True, lambda w: w.show_settings()),
    ("26-revoked", True, _revoked),
    ("27-overdue", True, _overdue),
    ("28-high-contrast", True, _high_contrast),
    ("29-access", True, lambda w: w.show_access()),
]
CHART_SCENES = {"23-history-chart"}
