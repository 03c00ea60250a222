"""One message catalogue (English, Simplified Chinese) for both sides.

Every ``*.json`` file in this folder maps a key to ``{"en": ..., "zh-CN": ...}``; the files are merged
and a key defined twice is an error. ``core.json`` holds error codes and validation rules; the client
and the staff pages keep their own files here so that every string lives in one place.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

LANGUAGES = ("en", "zh-CN")
DEFAULT_LANGUAGE = "en"
_HERE = Path(__file__).parent


def normalize_language(lang: str | None) -> str:
    """Map a locale name (``zh_CN.UTF-8``, ``zh-Hans``, ``en_US``) to one of :data:`LANGUAGES`."""
    if not lang:
        return DEFAULT_LANGUAGE
    low = lang.replace("_", "-").lower()
    return "zh-CN" if low.startswith("zh") else "en"


@lru_cache(maxsize=1)
def catalogue() -> dict[str, dict[str, str]]:
    merged: dict[str, dict[str, str]] = {}
    for path in sorted(_HERE.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        for key, texts in data.items():
            if key in merged:
                raise ValueError(f"message key {key!r} defined twice (again in {path.name})")
            merged[key] = texts
    return merged


def t(key: str, lang: str | None = None, /, **params: object) -> str:
    """Translate ``key`` into ``lang``; falls back to English, then to the key itself."""
    texts = catalogue().get(key)
    if texts is None:
        return key
    text = texts.get(normalize_language(lang)) or texts.get(DEFAULT_LANGUAGE) or key
    return text.format(**params) if params else text


def has(key: str) -> bool:
    return key in catalogue()
