"""What every screen needs, passed in (no globals): the store, services, clock, language and text
size, plus the signals that keep screens up to date."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from shared.messages import normalize_language

from desktop.clock import Clock
from desktop.services.i18n import tr as t
from desktop.services.entries import EntryService
from desktop.services.reminders import Notifier, Reminder, ReminderService
from desktop.services.status import SyncStatus, sync_status
from desktop.store import Store
from desktop.sync import HttpTransport, SyncEngine, SyncResult, Transport
from desktop.sync.credentials import TokenStore
from desktop.ui.ops import BackgroundOp
from desktop.ui.qt import QLocale, QObject, Signal

TEXT_SCALES = (1.0, 1.25, 1.5, 2.0)
TransportFactory = Callable[[str, str | None], Transport]


def _http(url: str, token: str | None) -> Transport:
    return HttpTransport(url, token)


class UiContext(QObject):
    language_changed = Signal(str)
    scale_changed = Signal(float)
    contrast_changed = Signal()
    reminder_times_changed = Signal()
    data_changed = Signal()                 # entries, pairing or protocol changed
    sync_started = Signal()
    sync_finished = Signal(object)          # SyncResult
    reminder = Signal(object)               # Reminder, delivered on the main thread
    tray_message = Signal(object)           # Reminder, for the system tray where one exists
    auto_sync_requested = Signal()          # from the scheduler thread; runs on the main thread

    def __init__(self, store: Store, clock: Clock, tokens: TokenStore | None = None,
                 transport_factory: TransportFactory = _http, server_url: str = "",
                 language: str | None = None, speech_factory: Callable[[], Any] | None = None) -> None:
        super().__init__()
        self.speech_factory = speech_factory   # None: Qt's engine (desktop/ui/speech.py); tests inject
        self.store = store
        self.clock = clock
        self.tokens = tokens or TokenStore(store.data_dir)
        self.transport_factory = transport_factory
        self.server_url = server_url
        self.entries = EntryService(store, clock)
        self.notifier = Notifier()
        # reminders may fire on a scheduler thread: hop to the main thread through a signal
        self.notifier.banner_handlers.append(self.reminder.emit)
        self.auto_sync_requested.connect(lambda: self.sync_now(only_if_due=True))
        self.reminders = ReminderService(store, clock, self.notifier)
        self._engine: SyncEngine | None = None
        self._engine_key: tuple[str, str] | None = None
        self.syncing = False
        stored = store.settings.get("language")
        self._lang = normalize_language(language or stored or QLocale.system().name())
        self._scale = float(store.settings.get("text_scale", 1.0))

    # --- language and size ------------------------------------------------------------------------
    @property
    def lang(self) -> str:
        return self._lang

    def tr(self, key: str, **params: Any) -> str:
        return t(key, self._lang, **params)

    def set_language(self, lang: str) -> None:
        lang = normalize_language(lang)
        self.store.settings.set("language", lang)
        if lang != self._lang:
            self._lang = lang
            self.language_changed.emit(lang)

    @property
    def scale(self) -> float:
        return self._scale

    def set_scale(self, scale: float) -> None:
        self.store.settings.set("text_scale", scale)
        if scale != self._scale:
            self._scale = scale
            self.scale_changed.emit(scale)

    @property
    def contrast(self) -> str:
        """"system" (follow the platform), "on" or "off"."""
        return self.store.settings.get("contrast", "system")

    def set_contrast(self, value: str) -> None:
        self.store.settings.set("contrast", value)
        self.contrast_changed.emit()

    @property
    def high_contrast(self) -> bool:
        from desktop.ui.theme import system_high_contrast
        if self.contrast in ("on", "off"):
            return self.contrast == "on"
        return system_high_contrast()

    def step_scale(self, direction: int) -> None:
        i = min(range(len(TEXT_SCALES)), key=lambda k: abs(TEXT_SCALES[k] - self._scale))
        self.set_scale(TEXT_SCALES[max(0, min(len(TEXT_SCALES) - 1, i + direction))])

    # --- sync -------------------------------------------------------------------------------------
    def engine(self) -> SyncEngine | None:
        pairing = self.store.settings.pairing()
        if pairing is None:
            return None
        key = (pairing.server_url, pairing.device_id)
        if self._engine is None or self._engine_key != key:
            token = self.tokens.load(pairing.device_id)
            self._engine = SyncEngine(self.store, self.transport_factory(pairing.server_url, token), self.clock,
                                      tokens=self.tokens)
            self._engine_key = key
        return self._engine

    def status(self) -> SyncStatus:
        return sync_status(self.store, self.clock.now(), token_in_file=self.tokens.fallback)

    def sync_now(self, only_if_due: bool = False) -> bool:
        """Start a sync in the background; False if one is already running or nothing to do."""
        engine = self.engine()
        if engine is None or self.syncing or (only_if_due and not engine.due()):
            return False
        self.syncing = True
        self.sync_started.emit()
        BackgroundOp(engine.run, self).success(self._synced).failure(self._sync_failed).run()
        return True

    def _synced(self, result: SyncResult) -> None:
        self.syncing = False
        self.sync_finished.emit(result)
        self.data_changed.emit()

    def _sync_failed(self, exc: Exception) -> None:
        self.syncing = False
        self.sync_finished.emit(SyncResult("error", message=str(exc)))

    def forget_engine(self) -> None:
        self._engine = None
        self._engine_key = None

    # --- reminders --------------------------------------------------------------------------------
    def check_reminders(self) -> list[Reminder]:
        return self.reminders.check()

    @property
    def data_dir(self) -> Path:
        return self.store.data_dir
