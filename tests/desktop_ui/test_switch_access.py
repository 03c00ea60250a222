"""Switch scanning on real widgets, driven by key events only (the scan clock stepped by tick())."""

from __future__ import annotations

import pytest

from shared.vocab import ALSFRS_ITEM_KEYS_5A

from desktop.services.scan_order import GROUP, ITEM
from desktop.ui.context import UiContext
from desktop.ui.main_window import Navigator
from desktop.ui.widgets import OptionButton, WrapButton

from tests.desktop_ui import switch_user as su
from tests.desktop_ui.conftest import K

SCORES = dict(zip(ALSFRS_ITEM_KEYS_5A, [4, 4, 3, 3, 2, 3, 3, 2, 1, 4, 4, 3]))


def stored(app, kind):
    app.settle()
    rows = [e for e in app.store.outbox.entries() if e.type == kind]
    assert len(rows) == 1, rows
    return rows[0].envelope


@pytest.mark.parametrize("mode", ["one", "two"])
def test_full_alsfrs_by_switch(app, mode):
    user = su.SwitchUser(app.qtbot, app.w, mode)
    su.alsfrs(user, SCORES)
    env = stored(app, "alsfrs_r")
    assert env["respondent"] == "participant"
    assert env["payload"] == {"gastrostomy": False, "items": SCORES}
    assert app.screen() == "today"
    if mode == "one":
        assert user.presses == user.selections          # one switch: every press is a selection
    else:
        assert user.presses == user.selections + user.steps


@pytest.mark.parametrize("mode", ["one", "two"])
def test_nasal_diary_by_switch(app, mode):
    app.w.open_form("nasal_symptoms", {"date": "2026-03-12", "dosing_day": False})
    user = su.SwitchUser(app.qtbot, app.w, mode)
    su.nasal(user, {"headache": 2, "rhinorrhea": 1})
    p = stored(app, "nasal_symptoms")["payload"]
    assert p["symptoms"]["headache"] == 2 and p["symptoms"]["rhinorrhea"] == 1
    assert {v for k, v in p["symptoms"].items() if k not in ("headache", "rhinorrhea")} <= {0, None}
    assert p["sought_medical_care"] is False and p.get("notes") in (None, "")


@pytest.mark.parametrize("mode", ["one", "two"])
def test_dose_confirmation_by_switch(app, mode):
    app.w.open_form("dose_confirmation", {"dose_number": 2, "planned_date": "2026-03-13"})
    user = su.SwitchUser(app.qtbot, app.w, mode)
    su.dose(user)
    env = stored(app, "dose_confirmation")
    p = env["payload"]
    assert env["respondent"] == "caregiver"
    assert p["given"] is True and p["administered_by"] == "caregiver"
    assert p["administered_at"] == "2026-03-13T10:15:00+08:00"
    assert p["nostrils"] == {"left": {"given": True, "volume": "full", "retained": True},
                             "right": {"given": True, "volume": "full", "retained": True}}


def test_ticks_never_select_and_loop_without_end(app):
    app.w.open_form("alsfrs_r", {})
    scan = su.SwitchUser(app.qtbot, app.w, "one").scan
    draft = dict(app.w.current().draft.answers)
    seen = []
    for _ in range(200):
        scan.tick()
        seen.append(tuple(id(w) for w in scan.highlighted()))
    assert app.w.current().draft.answers == draft and app.screen() == "form:alsfrs_r"
    period = seen.index(seen[0], 1)
    assert seen[period:2 * period] == seen[:period] and seen[-1] in seen[:period]
    assert scan.ring.isVisible() and scan.ring.width() > 0


def test_the_answers_scan_starts_at_the_previous_pages_answer(app):
    app.w.open_form("alsfrs_r", {})
    form = app.w.current()
    form.draft.answers.update(respondent="participant", gastrostomy=False, items={"1": 2})
    form.go("item:2")
    user = su.SwitchUser(app.qtbot, app.w, "one")
    first = user.scan.highlighted()
    assert isinstance(first[0], OptionButton) and first[0].value == 2 and user.scan.highlight_kind() == ITEM
    user.answer(2)
    assert user.presses == 2 and user.steps == 0       # same answer as before: two presses, no waiting


def test_two_switches_move_and_select_with_chosen_keys_and_other_keys_still_work(app):
    app.w.open_form("alsfrs_r", {})
    user = su.SwitchUser(app.qtbot, app.w, "two")
    app.w.access.apply(move_keys=[int(K.Key_1)], step_select_keys=[int(K.Key_2)])
    scan = user.scan
    before = scan.highlighted()
    app.qtbot.keyClick(app.focus(), K.Key_1)
    assert scan.highlighted() != before
    assert app.w.current().draft.answers.get("respondent") is None
    app.qtbot.keyClick(app.focus(), K.Key_2)            # select the highlighted respondent answer
    assert app.w.current().draft.answers.get("respondent") is not None
    app.qtbot.keyClick(app.focus(), K.Key_Right)        # the keyboard still works beside the switches
    assert app.w.current().step_id == "gastrostomy"


def test_groups_are_entered_and_left_and_chrome_is_reachable(app):
    app.w.open_form("alsfrs_r", {})
    user = su.SwitchUser(app.qtbot, app.w, "one")
    scan = user.scan
    assert scan.highlight_kind() == ITEM                 # inside the answers: items, then "leave"
    kinds = []
    for _ in range(12):
        scan.tick()
        kinds.append(scan.highlight_kind())
    assert set(kinds) == {ITEM, "leave"}                 # never leaves by itself
    while scan.highlight_kind() != "leave":
        scan.tick()
    user.key(su.SWITCH["one"])
    assert scan.highlight_kind() == GROUP and len(scan.highlighted()) == 3   # back at group level
    user.choose("settings")                              # the header, from any page
    assert app.screen() == "settings"
    user.choose("openAccess")
    assert app.screen() == "access"


def test_scanning_settings_are_kept_and_set_up_in_one_step(make_app):
    a = make_app(paired=False)
    assert a.screen() == "pairing"
    a.find(WrapButton, "openAccess").setFocus()
    a.key(K.Key_Return)
    assert a.screen() == "access"
    a.find(WrapButton, "preset_two-switch").setFocus()
    a.key(K.Key_Return)                                  # one step
    assert a.w.access.scan.mode == "two" and a.w.access.scan.active
    assert a.store.settings.access().scan_mode == "two"
    a.w.close()
    again = Navigator(UiContext(a.store, a.ctx.clock, transport_factory=lambda url, token: a.server))
    a.qtbot.addWidget(again)
    assert again.access.scan.mode == "two" and again.access.prefs.scan_interval_ms == 1500
