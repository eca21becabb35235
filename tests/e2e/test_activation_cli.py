"""``svod destination ...`` and ``svod campaign ...`` against the running services."""

from __future__ import annotations

import argparse
import json

from svod_cli.campaign import add_campaign_commands
from svod_cli.common import EXIT_OK, EXIT_REFUSED, EXIT_UNREACHABLE
from svod_cli.destination import add_destination_commands
from tests.builders import unique


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="svod")
    sub = parser.add_subparsers(dest="command", required=True)
    add_destination_commands(sub)
    add_campaign_commands(sub)
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_a_destination_from_the_command_line(suite, monkeypatch, capsys) -> None:
    monkeypatch.setenv("SVOD_SEGMENTATION_TARGET", suite.suite.target("segmentation"))
    hook = unique("cli-hook")
    assert (
        run_cli(
            ["destination", "create", hook, "--webhook", "http://127.0.0.1:1/x", "--consent", "sms"]
        )
        == EXIT_OK
    )
    created = json.loads(capsys.readouterr().out)
    assert created["webhook"]["secret_set"] and len(created["webhook"]["secret"]) >= 16
    assert run_cli(["destination", "get", hook]) == EXIT_OK
    assert "secret" not in json.loads(capsys.readouterr().out)["webhook"]
    assert run_cli(["destination", "list"]) == EXIT_OK
    assert hook in capsys.readouterr().out

    csv_id = unique("cli-csv")
    assert run_cli(["destination", "create", csv_id, "--file", "csv", "--consent", "email"]) == 0
    capsys.readouterr()
    segment = suite.segmentation
    from svod.segmentation.v1 import segmentation_pb2 as pb

    seg_id = unique("cli-seg")
    segment.CreateSegment(
        pb.CreateSegmentRequest(
            segment=pb.Segment(
                segment_id=seg_id,
                rule=pb.RuleNode(
                    field=pb.FieldCondition(field="sources", operator="contains", values=["none"])
                ),
            )
        ),
        timeout=10,
    )
    assert run_cli(["destination", "bind", csv_id, "--segment", seg_id]) == EXIT_OK
    binding = json.loads(capsys.readouterr().out)["binding_id"]
    assert run_cli(["destination", "sync", binding, "--wait"]) == EXIT_OK
    sync = json.loads(capsys.readouterr().out)
    assert sync["state"] == "STATE_DONE" and sync["file_paths"]
    assert run_cli(["destination", "bindings", "--destination", csv_id]) == EXIT_OK
    assert binding in capsys.readouterr().out
    assert run_cli(["destination", "deliveries", hook, "--dead"]) == EXIT_OK
    assert "dead letters: 0" in capsys.readouterr().out
    # Refusals are one line and exit 1: a live binding to a file, a destination still bound.
    assert run_cli(["destination", "bind", csv_id, "--segment", seg_id, "--live"]) == EXIT_REFUSED
    assert "INVALID_ARGUMENT" in capsys.readouterr().err
    assert run_cli(["destination", "delete", csv_id]) == EXIT_REFUSED
    assert "FAILED_PRECONDITION" in capsys.readouterr().err
    assert run_cli(["destination", "unbind", binding]) == EXIT_OK
    assert run_cli(["destination", "delete", csv_id]) == EXIT_OK


def test_campaign_report_from_the_command_line(suite, monkeypatch, capsys) -> None:
    monkeypatch.setenv("SVOD_SEGMENTATION_TARGET", suite.suite.target("segmentation"))
    assert run_cli(["campaign", "report", "--days", "7", "--window", "3"]) == EXIT_OK
    out = capsys.readouterr().out
    assert out.startswith("orders ") and "linear rev" in out
    assert run_cli(["campaign", "report", "--json", "--touch", "clicked"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out)["window_days"] == 7
    assert run_cli(["campaign", "report", "--window", "0"]) == EXIT_OK  # 0: the default, 7
    assert run_cli(["campaign", "report", "--window", "500"]) == EXIT_REFUSED
    assert "window_days" in capsys.readouterr().err
    assert run_cli(["campaign", "responsiveness", "not-an-id"]) == EXIT_REFUSED


def test_unreachable_segmentation_is_reported(monkeypatch, capsys) -> None:
    monkeypatch.setenv("SVOD_SEGMENTATION_TARGET", "127.0.0.1:1")
    assert run_cli(["campaign", "report"]) == EXIT_UNREACHABLE
    assert run_cli(["destination", "list"]) == EXIT_UNREACHABLE
    assert "UNAVAILABLE" in capsys.readouterr().err
