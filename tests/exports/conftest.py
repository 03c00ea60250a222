"""Fixtures for the export tests: one synthetic site exported once per session (read-only)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from server.exports import export_all
from tests.exports.factories import make_dataset


@pytest.fixture
def dataset():
    return make_dataset()


@pytest.fixture(scope="session")
def exported(tmp_path_factory) -> tuple[dict, Path, dict]:
    """(dataset, export folder, manifest) for tests that only read the files."""
    ds = make_dataset()
    out = tmp_path_factory.mktemp("export") / "site-BJ01"
    manifest = export_all(ds, out)
    return ds, out, manifest


def read_csv(path: Path) -> list[dict[str, str]]:
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf"), "CSV files carry a UTF-8 byte-order mark for spreadsheets"
    return list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"), newline="")))


def header(path: Path) -> list[str]:
    return next(csv.reader(io.StringIO(path.read_bytes().decode("utf-8-sig"), newline="")))
