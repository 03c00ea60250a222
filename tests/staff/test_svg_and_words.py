"""Server-drawn charts, date and time wording, and the staff message catalogue (both languages)."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from server.staff import fmt
from server.staff.svg import Point, line_chart, qr_svg
from shared.messages import LANGUAGES

ROOT = Path(__file__).resolve().parents[2]
SVG = "{http://www.w3.org/2000/svg}"


def _chart(**over):
    args = dict(chart_id="c1", title="Total <b>", desc="values & more", y_min=32, y_max=48,
                y_ticks=range(32, 49, 4), x_tick=lambda x: f"D{int(x)}", x_label="Study day",
                baseline=(44, "Baseline 44"), marker_x=(1, "Dose 1"))
    args.update(over)
    return line_chart([Point(-5, 44, emphasis=True), Point(8, 43), Point(15, 39)], **args)


def test_chart_is_well_formed_accessible_svg_with_every_value_as_text():
    svg = ET.fromstring(str(_chart()))
    assert svg.get("role") == "img" and svg.get("aria-labelledby") == "c1-t c1-d"
    assert svg.find(f"{SVG}title").text == "Total <b>" and svg.find(f"{SVG}desc").text == "values & more"
    texts = [t.text for t in svg.iter(f"{SVG}text")]
    for value in ("44", "43", "39", "Baseline 44", "Dose 1", "D-5", "D8", "D15", "32", "48", "Study day"):
        assert value in texts, value
    assert len(list(svg.iter(f"{SVG}rect"))) == 1  # the baseline report is drawn as a square
    assert len(list(svg.iter(f"{SVG}circle"))) == 2
    dashed = [ln for ln in svg.iter(f"{SVG}line") if ln.get("stroke-dasharray") == "8 5"]
    assert len(dashed) == 1


def test_points_sit_where_their_values_say():
    svg = ET.fromstring(str(_chart(baseline=None, marker_x=None)))
    ys = {c.get("cy") for c in svg.iter(f"{SVG}circle")}
    poly = svg.find(f"{SVG}polyline").get("points").split()
    heights = [float(p.split(",")[1]) for p in poly]
    assert heights[0] < heights[1] < heights[2]  # 44 above 43 above 39 (SVG y grows downwards)
    assert len(ys) == 2


def test_chart_text_is_escaped():
    out = str(_chart(title='<script>alert(1)</script>', x_tick=lambda x: "<i>"))
    assert "<script>" not in out and "&lt;script&gt;" in out and "<i>" not in out


def test_qr_code_is_inline_svg_sized_by_css():
    svg = str(qr_svg("ABCD-EFGH-JK", "QR <code>"))
    root = ET.fromstring(svg)
    assert root.get("role") == "img" and root.get("aria-label") == "QR <code>"
    assert root.get("width") is None and root.get("viewBox")
    assert svg == str(qr_svg("ABCD-EFGH-JK", "QR <code>"))  # deterministic: same code, same picture


def test_dates_and_times_read_as_ux_rule_26():
    moment = datetime(2026, 11, 25, 1, 12, tzinfo=timezone.utc)
    assert fmt.fmt_local(moment, "en", "Asia/Shanghai") == "Wed 25 Nov 2026 09:12 (UTC+8)"
    assert fmt.fmt_local(moment, "zh-CN", "Asia/Shanghai") == "2026年11月25日 周三 09:12 (UTC+8)"
    assert fmt.fmt_utc("2026-11-25T01:12:03.456Z") == "2026-11-25 01:12:03 UTC"
    assert fmt.fmt_date(date(2026, 2, 5), "zh-CN", weekday=False, year=False) == "2月5日"
    assert fmt.offset_label("Asia/Kolkata", moment) == "UTC+5:30"
    assert fmt.study_day_label(-1, "en") == "Day −1" and fmt.study_day_label(6, "zh-CN") == "第 6 天"
    assert fmt.check_code("3f9a21c0ffff") == "3F9A 21C0"
    assert fmt.fmt_local(None, "en", "UTC") == "—"


@pytest.mark.parametrize("delta,en,zh", [
    (timedelta(seconds=20), "just now", "刚刚"), (timedelta(minutes=5), "5 min ago", "5 分钟前"),
    (timedelta(hours=3, minutes=5), "3 h ago", "3 小时前"), (timedelta(days=2, hours=1), "2 days ago", "2 天前"),
    (timedelta(minutes=-10), "in 10 min", "10 分钟后"),
])
def test_relative_times(delta, en, zh):
    now = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
    assert fmt.fmt_relative(now - delta, now, "en") == en
    assert fmt.fmt_relative(now - delta, now, "zh-CN") == zh


def _catalogue() -> dict:
    """Every ``staff.*`` message, from staff.json and the other areas' message files."""
    out = json.loads((ROOT / "shared/messages/staff.json").read_text(encoding="utf-8"))
    for path in sorted((ROOT / "shared/messages").glob("*.json")):
        out.update({k: v for k, v in json.loads(path.read_text(encoding="utf-8")).items() if k.startswith("staff.")})
    return out


def test_every_staff_message_has_both_languages_and_the_same_placeholders():
    for key, texts in _catalogue().items():
        assert key.startswith("staff."), key
        assert set(texts) == set(LANGUAGES), key
        assert all(texts[lang].strip() or key == "staff.colon" for lang in LANGUAGES), key
        assert set(re.findall(r"{(\w+)}", texts["en"])) == set(re.findall(r"{(\w+)}", texts["zh-CN"])), key


def test_every_message_key_used_by_the_staff_pages_exists():
    known = set(_catalogue())
    sources = [*(ROOT / "server/templates/staff").glob("*.html"),
               *(p for p in (ROOT / "server/staff").glob("*.py") if p.name != "review.py")]
    used = set()
    for path in sources:
        used |= set(re.findall(r'_\(\s*["\'](staff\.[\w.\-]+)["\']', path.read_text(encoding="utf-8")))
        used |= set(re.findall(r'\bt\(\s*f?["\'](staff\.[\w.\-]+)["\']', path.read_text(encoding="utf-8")))
        used |= set(re.findall(r'register_nav\([^,]+,\s*"(staff\.[\w.]+)"', path.read_text(encoding="utf-8")))
    used = {k for k in used if not k.endswith((".", "_"))}  # prefixes of keys built from codes
    assert used and sorted(used - known) == []
    # dynamic keys built from codes: every code has its words
    from server.auth import ROLES
    from shared.schedule import DUE
    from shared.vocab import ADMINISTERED_BY, LOSS_REASONS, MISSED_REASONS, RECORD_TYPES, RESPONDENTS
    from server.staff.overview import URGENCY
    for prefix, codes in (("staff.role.", ROLES), ("staff.status.", DUE), ("staff.type.", RECORD_TYPES),
                          ("staff.item.", RECORD_TYPES), ("staff.respondent.", RESPONDENTS),
                          ("staff.administered_by.", ADMINISTERED_BY), ("staff.loss.", LOSS_REASONS),
                          ("staff.missed.", MISSED_REASONS), ("staff.urgency.", URGENCY)):
        assert [c for c in codes if prefix + c not in known] == [], prefix
