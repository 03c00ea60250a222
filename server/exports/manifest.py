"""The manifest of an export (EX-02): sha256 and size per file, UTC time, who, software version,
counts, the "DEMO — synthetic data" marker and the draft-wording note; and its verifier.

``verify_manifest(out_dir)`` recomputes every hash and reports each file that is missing, changed,
resized or not listed, so one flipped byte anywhere is caught and named. Command line:
``python -m server.exports verify DIR`` (exit 1 with one line per problem).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Mapping

from server.exports.common import sha256_file, utc_iso
from server.exports.dataset import DEMO_MARKER, draft_instrument_versions
from shared.vocab import RECORD_TYPES

MANIFEST = "manifest.json"
FORMAT = "als-epro-export-manifest/1"


@dataclass(frozen=True)
class Problem:
    path: str
    kind: str        # manifest_missing | manifest_invalid | missing | changed | size | unlisted | unsafe_path
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.path}: {self.kind}" + (f" ({self.detail})" if self.detail else "")


class Counts:
    """The manifest's counts and draft-wording versions, added up chunk by chunk (:meth:`add` a dataset
    of whole participants, :meth:`add_audit` per audit row)."""

    def __init__(self) -> None:
        self.participants = self.versions = self.corrected = self.audit = 0
        self.records = {t: 0 for t in RECORD_TYPES}
        self.instrument_versions: set[str] = set()

    def add(self, dataset: Mapping[str, Any]) -> None:
        self.participants += len(dataset["participants"])
        for r in dataset["records"]:
            self.records[r["type"]] = self.records.get(r["type"], 0) + 1
            self.versions += len(r["versions"])
            self.corrected += len(r["versions"]) > 1
            self.instrument_versions.add(r["instrument_version"])

    def add_audit(self, n: int = 1) -> None:
        self.audit += n

    def meta(self, head: Mapping[str, Any]) -> dict[str, Any]:
        drafts = draft_instrument_versions({"records": [{"instrument_version": v} for v in self.instrument_versions]})
        meta: dict[str, Any] = {
            "study": head["study"], "generated_at": utc_iso(head["generated_at"]), "generated_by": head["generated_by"],
            "software_version": head["software_version"], "demo": bool(head["study"].get("demo")),
            "counts": {
                "participants": self.participants,
                "records": {t: self.records[t] for t in RECORD_TYPES},
                "records_total": sum(self.records.values()), "versions": self.versions,
                "corrected_records": self.corrected,
                "audit_entries": self.audit,
            },
            "draft_wording": None,
        }
        if drafts:
            meta["draft_wording"] = {
                "instrument_versions": drafts,
                "note": {"en": "Instrument wording is a draft, not yet sponsor-approved (versions ending in draft-N).",
                         "zh-CN": "量表文字为草稿，尚未经申办方批准（版本号以 draft-N 结尾）。"}}
        return meta


def dataset_meta(dataset: Mapping[str, Any]) -> dict[str, Any]:
    """What the manifest says about the data: study, who, when, software, counts, markers."""
    counts = Counts()
    counts.add(dataset)
    counts.add_audit(len(dataset["audit"]))
    return counts.meta(dataset)


def _rel(out_dir: Path, path: Path) -> str:
    return PurePosixPath(path.resolve().relative_to(out_dir.resolve())).as_posix()


def write_manifest(out_dir: str | Path, files: Iterable[str | Path], dataset_meta: Mapping[str, Any]) -> Path:
    """Write ``manifest.json`` listing ``files`` (paths inside ``out_dir``) with their sha256 and size."""
    out = Path(out_dir)
    entries = []
    for f in sorted({Path(f) if Path(f).is_absolute() else out / f for f in files}, key=lambda p: _rel(out, p)):
        entries.append({"path": _rel(out, f), "sha256": sha256_file(f), "bytes": f.stat().st_size})
    body: dict[str, Any] = {"format": FORMAT}
    if dataset_meta.get("demo"):
        body["marker"] = DEMO_MARKER
    body.update({k: v for k, v in dataset_meta.items()})
    body["verify_with"] = "python -m server.exports verify <this folder>  (or: als-epro-server export verify <folder>)"
    body["files"] = entries
    body["counts"] = {**dict(dataset_meta.get("counts", {})), "files": len(entries)}
    path = out / MANIFEST
    path.write_text(json.dumps(body, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return path


def _safe(rel: str) -> bool:
    p = PurePosixPath(rel)
    return bool(rel) and not p.is_absolute() and ".." not in p.parts and "\\" not in rel


def verify_manifest(out_dir: str | Path) -> list[Problem]:
    """Every problem with the export in ``out_dir`` (empty list: every file is exactly as listed)."""
    out = Path(out_dir)
    mpath = out / MANIFEST
    if not mpath.is_file():
        return [Problem(MANIFEST, "manifest_missing")]
    try:
        body = json.loads(mpath.read_text(encoding="utf-8"))
        listed = body["files"]
        if body.get("format") != FORMAT or not isinstance(listed, list):
            raise ValueError("unknown manifest format")
        entries = [(str(e["path"]), str(e["sha256"]), int(e["bytes"])) for e in listed]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        return [Problem(MANIFEST, "manifest_invalid", str(exc)[:200])]
    problems: list[Problem] = []
    seen: set[str] = set()
    for rel, digest, size in entries:
        if not _safe(rel):
            problems.append(Problem(rel, "unsafe_path"))
            continue
        seen.add(rel)
        f = out / rel
        if not f.is_file():
            problems.append(Problem(rel, "missing"))
            continue
        actual_size = f.stat().st_size
        if actual_size != size:
            problems.append(Problem(rel, "size", f"listed {size} bytes, found {actual_size}"))
        actual = sha256_file(f)
        if actual != digest:
            problems.append(Problem(rel, "changed", f"sha256 listed {digest[:12]}…, found {actual[:12]}…"))
    for f in sorted(out.rglob("*")):
        if f.is_file() and f != mpath:
            rel = _rel(out, f)
            if rel not in seen:
                problems.append(Problem(rel, "unlisted", "a file that the manifest does not list"))
    return problems
