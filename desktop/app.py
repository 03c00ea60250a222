"""``als-epro``: the composition root. Builds the store, services and sync, then the Qt window.

    als-epro [--data-dir DIR] [--server URL] [--lang en|zh-CN] [--smoke]

``--smoke`` starts, shows Today or Pairing, prints one line and exits 0 (packaging tests and the
cold-start benchmark use it).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from desktop import __version__

APP_NAME = "als-epro"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=APP_NAME, description="ALS ePRO diary client")
    p.add_argument("--data-dir", help="keep all local state in this folder (default: the user data folder)")
    p.add_argument("--server", default="", help="prefill the server address on the pairing screen")
    p.add_argument("--lang", choices=("en", "zh-CN"), help="language (default: saved choice, else system)")
    p.add_argument("--smoke", action="store_true", help="start, print one line, exit 0")
    p.add_argument("--version", action="version", version=f"{APP_NAME} {__version__}")
    return p.parse_args(argv)


def default_data_dir() -> Path:
    import platformdirs
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.smoke and sys.platform.startswith("linux") and not os.environ.get("DISPLAY") \
            and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    data_dir = Path(args.data_dir) if args.data_dir else default_data_dir()

    from desktop.clock import SystemClock
    from desktop.store.keys import KeyLost, KeyringUnavailable, open_store
    from desktop.ui.context import UiContext
    from desktop.ui.main_window import Navigator
    from desktop.ui.qt import QApplication

    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else APP_NAME])
    app.setApplicationName(APP_NAME)
    try:
        store = open_store(data_dir)
    except (KeyringUnavailable, KeyLost) as exc:
        from desktop.ui.screens.store_refused import StoreRefused
        reason = "keyring" if isinstance(exc, KeyringUnavailable) else "key_lost"
        refused = StoreRefused(reason, args.lang or os.environ.get("LANG", ""), data_dir)
        refused.show()
        print(f"{APP_NAME} {__version__} refused: store={reason} data-dir={data_dir}", file=sys.stderr)
        if args.smoke:
            app.processEvents()
            return 3
        app.exec()
        return 3
    ctx = UiContext(store, SystemClock(), server_url=args.server, language=args.lang)
    window = Navigator(ctx)
    window.show()
    if args.smoke:
        app.processEvents()
        paired = store.settings.pairing()
        print(f"{APP_NAME} {__version__} ok: screen={window.current_name()} "
              f"paired={'yes' if paired else 'no'} lang={ctx.lang} data-dir={data_dir}")
        store.close()
        return 0
    from desktop.ui.scheduling import start_scheduler
    window.install_tray()
    window.startup_checks()
    scheduler = start_scheduler(ctx)
    try:
        return app.exec()
    finally:
        scheduler.shutdown(wait=False)
        store.close()
