"""Switches, head mouse, eye gaze and read aloud: one-step set-ups for a caregiver, then each
setting (scan mode, speed, switch keys, dwell time, read-aloud). Reached from Pairing and Settings."""

from __future__ import annotations

from desktop.store.settings import AccessPrefs
from desktop.ui.access import key_names
from desktop.ui.qt import QButtonGroup, QRadioButton, announce
from desktop.ui.screens.base import Screen

SPEEDS_MS = (500, 750, 1000, 1500, 2000, 3000, 5000)
DWELLS_MS = (0, 500, 1000, 1500, 2000, 3000)


def seconds(ms: int) -> str:
    return f"{ms / 1000:g}"


class AccessScreen(Screen):
    name = "access"

    def __init__(self, ctx, nav) -> None:
        super().__init__(ctx, nav)
        self.capturing = ""          # which key is being chosen: "select", "move", "step_select"
        self.message = ""

    def title(self) -> str:
        return self.tr("access.title")

    @property
    def prefs(self) -> AccessPrefs:
        return self.nav.access.prefs

    def build(self) -> None:
        back = self.button(self.tr("access.back"), self.nav.show_start, name="accessBack")
        self._first = back
        p = self.prefs
        if self.message:
            self.text(self.message, "stem")
        self.text(self.tr("access.quick"), "stem")
        self.text(self.tr("access.quick_help"))
        for name in ("one-switch", "two-switch", "dwell", "off"):
            b = self.button(self.tr(f"access.preset.{name}"), lambda n=name: self._preset(n), big=True,
                            name=f"preset_{name}")
            b.setAccessibleDescription(self.tr(f"access.preset.{name}.description"))
        self.radio("access.scan_mode", "mode", [(m, self.tr(f"access.mode.{m}")) for m in ("off", "one", "two")],
                   p.scan_mode, lambda v: self._set(scan_mode=v))
        self.radio("access.speed", "speed", [(ms, self.tr("access.seconds", s=seconds(ms))) for ms in SPEEDS_MS],
                   p.scan_interval_ms, lambda v: self._set(scan_interval_ms=v))
        self.text(self.tr("access.speed_help"), role="small")
        self.text(self.tr("access.keys"), "stem")
        for which, keys in (("select", p.select_keys), ("move", p.move_keys), ("step_select", p.step_select_keys)):
            self.text(self.tr(f"access.key.{which}", keys=key_names(keys)))
            text = self.tr("access.press_now") if self.capturing == which else self.tr(f"access.choose.{which}")
            self.button(text, lambda w=which: self._capture(w), name=f"choose_{which}")
        self.radio("access.dwell", "dwell",
                   [(ms, self.tr("access.dwell_off") if not ms else self.tr("access.seconds", s=seconds(ms)))
                    for ms in DWELLS_MS], p.dwell_ms, lambda v: self._set(dwell_ms=v))
        self.text(self.tr("access.dwell_help"), role="small")
        self.radio("access.read_aloud", "readAloud",
                   [(True, self.tr("access.on")), (False, self.tr("access.off"))], p.read_aloud,
                   lambda v: self._set(read_aloud=v))
        self.radio("access.speak_highlight", "speakHighlight",
                   [(True, self.tr("access.on")), (False, self.tr("access.off"))], p.speak_highlight,
                   lambda v: self._set(speak_highlight=v))
        self.speech_test = self.button(self.tr("access.test_speech"), self._test_speech, name="testSpeech")

    def radio(self, heading: str, prefix: str, options: list[tuple], current, on_pick) -> None:
        head = self.tr(heading)
        self.text(head, "stem")
        group = QButtonGroup(self)
        for value, text in options:
            rb = QRadioButton(text)
            rb.setObjectName(f"{prefix}_{value}")
            rb.setAccessibleName(f"{head}: {text}")
            rb.setChecked(type(value) is type(current) and value == current)
            rb.toggled.connect(lambda on, v=value, n=rb.objectName(): on and self._picked(on_pick, v, n))
            group.addButton(rb)
            self.add(rb)

    def _picked(self, on_pick, value, name: str) -> None:
        on_pick(value)
        self.refresh()
        self.focus_named(name)

    def _set(self, **changes) -> None:
        self.nav.access.apply(**changes)
        self.message = ""

    def _preset(self, name: str) -> None:
        self.nav.access.preset(name)
        self.message = "✓ " + self.tr(f"access.preset.{name}.done")
        self.refresh()
        announce(self, self.message)
        self.focus_named(f"preset_{name}")

    def _capture(self, which: str) -> None:
        """The next key pressed (a switch interface sends one) becomes that switch."""
        self.capturing = which
        self.refresh()
        self.focus_named(f"choose_{which}")

        def got(key: int) -> None:
            field = {"select": "select_keys", "move": "move_keys", "step_select": "step_select_keys"}[which]
            self.capturing = ""
            self.nav.access.apply(**{field: [key]})
            self.message = "✓ " + self.tr("access.key_saved", keys=key_names([key]))
            self.refresh()
            self.focus_named(f"choose_{which}")
        self.nav.access.scan.capture = got

    def _test_speech(self) -> None:
        problem = self.nav.access.say(self.tr("access.test_sentence"))
        self.speech_test.setText(self.tr(problem) if problem else self.tr("speech.reading"))
        self.speech_test.setAccessibleName(self.speech_test.text())
