"""Profile scores with reasons, report aggregation, and rendering."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET

import pytest

from svod_quality.domain.render import render_html, render_markdown, svg_trend_chart
from svod_quality.domain.report import COMPLETENESS_FIELDS, QualityPoint, build_report
from svod_quality.domain.scoring import ProfileFacts, ScoreWeights, score_profile

AS_OF = dt.date(2025, 6, 1)
NOW = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC)
COMPLETE = ProfileFacts(
    customer_id="c1",
    sources=("pos",),
    has_valid_phone=True,
    has_valid_email=True,
    fields_present=frozenset(COMPLETENESS_FIELDS),
    birth_date_plausible=True,
    address_complete=True,
    contact_confirmed_at=dt.date(2025, 3, 1),
)
SPARSE = ProfileFacts(
    customer_id="c2",
    sources=("webshop", "pos"),
    has_valid_email=True,
    fields_present=frozenset({"email", "first_name"}),
    contact_confirmed_at=dt.date(2023, 1, 1),
    open_flags=2,
    suspected_duplicate=True,
)


def test_complete_profile_scores_100_without_reasons() -> None:
    assert score_profile(COMPLETE, AS_OF) == (100, [])


def test_reasons_explain_every_lost_point() -> None:
    score, reasons = score_profile(SPARSE, AS_OF)
    assert reasons == [
        "no valid phone (-25)",
        "name incomplete (-8)",
        "birth date missing or implausible (-10)",
        "address incomplete (-10)",
        "contact data not confirmed in 365 days (-10)",
        "2 open quality flag(s) (-5)",
        "suspected duplicate (-5)",
    ]
    assert score == 100 - 73


def test_freshness_period_is_configurable() -> None:
    weights = ScoreWeights(freshness_days=30)
    _, reasons = score_profile(COMPLETE, AS_OF, weights)
    assert reasons == ["contact data not confirmed in 30 days (-10)"]


def test_weights_must_add_up_to_100() -> None:
    with pytest.raises(ValueError, match="add up to 100"):
        ScoreWeights(valid_phone=50)


def test_report_aggregates_shares_per_field_and_source() -> None:
    trend = [QualityPoint(NOW - dt.timedelta(days=7), 0.4, 0.9, 0.1, 0.5, 0.6, 10)]
    report = build_report([COMPLETE, SPARSE], NOW, trend)
    now = report.now
    assert (now.profiles, now.valid_phone_share, now.valid_email_share) == (2, 0.5, 1.0)
    assert (now.duplicate_rate, now.stale_share) == (0.5, 0.5)
    assert now.completeness == pytest.approx((1 + 2 / 6) / 2)
    assert report.completeness_by_field["phone"] == 0.5
    assert report.completeness_by_field["email"] == 1.0
    assert report.completeness_by_source == pytest.approx(
        {"pos": (1 + 2 / 6) / 2, "webshop": 2 / 6}
    )
    assert report.worst_sources == ["webshop", "pos"]
    assert [p.time for p in report.trend] == [trend[0].time, NOW]


def test_empty_base_reports_zeros() -> None:
    report = build_report([], NOW)
    assert report.now.valid_phone_share == 0.0 and report.worst_sources == []


def test_markdown_and_html_contain_the_numbers_and_a_chart() -> None:
    trend = [
        QualityPoint(NOW - dt.timedelta(days=d), 0.4 + d / 100, 0.9, 0.1, 0.5, 0.6, 10)
        for d in (21, 14, 7)
    ]
    report = build_report([COMPLETE, SPARSE], NOW, trend)
    markdown = render_markdown(report)
    assert "| Valid phone | 50.0% |" in markdown
    assert "| 2025-05-11 | 61.0% |" in markdown  # a trend row
    assert "webshop" in markdown
    page = render_html(report)
    assert page.startswith("<!DOCTYPE html>")
    assert "<svg" in page and "50.0%" in page and "66.7%" in page
    assert "<script" not in page and "http" not in page.replace("http://www.w3.org/2000/svg", "")


def test_svg_is_well_formed_with_one_line_per_measure() -> None:
    points = [
        QualityPoint(NOW - dt.timedelta(days=d), 0.5, 0.6, 0.05, 0.7, 0.2, 10) for d in (2, 1, 0)
    ]
    svg = ET.fromstring(svg_trend_chart(points))
    ns = "{http://www.w3.org/2000/svg}"
    assert len(svg.findall(f"{ns}polyline")) == 5
    assert len(svg.findall(f"{ns}circle")) == 15
