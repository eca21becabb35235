"""The fault suite's table, printed at the end of the session whatever pytest's -s says, and
written to a file (tests.faults.harness.RESULTS_FILE: .data/faults.txt unless
SVOD_FAULTS_RESULTS names another, e.g. benchmarks/results/faults.txt)."""

from __future__ import annotations

from typing import Any

from tests.faults.harness import HEADER, OUTCOMES, line, write_results


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not OUTCOMES:
        return
    terminalreporter.section("fault scenarios (tests/faults)")
    terminalreporter.write_line(HEADER)
    for outcome in OUTCOMES:
        terminalreporter.write_line(line(outcome))
    terminalreporter.write_line(f"(written to {write_results()})")
