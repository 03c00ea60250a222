"""Versioned instrument content (wording in English and Simplified Chinese) read from data files.

Each instrument has one JSON file per wording version under ``data/<instrument-folder>/<version>.json``.
Sponsor-approved wording replaces a ``draft-N`` file by adding a new version file: no code changes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from shared.messages import LANGUAGES, normalize_language

_DATA = Path(__file__).parent / "data"

# record type (contract §1) -> folder holding that instrument's wording versions
FOLDERS = {
    "alsfrs_r": "alsfrs_r",
    "nasal_symptoms": "nasal_symptoms",
    "dose_confirmation": "dose_confirmation",
}
CURRENT_VERSION = {"alsfrs_r": "draft-1", "nasal_symptoms": "draft-1", "dose_confirmation": "draft-1"}


@dataclass(frozen=True)
class Instrument:
    record_type: str
    content: dict[str, Any]

    @property
    def version(self) -> str:
        return self.content["version"]

    @property
    def is_draft(self) -> bool:
        return self.version.startswith("draft-")

    def version_string(self, lang: str) -> str:
        """The ``instrument_version`` a client stamps on a record, e.g. ``alsfrs-r/cedarbaum-1999/zh-CN/draft-1``."""
        c = self.content
        return f"{c['instrument']}/{c['source']}/{normalize_language(lang)}/{c['version']}"

    def text(self, obj: dict[str, str], lang: str) -> str:
        return obj.get(normalize_language(lang)) or obj["en"]


@lru_cache(maxsize=None)
def load_instrument(record_type: str, version: str | None = None) -> Instrument:
    folder = _DATA / FOLDERS[record_type]
    version = version or CURRENT_VERSION[record_type]
    content = json.loads((folder / f"{version}.json").read_text(encoding="utf-8"))
    return Instrument(record_type, content)


def available_versions(record_type: str) -> list[str]:
    return sorted(p.stem for p in (_DATA / FOLDERS[record_type]).glob("*.json"))


@lru_cache(maxsize=1)
def known_instrument_versions() -> frozenset[str]:
    """Every ``instrument_version`` string that the shipped wording files define."""
    out = set()
    for rtype in FOLDERS:
        for version in available_versions(rtype):
            inst = load_instrument(rtype, version)
            out.update(inst.version_string(lang) for lang in LANGUAGES)
    return frozenset(out)


def alsfrs_items(version: str | None = None) -> list[dict[str, Any]]:
    return load_instrument("alsfrs_r", version).content["items"]


def nasal_symptoms(version: str | None = None) -> list[dict[str, Any]]:
    return load_instrument("nasal_symptoms", version).content["symptoms"]
