"""Instrument wording files and the message catalogue: complete in both languages, masked."""

import json
import re
from pathlib import Path

import pytest

from shared.instruments import available_versions, known_instrument_versions, load_instrument
from shared.messages import LANGUAGES, catalogue, normalize_language, t
from shared.vocab import ALSFRS_ALL_KEYS, LOSS_REASONS, MISSED_REASONS, NASAL_SYMPTOMS, TNSS_SYMPTOMS

DATA = Path(__import__("shared.instruments", fromlist=["_"]).__file__).parent / "data"


def texts(obj, path="$"):
    """Yield every bilingual text object in a JSON tree."""
    if isinstance(obj, dict):
        if "en" in obj and set(obj) <= {"en", "zh-CN"}:
            yield path, obj
        else:
            for k, v in obj.items():
                yield from texts(v, f"{path}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from texts(v, f"{path}[{i}]")


@pytest.mark.parametrize("rtype", ["alsfrs_r", "nasal_symptoms", "dose_confirmation"])
def test_every_text_exists_in_both_languages(rtype):
    content = load_instrument(rtype).content
    found = list(texts(content))
    assert len(found) > 10
    for path, obj in found:
        for lang in LANGUAGES:
            assert obj.get(lang, "").strip(), f"{rtype} {path} lacks {lang}"


@pytest.mark.parametrize("rtype", ["alsfrs_r", "nasal_symptoms", "dose_confirmation"])
def test_every_shipped_version_is_draft_until_approved(rtype):
    for version in available_versions(rtype):
        inst = load_instrument(rtype, version)
        assert re.fullmatch(r"draft-\d+", version) or inst.content["status"] == "approved"
        assert inst.is_draft == version.startswith("draft-")


def test_alsfrs_items_and_options():
    items = load_instrument("alsfrs_r").content["items"]
    assert tuple(i["id"] for i in items) == ALSFRS_ALL_KEYS
    for item in items:
        assert [o["value"] for o in item["options"]] == [4, 3, 2, 1, 0]
    gast = {i["id"]: i["gastrostomy"] for i in items}
    assert gast["5a"] is False and gast["5b"] is True
    assert "ASSUMED" in load_instrument("alsfrs_r").content["gastrostomy_question"]["assumption"]
    assert load_instrument("alsfrs_r").version_string("zh_CN") == "alsfrs-r/cedarbaum-1999/zh-CN/draft-1"


def test_nasal_symptoms_match_the_contract():
    c = load_instrument("nasal_symptoms").content
    assert tuple(s["name"] for s in c["symptoms"]) == NASAL_SYMPTOMS
    assert tuple(s["name"] for s in c["symptoms"] if s["tnss"]) == TNSS_SYMPTOMS
    assert [g["value"] for g in c["grades"]] == [0, 1, 2, 3]


def test_dose_codes_match_the_contract():
    c = load_instrument("dose_confirmation").content
    assert set(c["missed_reasons"]) == set(MISSED_REASONS)
    assert set(c["loss"]) == set(LOSS_REASONS)


FORBIDDEN = re.compile(r"exosome|vesicle|\bsEV\b|\bMSC\b|placebo|cohort|concentration|外泌体|安慰剂|囊泡|干细胞|队列|浓度",
                       re.IGNORECASE)


def test_no_wording_names_the_product_or_an_arm():
    for path in DATA.rglob("*.json"):
        assert not FORBIDDEN.search(path.read_text(encoding="utf-8")), path


def test_known_versions_cover_both_languages():
    versions = known_instrument_versions()
    assert "nasal-symptoms/epro-tnss-adapted/en/draft-1" in versions
    assert "dose-confirmation/epro-dose-diary/zh-CN/draft-1" in versions


def test_message_catalogue_is_complete_and_translates():
    for key, entry in catalogue().items():
        for lang in LANGUAGES:
            assert entry.get(lang, "").strip(), f"{key} lacks {lang}"
    assert t("error.pairing.code_used", "zh_CN") != t("error.pairing.code_used", "en")
    assert t("no.such.key", "en") == "no.such.key"
    assert normalize_language("zh-Hans") == "zh-CN" and normalize_language(None) == "en"


def test_every_rule_the_schemas_can_emit_has_a_message():
    import shared.schemas.fields as fields_mod
    import shared.schemas.records as rec_mod
    source = Path(fields_mod.__file__).read_text() + Path(rec_mod.__file__).read_text()
    rules = set(re.findall(r'"([a-z_.0-9]+)\|', source)) | set(re.findall(r'_fe\([^,]+,\s*"([a-z_.0-9]+)"', source))
    rules.discard("rule")  # the docstring names the format "rule|human message"
    assert len(rules) > 15
    missing = sorted(r for r in rules if f"rule.{r}" not in catalogue())
    assert not missing, missing
