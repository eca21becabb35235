"""``svod quality report`` against the running quality service."""

from __future__ import annotations

import argparse
import xml.etree.ElementTree as ET

from svod_cli.common import EXIT_UNREACHABLE
from svod_cli.quality import add_quality_commands


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="svod")
    add_quality_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_report_as_html_file_and_markdown_on_stdout(suite, monkeypatch, tmp_path, capsys) -> None:
    monkeypatch.setenv("SVOD_QUALITY_TARGET", suite.suite.target("quality"))
    out = tmp_path / "quality.html"
    assert run_cli(["quality", "report", "--format", "html", "--output", str(out)]) == 0
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "Svod data quality report" in page
    svg = page[page.index("<svg") : page.index("</svg>") + len("</svg>")]
    ET.fromstring(svg)  # a well-formed chart
    assert "Completeness by field" in page

    assert run_cli(["quality", "report"]) == 0
    markdown = capsys.readouterr().out
    assert markdown.startswith("# Svod data quality report")
    assert "| Valid phone |" in markdown and "| phone |" in markdown


def test_unreachable_service_is_reported_not_raised(monkeypatch, capsys) -> None:
    monkeypatch.setenv("SVOD_QUALITY_TARGET", "127.0.0.1:1")
    assert run_cli(["quality", "report"]) == EXIT_UNREACHABLE
    assert "UNAVAILABLE" in capsys.readouterr().err
