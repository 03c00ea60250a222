"""Read aloud through Qt's QTextToSpeech (PySide6-Addons). On Linux Qt talks to speech-dispatcher,
which speaks with espeak-ng. Without an engine, or without a voice for the language shown, the
speaker says why in words (:meth:`Speaker.problem`) and every call is a no-op: never an exception."""

from __future__ import annotations

import sys
from typing import Any

from desktop.ui.qt import QLocale, QObject, Signal

LOCALES = {"en": (QLocale.Language.English, QLocale.Country.UnitedKingdom),
           "zh-CN": (QLocale.Language.Chinese, QLocale.Country.China)}


def default_engine() -> str:
    return "speechd" if sys.platform.startswith("linux") else ""     # "" = the platform's own


class Speaker(QObject):
    """One text-to-speech engine for the whole window, created on first use."""

    state_changed = Signal(str)     # "ready", "speaking", "paused", "error"

    def __init__(self, engine: str | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.engine_name = default_engine() if engine is None else engine
        self._tts: Any = None
        self._failed = ""            # "no_engine" once creating the engine failed
        self.last_text = ""
        self.states: list[str] = []

    def _engine(self) -> Any:
        if self._tts is not None or self._failed:
            return self._tts
        try:
            from PySide6.QtTextToSpeech import QTextToSpeech
            if self.engine_name and self.engine_name not in QTextToSpeech.availableEngines():
                self._failed = "no_engine"
                return None
            tts = QTextToSpeech(self.engine_name, self) if self.engine_name else QTextToSpeech(self)
        except Exception:   # noqa: BLE001 — a missing module or plugin must never stop the program
            self._failed = "no_engine"
            return None
        if tts.state() == QTextToSpeech.State.Error:
            self._failed = "no_engine"
            tts.deleteLater()
            return None
        tts.stateChanged.connect(self._state)
        self._tts = tts
        return tts

    def _state(self, state: Any) -> None:
        name = state.name.lower() if hasattr(state, "name") else str(state)
        self.states.append(name)
        self.state_changed.emit(name)

    def voice_for(self, lang: str) -> bool:
        """Choose a voice for ``lang``; False when the engine has none for that language."""
        tts = self._engine()
        if tts is None:
            return False
        language, country = LOCALES.get(lang, LOCALES["en"])
        try:
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
        except Exception:   # noqa: BLE001
            return False
        return False

    def problem(self, lang: str) -> str:
        """"" when speech works for ``lang``; else a message key saying why not."""
        if self._engine() is None:
            return "speech.no_engine"
        if not self.voice_for(lang):
            return "speech.no_voice"
        return ""

    def say(self, text: str, lang: str) -> bool:
        """Speak ``text`` (interrupting anything still being spoken). False if speech is unavailable."""
        self.last_text = text
        if self.problem(lang):
            return False
        try:
            self._tts.stop()
            self._tts.say(text)
        except Exception:   # noqa: BLE001
            return False
        return True

    def stop(self) -> None:
        if self._tts is not None:
            try:
                self._tts.stop()
            except Exception:   # noqa: BLE001
                pass

    def speaking(self) -> bool:
        if self._tts is None:
            return False
        from PySide6.QtTextToSpeech import QTextToSpeech
        return self._tts.state() == QTextToSpeech.State.Speaking
