"""The schemas shipped with the server are the team's reference standards, byte for byte."""

from pathlib import Path

import pytest

import server.exports.validate as validate

SHIPPED = Path(validate.__file__).resolve().parent / "standards"
REFERENCE = Path(validate.__file__).resolve().parents[3] / "shared" / "standards"
FILES = ["odm-1.3.2/ODM1-3-2.xsd", "odm-1.3.2/ODM1-3-2-foundation.xsd", "odm-1.3.2/xml.xsd",
         "odm-1.3.2/xlink.xsd", "odm-1.3.2/xmldsig-core-schema.xsd", "fhir-r4/fhir.schema.json"]


@pytest.mark.parametrize("name", FILES)
def test_shipped_copy_matches_the_reference(name):
    assert (SHIPPED / name).is_file()
    if not REFERENCE.is_dir():
        pytest.skip("../shared/standards is not beside this checkout")
    assert (SHIPPED / name).read_bytes() == (REFERENCE / name).read_bytes()


def test_validation_finds_a_schema_folder_even_without_the_reference(monkeypatch, tmp_path):
    monkeypatch.setenv("ALS_EPRO_STANDARDS", str(tmp_path / "nowhere"))
    found = validate.standards_dir()
    assert found is not None and (found / "odm-1.3.2/ODM1-3-2.xsd").is_file()
