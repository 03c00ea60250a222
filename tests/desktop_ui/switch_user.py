"""A person with one or two switches, for the tests and ``bench``: looks at the scan highlight and
either presses the switch key or waits one step of the scan clock (one switch) / presses "move"
(two switches). Only key events reach the window; the clock is stepped by calling ``tick()``."""

from __future__ import annotations

from desktop.ui.qt import QApplication, QWidget, Qt

SWITCH = {"one": Qt.Key.Key_Space, "two": Qt.Key.Key_Return}
MOVE = Qt.Key.Key_Space


class SwitchUser:
    def __init__(self, qtbot, window, mode: str) -> None:
        self.qtbot, self.w, self.mode = qtbot, window, mode
        self.scan = window.access.scan
        self.scan.manual_clock = True
        window.access.preset("one-switch" if mode == "one" else "two-switch")
        self.presses = 0          # switch presses (both switches)
        self.steps = 0            # highlight stops passed: ticks of the clock or "move" presses
        self.selections = 0

    def key(self, key) -> None:
        target = QApplication.focusWidget() or self.w
        self.qtbot.keyClick(target, key)
        self.presses += 1

    def find(self, name: str) -> QWidget:
        for w in self.w.current().findChildren(QWidget, name):
            if w.isVisible():
                return w
        for area in (self.w.status, self.w.header, self.w.banners):
            for w in area.findChildren(QWidget, name):
                if w.isVisible():
                    return w
        raise LookupError(f"no visible {name!r} on {self.w.current_name()}")

    def choose(self, name: str, limit: int = 400) -> None:
        """Get the highlight to the control called ``name`` and select it."""
        target = self.find(name)
        for _ in range(limit):
            self.scan._fresh()
            index = self.scan.widgets.index(target)
            h = self.scan.model.current()
            if self.scan.model.next_action(index) == "press":
                done = h.kind == "item"
                self.key(SWITCH[self.mode])
                self.selections += 1
                if done:
                    return
                continue
            self.steps += 1
            if self.mode == "one":
                self.scan.tick()
            else:
                self.key(MOVE)
        raise AssertionError(f"{name} not reached in {limit} steps")

    def answer(self, value, then: str = "next") -> None:
        self.choose(f"opt_{value}")
        if then:
            self.choose(then)


def alsfrs(user: SwitchUser, scores: dict[str, int], respondent: str = "participant") -> None:
    """From Today: a new ALSFRS-R, no feeding tube, ``scores`` per item, Submit."""
    user.choose("new_alsfrs_r")
    user.answer(respondent)
    user.answer(False)
    form = user.w.current()
    while form.step_id.startswith("item:"):
        user.answer(scores[form.step_id.split(":")[1]])
    assert form.step_id == "review"
    user.choose("submit")


def nasal(user: SwitchUser, grades: dict[str, int]) -> None:
    """From a nasal form's first page: symptoms graded as ``grades`` (others 0), no help, no care."""
    form = user.w.current()
    user.answer("participant")
    user.answer(False)                    # "Yes, record symptoms"
    while form.step_id.startswith("symptom:"):
        user.answer(grades.get(form.step_id.split(":")[1], 0))
    if form.step_id == "epistaxis_help":
        user.answer(False)
    user.answer(False)                    # sought medical care: no
    assert form.step_id == "notes"
    user.choose("next")                   # "Skip"
    assert form.step_id == "review"
    user.choose("submit")


def dose(user: SwitchUser) -> None:
    """From a dose form's first page: caregiver, given, time as proposed, by the caregiver, both
    nostrils full and kept, no kit number, Submit."""
    form = user.w.current()
    user.answer("caregiver")
    user.answer(True)
    assert form.step_id == "time"
    user.choose("timeOk")
    user.choose("next")
    user.answer("caregiver")
    user.answer("both")
    for _ in range(2):
        user.answer("full")
    for _ in range(2):
        user.answer(True)
    while form.step_id in ("kit", "other", "notes"):
        user.choose("next")
    assert form.step_id == "review"
    user.choose("submit")
