"""Switch scanning, dwell and read-aloud for one window, from the saved preferences (issue 14).

``Access(nav)`` owns the :class:`ScanController`, the :class:`DwellController` and the
:class:`Speaker`; :meth:`Access.apply` saves and applies new preferences; :func:`read_aloud_button`
is the hook the question pages call to add their "Read aloud" button.
"""

from __future__ import annotations

from typing import Any

from desktop.store.settings import AccessPrefs
from desktop.ui.dwell import DwellController
from desktop.ui.qt import QKeySequence, announce, isValid
from desktop.ui.scan import ScanController
from desktop.ui.speech import Speaker
from desktop.ui.widgets import WrapButton

#: the one-step set-ups a caregiver chooses from (also ``als-epro --access NAME``)
PRESETS = {
    "one-switch": {"scan_mode": "one", "dwell_ms": 0},
    "two-switch": {"scan_mode": "two", "dwell_ms": 0},
    "dwell": {"scan_mode": "off", "dwell_ms": 1500},
    "off": {"scan_mode": "off", "dwell_ms": 0, "speak_highlight": False},
}


def key_names(keys: list[int]) -> str:
    return ", ".join(QKeySequence(k).toString() or str(k) for k in keys)


class Access:
    def __init__(self, nav: Any, speaker: Speaker | None = None) -> None:
        self.nav = nav
        self.ctx = nav.ctx
        self.speaker = speaker or Speaker(parent=nav, factory=getattr(self.ctx, "speech_factory", None))
        self.scan = ScanController(nav, speak=self._speak_highlight)
        self.dwell = DwellController(nav)
        self.prefs = self.ctx.store.settings.access()
        self._configure()

    def _configure(self) -> None:
        p = self.prefs
        select = p.step_select_keys if p.scan_mode == "two" else p.select_keys
        self.scan.configure(p.scan_mode, p.scan_interval_ms, select, p.move_keys)
        self.dwell.configure(p.dwell_ms)

    def apply(self, **changes: Any) -> AccessPrefs:
        data = {**self.prefs.as_dict(), **changes}
        self.prefs = self.ctx.store.settings.save_access(AccessPrefs.from_dict(data))
        self._configure()
        return self.prefs

    def preset(self, name: str) -> AccessPrefs:
        return self.apply(**PRESETS[name])

    # --- speech -----------------------------------------------------------------------------------
    def _speak_highlight(self, text: str) -> None:
        if self.prefs.speak_highlight and text:
            self.speaker.say(text, self.ctx.lang)

    def say(self, text: str) -> str:
        """Speak ``text`` in the language shown; "" if it is being spoken, "speech.starting" if it
        will be once the engine has started (never waited for here), else the reason why not."""
        return self.speaker.say(text, self.ctx.lang)

    @staticmethod
    def question_text(step: Any) -> str:
        parts = [step.stem]
        if getattr(step, "help", ""):
            parts.append(step.help)
        for o in step.options:
            parts.append(f"{o.number}, {o.text}" if o.number is not None else o.text)
        return ". ".join(p.rstrip(". ") for p in parts if p) + "."


def read_aloud_button(form: Any, step: Any, layout: Any) -> WrapButton | None:
    """The "Read aloud" button of a question page (when the preference is on)."""
    access = getattr(form.nav, "access", None)
    if access is None or not access.prefs.read_aloud or step.kind == "review":
        return None
    tr = form.ctx.tr
    button = WrapButton(tr("speech.read_aloud"))
    button.setObjectName("readAloud")
    button.setAccessibleName(tr("speech.read_aloud_name"))
    button.setAccessibleDescription(tr("speech.read_aloud_description"))

    def show(problem: str) -> None:
        if not isValid(button):
            return
        if problem:
            button.setText(tr(problem))
            button.setAccessibleName(tr(problem))
            announce(button, tr(problem))
        else:
            button.setText(tr("speech.reading"))

    def started(_status: str) -> None:      # the engine has started, failed, or missed its time
        speaker = access.speaker
        try:
            speaker.status_changed.disconnect(started)
        except (RuntimeError, TypeError):
            pass
        show(speaker.problem(form.ctx.lang))

    def read() -> None:
        problem = access.say(Access.question_text(step))
        if problem == "speech.starting":
            access.speaker.status_changed.connect(started)
        show(problem)
    button.clicked.connect(read)
    layout.addWidget(button)
    return button
