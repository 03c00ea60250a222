"""ALS ePRO desktop client: offline-first diaries for participants and caregivers.

Layers (imports only point downwards): ``ui`` (PySide6) → ``services`` → ``sync``, ``store`` → ``shared``.
Only ``desktop.ui`` and ``desktop.app`` import Qt.
"""

__version__ = "0.1.0"
