"""Render every client screen in English and Simplified Chinese, at 100 % and at the largest text
size (200 %), into PNG files: ``python -m tests.tools.screenshots --out screenshots``.

Uses a real X server under Xvfb when ``DISPLAY`` is set (platform ``xcb``); otherwise Qt's offscreen
platform and ``QWidget.grab()``. Each image shows the window as a person sees it; ``*-full.png``
stretches the window to the whole page so that nothing below the fold goes unseen.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

SIZES = {"100": 1.0, "200": 2.0}
LANGS = ("en", "zh-CN")
WINDOW = (1024, 820)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", default="screenshots")
    p.add_argument("--only", default="", help="comma-separated scene name prefixes")
    p.add_argument("--full", action="store_true", help="also save whole-page images")
    args = p.parse_args(argv)
    if os.environ.get("DISPLAY"):
        os.environ["QT_QPA_PLATFORM"] = "xcb"
    else:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from desktop.ui.qt import QApplication, QEvent
    from tests.tools.scenes import CHART_SCENES, SCENES, clock, pair
    from desktop.store import Store
    from desktop.ui.context import UiContext
    from desktop.ui.main_window import Navigator
    from desktop.ui.ops import busy

    app = QApplication.instance() or QApplication(["screenshots"])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    only = [x for x in args.only.split(",") if x]
    count = 0
    started = time.monotonic()
    for name, paired, build in SCENES:
        if only and not any(name.startswith(o) for o in only):
            continue
        for size_name, scale in SIZES.items():
            for lang in LANGS:
                with tempfile.TemporaryDirectory() as tmp:
                    store = Store(Path(tmp) / "data")
                    if paired:
                        pair(store, show_scores=name in CHART_SCENES)
                    store.settings.set("text_scale", scale)
                    ctx = UiContext(store, clock(), language=lang)
                    w = Navigator(ctx)
                    w.resize(*WINDOW)
                    w.show()
                    w.activateWindow()
                    build(w)
                    deadline = time.monotonic() + 5
                    while busy() and time.monotonic() < deadline:
                        app.processEvents()
                    for _ in range(3):
                        app.processEvents()
                    stem = f"{name}.{lang}.{size_name}"
                    w.grab().save(str(out / f"{stem}.png"))
                    count += 1
                    if args.full:
                        page = w.current().page
                        need = page.widget().sizeHint().height() - page.viewport().height()
                        if need > 0:
                            w.resize(WINDOW[0], min(WINDOW[1] + need + 40, 6000))
                            for _ in range(3):
                                app.processEvents()
                            w.grab().save(str(out / f"{stem}-full.png"))
                            count += 1
                    w.close()
                    w.deleteLater()
                    QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
                    app.processEvents()
                    store.close()
    print(f"screenshots: {count} images in {out}/ ({os.environ['QT_QPA_PLATFORM']}, "
          f"{time.monotonic() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
