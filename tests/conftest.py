"""Root test configuration shared by every test folder.

Qt runs offscreen unless a caller chose a platform (``QT_QPA_PLATFORM=xcb`` under Xvfb).
Each area keeps its own fixtures in ``tests/<area>/conftest.py``.
"""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TZ", "UTC")
