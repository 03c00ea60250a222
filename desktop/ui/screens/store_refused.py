"""The window shown instead of the program when the diary cannot be kept safely (PS-05): no OS
keyring and no site setting that allows a plain store, or a database whose key the keyring lost.
Nothing is stored; the participant is told to call the site."""

from __future__ import annotations

from pathlib import Path

from shared.messages import normalize_language

from desktop.services.i18n import tr
from desktop.ui.qt import QApplication, QVBoxLayout, QWidget
from desktop.ui.widgets import WrapButton, label


class StoreRefused(QWidget):
    name = "store_refused"

    def __init__(self, reason: str, lang: str, data_dir: Path) -> None:
        super().__init__()
        lang = normalize_language(lang)
        self.setObjectName("storeRefused")
        self.setWindowTitle(tr("at_rest.refused.window", lang))
        self.resize(800, 520)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(32, 32, 32, 32)
        lay.setSpacing(16)
        self.title = label(tr(f"at_rest.refused.{reason}.title", lang), "title")
        self.body = label(tr(f"at_rest.refused.{reason}.body", lang, folder=str(data_dir)))
        lay.addWidget(self.title)
        lay.addWidget(self.body)
        self.close_button = WrapButton(tr("at_rest.refused.close", lang))
        self.close_button.setObjectName("close")
        self.close_button.clicked.connect(QApplication.quit)
        lay.addWidget(self.close_button)
        lay.addStretch(1)
        self.close_button.setFocus()
