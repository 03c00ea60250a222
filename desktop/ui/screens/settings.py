"""Settings: text size, language, reminder times, who uses this computer, about, keyboard help,
token storage warning, unpair (only when nothing is waiting) and export of unsent entries."""

from __future__ import annotations

from datetime import time
from pathlib import Path

from shared.instruments import FOLDERS, load_instrument

from desktop import __version__
from desktop.clock import local_iso
from desktop.services.reminders import DEFAULT_TIMES
from desktop.sync.pairing import StillWaiting, export_unsent, unpair
from desktop.ui.context import TEXT_SCALES
from desktop.ui.qt import QButtonGroup, QFileDialog, QLineEdit, QRadioButton
from desktop.ui.screens.base import Screen
from desktop.ui.theme import px


class SettingsScreen(Screen):
    name = "settings"
    live = True

    def __init__(self, ctx, nav) -> None:
        super().__init__(ctx, nav)
        self.confirm_unpair = False
        self.message = ""

    def title(self) -> str:
        return self.tr("settings.title")

    def build(self) -> None:
        self.back_button()
        ctx = self.ctx
        access = self.button(self.tr("access.open"), self.nav.show_access, name="openAccess")
        access.setAccessibleDescription(self.tr("access.open_description"))
        if self.message:
            self.text(self.message, "stem")
        # text size, language, contrast: one radio group each
        self.radio_group("settings.text_size", "size", [
            (round(sc * 100), f"{round(sc * 100)} %   Aa 汉字", abs(sc - ctx.scale) < 0.01,
             self.tr("settings.text_size_option", percent=round(sc * 100)), f"font-size: {px('body', sc)}px;")
            for sc in TEXT_SCALES], lambda v: ctx.set_scale(v / 100))
        self.text(self.tr("settings.text_size_keys"), role="small")
        self.radio_group("settings.language", "lang", [
            (code, words, ctx.lang == code, "", "") for code, words in (("zh-CN", "中文（简体）"), ("en", "English"))],
            ctx.set_language)
        self.radio_group("settings.contrast", "contrast", [
            (v, self.tr(f"settings.contrast.{v}"), ctx.contrast == v, "", "") for v in ("system", "on", "off")],
            ctx.set_contrast)
        # reminders
        self.text(self.tr("settings.reminders"), "stem")
        times = {**DEFAULT_TIMES, **(ctx.store.settings.get("reminder_times") or {})}
        self.time_fields = {}
        for name in ("dose", "diary", "alsfrs"):
            lab = self.text(self.tr(f"settings.reminder.{name}"))
            field = QLineEdit(times[name])
            field.setObjectName(f"time_{name}")
            field.setInputMask("99:99")
            field.setMaximumWidth(160)
            field.setAccessibleName(self.tr(f"settings.reminder.{name}"))
            lab.setBuddy(field)
            self.time_fields[name] = field
            self.add(field)
        self.button(self.tr("settings.save_times"), self._save_times, name="saveTimes")
        # who
        p = ctx.store.settings.pairing()
        self.text(self.tr("settings.who"), "stem")
        if p is not None:
            key = "paired.as_caregiver" if p.role == "caregiver" else "paired.as_participant"
            self.text(self.tr(key, subject=p.participant))
            self.text(self.tr("settings.device", name=p.device_name or "—", url=p.server_url), role="small")
            if ctx.tokens.fallback:
                self.text("⚠ " + self.tr("settings.token_file_warning"), role="error")
        else:
            self.text(self.tr("status.not_paired"))
        # the optional app lock (desktop/ui/screens/lock.py)
        self.text(self.tr("lock.settings.title"), "stem")
        self.button(self.tr("lock.settings.title"), self.nav.lock.show_setup, name="appLock")
        # keyboard help and about
        self.text(self.tr("settings.keys_title"), "stem")
        self.text(self.tr("settings.keys_help"))
        self.text(self.tr("settings.about"), "stem")
        self.text(self.tr("settings.version", version=__version__))
        for rtype in FOLDERS:
            inst = load_instrument(rtype)
            state = self.tr("settings.draft") if inst.is_draft else self.tr("settings.approved")
            self.text(f"{inst.version_string(ctx.lang)} — {state}", role="small")
        # export and unpair
        if p is not None:
            if ctx.store.settings.get("revoked"):
                self.text(self.tr("history.revoked"))
                self.button(self.tr("export.button"), self.export_unsent, primary=True, name="export")
            self.text(self.tr("settings.unpair_title"), "stem")
            waiting = len(ctx.store.outbox.waiting(p.device_id))
            if waiting and not ctx.store.settings.get("revoked"):
                b = self.button(self.tr("settings.unpair"), lambda: None, name="unpair")
                b.setEnabled(False)
                self.text(self.tr("settings.unpair_blocked", n=waiting))
            elif waiting:
                b = self.button(self.tr("settings.unpair"), lambda: None, name="unpair")
                b.setEnabled(False)
                self.text(self.tr("settings.unpair_export_first", n=waiting))
            elif self.confirm_unpair:
                self.text(self.tr("settings.unpair_confirm"))
                row = self.row()
                self.button(self.tr("settings.unpair_yes"), self._unpair, name="unpairYes", layout=row)
                self.button(self.tr("settings.cancel"), self._cancel_unpair, name="unpairNo", layout=row)
            else:
                self.button(self.tr("settings.unpair"), self._ask_unpair, name="unpair")

    def radio_group(self, heading: str, prefix: str, options: list[tuple], on_pick) -> QButtonGroup:
        """A heading and one radio button per (value, text, checked, accessible name, style) option."""
        self.text(self.tr(heading), "stem")
        group = QButtonGroup(self)
        for value, text, checked, name, style in options:
            rb = QRadioButton(text)
            rb.setObjectName(f"{prefix}_{value}")
            rb.setAccessibleName(name or f"{self.tr(heading)}: {text}")
            if style:
                rb.setStyleSheet(style)
            rb.setChecked(checked)
            rb.toggled.connect(lambda on, v=value: on and on_pick(v))
            group.addButton(rb)
            self.add(rb)
        return group

    def _save_times(self) -> None:
        out = {}
        for name, field in self.time_fields.items():
            try:
                out[name] = time.fromisoformat(field.text()).strftime("%H:%M")
            except ValueError:
                self.message = self.tr("settings.time_invalid", value=field.text())
                self.refresh()
                return
        self.ctx.store.settings.set("reminder_times", out)
        self.ctx.reminder_times_changed.emit()
        self.message = self.tr("settings.times_saved")
        self.refresh()

    def _ask_unpair(self) -> None:
        self.confirm_unpair = True
        self.refresh()
        self.focus_named("unpairNo")

    def _cancel_unpair(self) -> None:
        self.confirm_unpair = False
        self.refresh()
        self.focus_named("unpair")

    def _unpair(self) -> None:
        self.confirm_unpair = False
        try:
            unpair(self.ctx.store, self.ctx.tokens)
        except StillWaiting:
            self.refresh()
            return
        self.ctx.forget_engine()
        self.ctx.data_changed.emit()
        self.nav.show_pairing()

    def ask_export_path(self) -> str:
        p = self.ctx.store.settings.pairing()
        default = Path.home() / f"als-epro-unsent-{p.participant if p else 'device'}.json"
        path, _ = QFileDialog.getSaveFileName(self, self.tr("export.button"), str(default), "JSON (*.json)")
        return path

    def export_unsent(self) -> None:
        path = self.ask_export_path()
        if not path:
            return
        n = export_unsent(self.ctx.store, path, exported_at=local_iso(self.ctx.clock.now()))
        self.nav.add_banner("green", "export.done", {"n": n, "path": path}, key="export")
