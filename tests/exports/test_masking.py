"""Blinding: no export file names an arm, cohort, dose level, concentration or the product."""

from __future__ import annotations

import re

FORBIDDEN = re.compile(
    r"\b(arms?|cohorts?|dose[ _-]?levels?|concentrations?|placebo|exosomes?|hUC-MSC|sEV-001|randomi[sz]ation)\b"
    r"|外泌体|安慰剂|队列|剂量组|浓度|干细胞", re.IGNORECASE)


def test_no_export_file_carries_allocation_or_product_words(exported):
    _, out, _ = exported
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) >= 15
    for path in files:
        if path.suffix == ".xpt":  # binary: scan every value as read back
            import pandas as pd
            text = pd.read_sas(path, format="xport", encoding="utf-8").to_csv()
        else:
            text = path.read_bytes().decode("utf-8-sig")
        match = FORBIDDEN.search(text)
        assert match is None, f"{path.relative_to(out)}: {match.group(0)!r}"


def test_the_scan_would_notice(exported):
    assert FORBIDDEN.search("ECTRT=Placebo") and FORBIDDEN.search("队列 2") and not FORBIDDEN.search("pharmacy")
