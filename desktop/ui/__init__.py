"""The PySide6 client: thin widgets over ``desktop.services``, ``desktop.store`` and ``desktop.sync``.

All Qt imports go through :mod:`desktop.ui.qt`; long work runs through :class:`desktop.ui.ops.BackgroundOp`.
"""
