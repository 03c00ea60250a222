"""Screenshots of the switch-scan highlight (issue 14): ``python -m tests.tools.scan_screenshots --out DIR``
writes an ALSFRS-R question with the highlight on an answer, in both languages, at 100 % and 200 %
text and in high contrast; ``--small`` scales each to 640 px wide (the README copies)."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--small", action="store_true")
    args = p.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from desktop.store import Store
    from desktop.ui.context import UiContext
    from desktop.ui.main_window import Navigator
    from desktop.ui.qt import QApplication, Qt
    from tests.tools.scenes import clock, pair
    app = QApplication.instance() or QApplication(["scan-shots"])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for lang in ("en", "zh-CN"):
        for label, scale, contrast in (("100", 1.0, "off"), ("200", 2.0, "off"), ("hc", 1.0, "on")):
            with tempfile.TemporaryDirectory() as tmp:
                store = Store(Path(tmp) / "data")
                pair(store)
                store.settings.set("text_scale", scale)
                store.settings.set("contrast", contrast)
                w = Navigator(UiContext(store, clock(), language=lang))
                w.resize(1024, 820)
                w.show()
                w.activateWindow()
                w.access.scan.manual_clock = True
                w.open_form("alsfrs_r", {})
                form = w.current()
                form.draft.answers.update(respondent="participant", gastrostomy=False, items={"1": 4, "2": 3})
                form.go("item:3")
                w.access.preset("one-switch")
                w.access.scan.tick()                  # from the previous answer (3) down to 2
                for _ in range(5):
                    app.processEvents()
                image = w.grab().toImage()
                if args.small:
                    image = image.scaledToWidth(640, Qt.TransformationMode.SmoothTransformation)
                image.save(str(out / f"desktop-30-scan-highlight.{lang}.{label}.png"))
                w.close()
                store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
