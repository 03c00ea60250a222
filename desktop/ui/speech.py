"""Read aloud through Qt's QTextToSpeech (PySide6-Addons). On Linux Qt talks to speech-dispatcher,
which speaks with espeak-ng. Without an engine, or without a voice for the language shown, the
speaker says why in words (:meth:`Speaker.problem`) and every call is a no-op: never an exception.

The engine is never made on the UI thread, and not before the first use: creating it can block
(speech-dispatcher installed but its daemon or the sound system stuck), so it is made on a thread
of its own, which then does all the speaking. The UI waits for it at most ``start_ms``; until then
the button says "Starting speech…", after that "not available: the speech engine did not start".
``factory`` (default: QTextToSpeech for the engine named) is the one seam tests replace.
"""

from __future__ import annotations

import atexit
import sys
import weakref
from typing import Any, Callable

from desktop.ui.qt import QLocale, QObject, QTimer, Signal, Slot, isValid

LOCALES = {"en": (QLocale.Language.English, QLocale.Country.UnitedKingdom),
           "zh-CN": (QLocale.Language.Chinese, QLocale.Country.China)}

START_MS = 5000          # how long the first use waits for the engine before saying it is not there


def default_engine() -> str:
    return "speechd" if sys.platform.startswith("linux") else ""     # "" = the platform's own


def qt_engine(name: str) -> Callable[[], Any]:
    """The real factory: a QTextToSpeech for engine ``name`` ("" = the platform's default)."""
    def make() -> Any:
        from PySide6.QtTextToSpeech import QTextToSpeech
        return QTextToSpeech(name) if name else QTextToSpeech()
    return make


def _pick(tts: Any, lang: str) -> bool:
    """Set a locale (or a voice) for ``lang`` on ``tts``; False when there is none."""
    language, country = LOCALES.get(lang, LOCALES["en"])
    locales = tts.availableLocales()
    exact = [loc for loc in locales if loc.language() == language and loc.territory() == country]
    same = exact or [loc for loc in locales if loc.language() == language]
    if same:
        tts.setLocale(same[0])
        return True
    voices = [v for v in tts.availableVoices() if v.locale().language() == language]
    if voices:
        tts.setVoice(voices[0])
        return True
    return False


class _Engine(QObject):
    """Lives on the speech thread: makes the engine there and does everything that touches it."""

    made = Signal(bool, list)     # ok, the languages it has voices for (QLocale.Language values)
    state = Signal(str)

    def __init__(self, factory: Callable[[], Any]) -> None:
        super().__init__()
        self.factory = factory
        self.tts: Any = None

    @Slot()
    def make(self) -> None:
        try:
            tts = self.factory()
            from PySide6.QtTextToSpeech import QTextToSpeech
            if tts is None or tts.state() == QTextToSpeech.State.Error:
                raise RuntimeError(getattr(tts, "errorString", lambda: "no engine")())
            langs = sorted({loc.language().value for loc in tts.availableLocales()}
                           | {v.locale().language().value for v in tts.availableVoices()})
        except Exception:   # noqa: BLE001 — a missing module, plugin or daemon never stops the program
            self.made.emit(False, [])
            return
        tts.stateChanged.connect(self._state)
        self.tts = tts
        self.made.emit(True, langs)

    def _state(self, state: Any) -> None:
        self.state.emit(state.name.lower() if hasattr(state, "name") else str(state))

    @Slot(str, str)
    def say(self, text: str, lang: str) -> None:
        try:
            if self.tts is not None and _pick(self.tts, lang):
                self.tts.stop()
                self.tts.say(text)
        except Exception:   # noqa: BLE001
            self.state.emit("error")

    @Slot()
    def stop(self) -> None:
        try:
            if self.tts is not None:
                self.tts.stop()
        except Exception:   # noqa: BLE001
            pass

    @Slot()
    def close(self) -> None:
        """Drop the engine on its own thread, then end the thread."""
        self.stop()
        self.tts = None
        from PySide6.QtCore import QThread
        QThread.currentThread().quit()


class Speaker(QObject):
    """One text-to-speech engine for the whole window, made on first use on a thread of its own."""

    state_changed = Signal(str)     # "ready", "speaking", "paused", "error"
    status_changed = Signal(str)    # "starting", "ready", "failed", "timeout"

    _to_say = Signal(str, str)
    _to_stop = Signal()
    _to_close = Signal()

    def __init__(self, engine: str | None = None, parent: QObject | None = None,
                 factory: Callable[[], Any] | None = None, start_ms: int = START_MS) -> None:
        super().__init__(parent)
        self.engine_name = default_engine() if engine is None else engine
        self.factory = factory
        self.start_ms = start_ms
        self.status = "idle"            # idle → starting → ready | failed | timeout
        self.languages: list[int] = []
        self.pending: tuple[str, str] | None = None   # said before the engine was ready
        self.late = False               # the engine came after the bound (and was not used)
        self.last_text = ""
        self.states: list[str] = []
        self._thread: Any = None
        self._worker: _Engine | None = None
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._too_late)

    # --- starting the engine ----------------------------------------------------------------------
    def start(self) -> None:
        """Begin making the engine (once). Never blocks: the answer comes as ``status_changed``."""
        if self.status != "idle":
            return
        factory = self.factory
        if factory is None:
            try:
                from PySide6.QtTextToSpeech import QTextToSpeech
                if self.engine_name and self.engine_name not in QTextToSpeech.availableEngines():
                    self._set_status("failed")
                    return
            except Exception:   # noqa: BLE001 — PySide6-Addons missing
                self._set_status("failed")
                return
            factory = qt_engine(self.engine_name)
        from PySide6.QtCore import QThread
        self._thread = QThread()
        self._thread.setObjectName("speech")
        self._worker = _Engine(factory)
        self._worker.moveToThread(self._thread)
        self._thread.started.connect(self._worker.make)
        self._worker.made.connect(self._made)
        self._worker.state.connect(self._state)
        self._to_say.connect(self._worker.say)
        self._to_stop.connect(self._worker.stop)
        self._to_close.connect(self._worker.close)
        self._set_status("starting")
        self._timer.start(self.start_ms)
        _LIVE.add(self)
        self._thread.start()

    def _set_status(self, status: str) -> None:
        self.status = status
        self.status_changed.emit(status)

    def _made(self, ok: bool, languages: list) -> None:
        if self.status != "starting":      # came after the bound: too late, stays unavailable
            self.late = True
            return
        self._timer.stop()
        self.languages = list(languages)
        self._set_status("ready" if ok else "failed")
        if ok and self.pending is not None:
            text, lang = self.pending
            self.pending = None
            self.say(text, lang)
        self.pending = None

    def _too_late(self) -> None:
        if self.status == "starting":
            self.pending = None
            self._set_status("timeout")

    def _state(self, name: str) -> None:
        self.states.append(name)
        self.state_changed.emit(name)

    # --- what the buttons ask ---------------------------------------------------------------------
    def voice_for(self, lang: str) -> bool:
        language, _country = LOCALES.get(lang, LOCALES["en"])
        return self.status == "ready" and language.value in self.languages

    def problem(self, lang: str) -> str:
        """"" when speech works for ``lang``; "speech.starting" while the engine is being made
        (it was asked for now if need be); else a message key saying why not."""
        self.start()
        if self.status == "starting":
            return "speech.starting"
        if self.status == "timeout":
            return "speech.not_started"
        if self.status != "ready":
            return "speech.no_engine"
        if not self.voice_for(lang):
            return "speech.no_voice"
        return ""

    def say(self, text: str, lang: str) -> str:
        """Speak ``text`` (interrupting anything still being spoken): "" when it is being spoken,
        "speech.starting" when it will be once the engine is ready, else why it cannot be."""
        self.last_text = text
        problem = self.problem(lang)
        if problem == "speech.starting":
            self.pending = (text, lang)
        if problem:
            return problem
        self._to_say.emit(text, lang)
        return ""

    def stop(self) -> None:
        if self.status == "ready":
            self._to_stop.emit()

    def speaking(self) -> bool:
        return bool(self.states) and self.states[-1] == "speaking"

    def shutdown(self, wait_ms: int = 2000, force: bool = False) -> None:
        """End the speech thread (the window closes). An engine still stuck in its start is left
        running (its thread object kept, so it is never destroyed while running) until the process
        ends, when ``force`` stops it: a Qt thread destroyed while running aborts the process."""
        if isValid(self):
            self._timer.stop()
        thread = self._thread
        if thread is None or not isValid(thread):
            return
        if isValid(self):
            self._to_close.emit()
        if self.status != "starting":
            thread.quit()
        if not thread.wait(wait_ms) and force:
            thread.terminate()
            thread.wait(wait_ms)
        if thread.isFinished():
            self._thread = None
            _LIVE.discard(self)
        else:
            _STUCK.append(thread)


_LIVE: "weakref.WeakSet[Speaker]" = weakref.WeakSet()
_STUCK: list[Any] = []


@atexit.register
def _end_threads() -> None:
    """A program that ends without closing its window still ends its speech threads first."""
    for speaker in list(_LIVE):
        speaker.shutdown(wait_ms=1000, force=True)
    for thread in _STUCK:
        if isValid(thread) and thread.isRunning():
            thread.terminate()
            thread.wait(1000)
