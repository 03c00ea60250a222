"""Pairing (server address, one-time code, device name) and the "paired as" confirmation."""

from __future__ import annotations

import socket

from desktop.sync import CertificateError, NetworkError, RequestError, TransportError, UrlRefused
from desktop.sync.pairing import normalize_code, pair_device
from desktop.ui.ops import BackgroundOp
from desktop.ui.qt import QApplication, QLineEdit, Qt
from desktop.ui.screens.base import Screen
from desktop.ui.widgets import label

PAIR_ERRORS = {410: "pairing.error.code_used", 429: "pairing.error.rate_limited",
               404: "pairing.error.code_invalid", 400: "pairing.error.code_invalid",
               401: "pairing.error.code_invalid", 403: "pairing.error.code_invalid"}


def pairing_error_key(exc: Exception) -> str:
    if isinstance(exc, UrlRefused):
        return exc.key
    if isinstance(exc, CertificateError):
        return "pairing.error.certificate"
    if isinstance(exc, NetworkError):
        return "pairing.error.offline"
    if isinstance(exc, RequestError):
        if exc.code == "pairing.code_expired":
            return "pairing.error.code_expired"
        return PAIR_ERRORS.get(exc.status or 0, "pairing.error.other")
    if isinstance(exc, TransportError):
        return "pairing.error.server"
    return "pairing.error.other"


class PairingScreen(Screen):
    name = "pairing"

    def __init__(self, ctx, nav) -> None:
        super().__init__(ctx, nav)
        self.values = {"url": ctx.server_url, "code": "", "name": socket.gethostname()}
        self.error_key = ""
        self.busy = False

    def title(self) -> str:
        return self.tr("pairing.title")

    def _field(self, key: str, label_key: str, hint_key: str, value: str, name: str) -> QLineEdit:
        lab = self.text(self.tr(label_key))
        field = QLineEdit(value)
        field.setObjectName(name)
        field.setPlaceholderText(self.tr(hint_key) if hint_key else "")
        field.setAccessibleName(self.tr(label_key))
        field.textChanged.connect(lambda text: self.values.__setitem__(key, text))
        lab.setBuddy(field)
        return field

    def build(self) -> None:
        self.text(self.tr("pairing.welcome"), "heading")
        self.text(self.tr("pairing.explain"))
        self.url = self._field("url", "pairing.url", "pairing.url_hint", self.values["url"], "serverUrl")
        self.add(self.url)
        self.code = self._field("code", "pairing.code", "pairing.code_hint", self.values["code"], "code")
        row = self.row()
        row.addWidget(self.code, 1)
        self.paste = self.button(self.tr("pairing.paste"), self._paste, layout=row)
        self.text(self.tr("pairing.code_help"), role="small")
        self.device = self._field("name", "pairing.device_name", "", self.values["name"], "deviceName")
        self.add(self.device)
        self.error = label(self.tr(self.error_key) if self.error_key else "", role="error")
        self.add(self.error)
        self.error.setVisible(bool(self.error_key))   # only once parented: never a stray window
        self.pair_button = self.button(self.tr("pairing.busy") if self.busy else self.tr("pairing.pair"),
                                       self.pair, primary=True, big=True, name="pair")
        self.pair_button.setEnabled(not self.busy)
        access = self.button(self.tr("access.open"), self.nav.show_access, name="openAccess")
        access.setAccessibleDescription(self.tr("access.open_description"))
        self._first = self.code if self.values["url"] else self.url

    def _paste(self) -> None:
        text = QApplication.clipboard().text()
        self.code.setText(normalize_code(text))
        self.code.setFocus()

    def pair(self) -> None:
        if self.busy:
            return
        url, code, name = self.values["url"], self.values["code"], self.values["name"]
        if not normalize_code(code):
            self._fail_key("pairing.error.code_empty", "code")
            return
        self.busy = True
        self.error_key = ""
        self.pair_button.setEnabled(False)
        self.pair_button.setText(self.tr("pairing.busy"))
        ctx = self.ctx
        BackgroundOp(lambda: pair_device(ctx.store, ctx.tokens, ctx.clock, url, code, name or "computer",
                                         lambda u: ctx.transport_factory(u, None)), self) \
            .success(self._paired).failure(self._failed).run()

    def _paired(self, _pairing) -> None:
        self.busy = False
        self.values["code"] = ""
        self.ctx.forget_engine()
        self.ctx.data_changed.emit()
        self.nav.show_paired()

    def _failed(self, exc: Exception) -> None:
        self.busy = False
        self._fail_key(pairing_error_key(exc), "url" if isinstance(exc, UrlRefused) else "code")

    def _fail_key(self, key: str, field: str) -> None:
        """Show the error in words and put the focus on the field to fix (ux rule 19)."""
        self.error_key = key
        self.refresh()
        (self.url if field == "url" else self.code).setFocus(Qt.FocusReason.OtherFocusReason)


class PairedScreen(Screen):
    name = "paired"

    def title(self) -> str:
        return self.tr("paired.title")

    def build(self) -> None:
        p = self.ctx.store.settings.pairing()
        if p is None:
            return
        key = "paired.as_caregiver" if p.role == "caregiver" else "paired.as_participant"
        self.text(self.tr(key, subject=p.participant), "heading")
        site = p.protocol.get("site", {})
        name = site.get("name", {}).get(self.ctx.lang) or site.get("name", {}).get("en", "")
        if name:
            self.text(name)
        self.text(self.tr("paired.phone_intro"))
        phone = self.text(site.get("phone", ""), "phone")
        phone.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse
                                      | Qt.TextInteractionFlag.TextSelectableByKeyboard)
        if self.ctx.tokens.fallback:
            self.text(self.tr("settings.token_file_warning"), role="error")
        self.button(self.tr("paired.start"), self.nav.show_today, primary=True, big=True, first=True)
