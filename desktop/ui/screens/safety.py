"""The safety notice after Submit (contract §4, ux rule 23): a full page, after the entry is saved."""

from __future__ import annotations

from desktop.services.describe import alsfrs_item, nasal_symptom
from desktop.services.safety import previous_alsfrs, safety_findings
from desktop.services.today import protocol_of
from desktop.ui.qt import Qt
from desktop.ui.screens.base import Screen


class SafetyScreen(Screen):
    name = "safety"

    def __init__(self, ctx, nav) -> None:
        super().__init__(ctx, nav)
        self.entry = None

    def title(self) -> str:
        return self.tr("safety.title")

    def heading_text(self) -> str:
        return self.tr("safety.heading")

    def build(self) -> None:
        heading = self.text(self.heading_text(), "heading")
        heading.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        heading.setAccessibleName(self.heading_text())
        lang = self.ctx.lang
        if self.entry is not None:
            env = self.entry.envelope
            found = safety_findings(env, protocol_of(self.ctx.store), previous_alsfrs(self.ctx.store, env))
            for key, params in found:
                words = {k: (alsfrs_item(v) if k == "item" else nasal_symptom(v))["title"].get(lang, v)
                         for k, v in params.items()}
                self.text(self.tr("safety.you_reported", what=self.tr(key, **words)))
        self.text(self.tr("safety.not_watched"), role="strong")
        protocol = protocol_of(self.ctx.store)
        site = protocol.site if protocol else {}
        self.text(self.tr("safety.call_site"))
        phone = self.text(site.get("phone", ""), "phone")
        phone.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse
                                      | Qt.TextInteractionFlag.TextSelectableByKeyboard)
        phone.setAccessibleName(self.tr("safety.site_phone", phone=site.get("phone", "")))
        self.text(self.tr("safety.emergency", number=site.get("emergency", "120")))
        self.button(self.tr("safety.read"), self.nav.show_today, primary=True, big=True, name="readIt")
        self._first = heading
