"""Every `svod` command against a running suite: what people see, `--json` for scripts, exit
codes (0 done, 1 refused, 2 bad command line, 3 unreachable) and one precise error line, never
a traceback, for a missing key, a wrong id or bad input."""

from __future__ import annotations

import contextlib
import io
import json
import re
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from google.protobuf import json_format

from svod.common.v1 import common_pb2
from svod_cli.__main__ import main
from svod_cli.suite import InProcessSuite, create_database, drop_database, prepare_database
from svod_runtime.access import Scope
from svod_runtime.auth import principal_entry
from svod_runtime.config import SERVICES
from tests.builders import identify, random_phone, track, unique
from tests.waiting import wait_until


@dataclass
class Ran:
    code: int
    out: str
    err: str

    def json(self) -> object:
        return json.loads(self.out)


Svod = Callable[..., Ran]


def run_cli(*args: str) -> Ran:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exit_:  # argparse's own refusals
            code = int(exit_.code or 0)
    ran = Ran(code, out.getvalue(), err.getvalue())
    assert "Traceback" not in ran.err, ran.err
    return ran


def point_at(monkeypatch: pytest.MonkeyPatch, suite: InProcessSuite) -> None:
    for service in SERVICES:
        monkeypatch.setenv(f"SVOD_{service.upper()}_TARGET", suite.target(service))


@pytest.fixture
def svod(suite, monkeypatch) -> Svod:
    point_at(monkeypatch, suite.suite)
    monkeypatch.delenv("SVOD_API_KEY", raising=False)
    return run_cli


def jsonl(path: Path, *messages: object) -> Path:
    path.write_text(
        "".join(
            json.dumps(json_format.MessageToDict(m), ensure_ascii=False) + "\n"  # type: ignore[arg-type]
            for m in messages
        ),
        encoding="utf-8",
    )
    return path


def customer_of(svod: Svod, *args: str) -> str:
    shown = svod("profile", "get", *args, "--json")
    assert shown.code == 0, shown.err
    return str(shown.json()["customer_id"])  # type: ignore[index]


def ingest_person(svod: Svod, tmp_path: Path, source: str, **fields: object) -> str:
    """Sends one identify call through `svod ingest --wait`; returns the customer id."""
    request = identify(source, **fields)  # type: ignore[arg-type]
    sent = svod("ingest", jsonl(tmp_path / f"{unique()}.jsonl", request), "--wait")
    assert sent.code == 0, sent.out + sent.err
    assert "accepted 1, duplicates 0, rejected 0" in sent.out
    assert "delivered 1, failed 0, still pending 0" in sent.out
    return customer_of(svod, "--phone", fields["phones"][0])  # type: ignore[index]


def test_ingest_reports_acceptance_then_delivery_and_refusals_by_line(svod, tmp_path) -> None:
    phone = random_phone()
    first = identify("cli-web", phones=(phone,), first_name="Ирина", last_name="Клёнова")
    second = identify("cli-pos", phones=(phone,), emails=(f"{unique()}@example.ru",))
    event = track(
        "cli-web",
        common_pb2.EVENT_TYPE_ORDER_PLACED,
        common_pb2.Identifier(type=common_pb2.IDENTIFIER_TYPE_PHONE, value=phone),
        total="1200",
        order_id=unique("o"),
    )
    bad = identify("cli-web", emails=("not an e-mail",))
    path = jsonl(tmp_path / "mixed.jsonl", first, second, bad, event)
    sent = svod("ingest", path, "--wait", "--timeout", "60", "--progress")
    assert sent.code == 1, sent.out + sent.err  # one line was refused
    assert "accepted 3, duplicates 0, rejected 1" in sent.out
    # Progress with a rate and an ETA (on a terminal; --progress forces it here).
    assert re.search(r"sent: 4/4 \([\d,]+/s, ETA 0:00:00\)", sent.err), sent.err
    assert re.search(r"delivered: 3/3 \([\d,]+/s, ETA 0:00:00\)", sent.err), sent.err
    assert "  line 3: " in sent.out  # the file line of the refused message
    assert "delivered 3, failed 0, still pending 0" in sent.out

    again = svod("ingest", path, "--json")
    assert again.json()["duplicates"] == 3 and again.json()["rejected"][0]["line"] == 3

    status = svod(
        "record", "status", "--source", "cli-web", "--message-id", first.record_ref.message_id
    )
    assert status.code == 0 and "delivered" in status.out
    missing = svod("record", "status", "--source", "cli-web", "--message-id", "no-such-message")
    assert missing.code == 1 and missing.err.startswith("NOT_FOUND: ")

    garbage = tmp_path / "garbage.jsonl"
    garbage.write_text('{"recordRef": {"source": "x"}}\nnot json\n')
    unreadable = svod("ingest", garbage)
    assert unreadable.code == 2
    assert f"{garbage}:2: not an IdentifyRequest or TrackRequest" in unreadable.err
    assert svod("ingest", tmp_path / "absent.jsonl").code == 2


def test_profile_commands(svod, tmp_path) -> None:
    phone, email, crm_id = random_phone(), f"{unique()}@example.ru", unique("crm")
    surname = "Ветрова" + secrets.token_hex(2)
    request = identify("cli-crm", phones=(phone,), emails=(email,), first_name="Ольга")
    request.record.name.last_name = surname
    request.record.identifiers.add(
        type=common_pb2.IDENTIFIER_TYPE_EXTERNAL_ID, namespace="crm", value=crm_id
    )
    sent = svod("ingest", jsonl(tmp_path / "p.jsonl", request), "--wait")
    assert sent.code == 0, sent.out + sent.err
    customer = customer_of(svod, "--phone", phone)

    shown = svod("profile", "get", "--external-id", f"crm:{crm_id}")
    assert shown.code == 0, shown.err
    assert f"customer    {customer}" in shown.out and surname in shown.out
    assert email in shown.out  # the identifiers table
    assert svod("profile", "get", "--email", email, "--json").json()["customer_id"] == customer

    found = svod("profile", "search", "--last-name", surname, "--json")
    assert [p["customer_id"] for p in found.json()] == [customer]

    event = track(
        "cli-crm",
        common_pb2.EVENT_TYPE_ORDER_PLACED,
        common_pb2.Identifier(type=common_pb2.IDENTIFIER_TYPE_EMAIL, value=email),
        total="990",
        order_id=unique("o"),
    )
    assert svod("ingest", jsonl(tmp_path / "e.jsonl", event), "--wait").code == 0
    timeline = svod("profile", "timeline", customer)
    assert timeline.code == 0 and "order_placed" in timeline.out and "990.00 RUB" in timeline.out

    consent = svod("profile", "consent", customer, "--channel", "email", "--opt-in")
    assert consent.code == 0 and "email" in consent.out and "opted_in" in consent.out

    exported = svod("profile", "export", customer, "--output", tmp_path / "export.json")
    assert exported.code == 0, exported.err
    held = json.loads((tmp_path / "export.json").read_text(encoding="utf-8"))
    assert held["profile"]["customer_id"] == customer and held["timeline"]

    unconfirmed = svod("profile", "erase", customer, "--reason", "asked to")
    assert unconfirmed.code == 2 and "--yes" in unconfirmed.err
    erased = svod("profile", "erase", customer, "--reason", "asked to", "--yes")
    assert erased.code == 0, erased.err
    assert "receipt" in erased.out
    assert svod("profile", "search", "--last-name", surname, "--json").json() == []

    # Wrong ids: one precise line and exit code 1, never a traceback.
    not_uuid = svod("profile", "get", "--id", "not-a-customer")
    assert not_uuid.code == 1 and not_uuid.err.startswith("INVALID_ARGUMENT: ")
    unknown = svod("profile", "get", "--id", str(uuid.uuid4()))
    assert unknown.code == 1 and unknown.err.startswith("NOT_FOUND: ")
    assert svod("profile", "timeline", str(uuid.uuid4())).code == 1
    assert svod("profile", "get", "--external-id", "no-namespace").code == 2
    assert svod("profile", "consent", str(uuid.uuid4()), "--channel", "sms", "--opt-out").code == 1


def test_identity_commands(svod, tmp_path) -> None:
    first = ingest_person(svod, tmp_path, "cli-a", phones=(random_phone(),), first_name="Пётр")
    second_phone = random_phone()
    second = ingest_person(svod, tmp_path, "cli-b", phones=(second_phone,), first_name="Пётр")
    looked = svod("identity", "lookup", "--phone", second_phone)
    assert looked.code == 0 and f"customer   {second}" in looked.out

    merged = svod("identity", "merge", first, second, "--reason", "same person, checked")
    assert merged.code == 0, merged.err
    assert f"into {first}" in merged.out and second in merged.out
    explained = svod("identity", "explain", "--customer", first)
    assert explained.code == 0 and "manual_merge" in explained.out
    pair = svod(
        "identity",
        "explain",
        "--json",
        *("--record", "cli-a", "m"),
        *("--record", "cli-b", "m"),
    )
    assert pair.code == 1 and pair.err.startswith("NOT_FOUND: ")

    mapping = tmp_path / "mapping.csv"
    exported = svod("identity", "export-mapping", "--output", mapping)
    assert exported.code == 0 and "records" in exported.err
    rows = mapping.read_text(encoding="utf-8").splitlines()
    assert rows[0] == "source,message_id,customer_id,resolve_time,rule"
    moved = next(r.split(",") for r in rows if r.startswith("cli-b,"))
    split = svod(
        "identity", "split", first, "--record", moved[0], moved[1], "--reason", "two people"
    )
    assert split.code == 0, split.err
    assert f"moved 1 record(s) from {first} to " in split.out

    rules = svod("identity", "rules", "get", "--json")
    assert rules.code == 0
    rules_file = tmp_path / "rules.json"
    rules_file.write_text(json.dumps(rules.json()), encoding="utf-8")
    assert "auto-link threshold" in svod("identity", "rules", "get").out
    preview = svod("identity", "rules", "preview", rules_file)
    assert preview.code == 0 and "records re-resolved" in preview.out
    stale = svod("identity", "rules", "update", rules_file, "--expected-version", "987654")
    assert stale.code == 1 and stale.err.startswith("FAILED_PRECONDITION: ")

    assert isinstance(svod("identity", "review", "list", "--all", "--json").json(), list)
    assert svod("identity", "review", "list").code == 0
    assert isinstance(svod("identity", "blocked", "--json").json(), list)
    unknown_item = svod(
        "identity", "review", "decide", str(uuid.uuid4()), "--accept", "--reason", "x"
    )
    assert unknown_item.code == 1 and unknown_item.err.startswith("NOT_FOUND: ")
    lone = svod("identity", "merge", first, "--reason", "nothing to merge with")
    assert lone.code == 1 and lone.err.startswith("INVALID_ARGUMENT: ")
    assert svod("identity", "merge", first, str(uuid.uuid4()), "--reason", "x").code == 1
    assert svod("identity", "explain").code == 2


def test_segment_commands(svod, tmp_path) -> None:
    source = f"cli-seg-{secrets.token_hex(3)}"
    customer = ingest_person(svod, tmp_path, source, phones=(random_phone(),))
    rule = tmp_path / "rule.json"
    rule.write_text(
        json.dumps({"field": {"field": "sources", "operator": "contains", "values": [source]}})
    )
    preview = svod("segment", "preview", "--rule", rule)
    assert preview.code == 0 and "1 members" in preview.out and customer in preview.out

    segment_id = f"cli-{secrets.token_hex(3)}"
    created = svod("segment", "create", segment_id, "--rule", rule, "--name", "CLI test")
    assert created.code == 0, created.err
    assert segment_id in created.out and "CLI test" in created.out
    assert segment_id in svod("segment", "list").out
    assert svod("segment", "get", segment_id, "--json").json()["member_count"] == "1"
    members = svod("segment", "members", segment_id)
    assert members.code == 0 and customer in members.out
    export = tmp_path / "members.csv"
    exported = svod("segment", "export", segment_id, "--csv", "--output", export)
    assert exported.code == 0 and "1 members" in exported.err
    assert export.read_text().splitlines()[1].startswith(customer)
    watched = svod(
        "segment", "watch", segment_id, "--from", "0.0", "--count", "1", "--timeout", "20"
    )
    assert watched.code == 0, watched.err
    assert f"{customer} entered {segment_id}" in watched.out
    assert "resume with --from" in watched.err
    assert segment_id in svod("segment", "customer", customer).out
    recomputed = svod("segment", "recompute", segment_id)
    assert recomputed.code == 0 and "recomputed in" in recomputed.out

    rfm_id = f"rfm-{secrets.token_hex(3)}"
    assert svod("segment", "rfm", "--segment-id", rfm_id).code == 1  # not created yet
    rfm = svod("segment", "rfm", "--segment-id", rfm_id, "--create")
    assert rfm.code == 0, rfm.err
    assert "class" in rfm.out and "total" in rfm.out

    assert svod("segment", "delete", segment_id).code == 0
    gone = svod("segment", "get", segment_id)
    assert gone.code == 1 and gone.err.startswith("NOT_FOUND: ")
    bad_rule = tmp_path / "bad.json"
    bad_rule.write_text(json.dumps({"field": {"field": "no_such_field", "operator": "eq"}}))
    refused = svod("segment", "create", f"cli-{secrets.token_hex(3)}", "--rule", bad_rule)
    assert refused.code == 1 and refused.err.startswith("INVALID_ARGUMENT: ")
    assert "segment.rule.field" in refused.err  # the field violation, on its own line
    unparsable = tmp_path / "unparsable.json"
    unparsable.write_text("{")
    assert svod("segment", "preview", "--rule", unparsable).code == 2


def test_quality_commands(svod, tmp_path) -> None:
    rule_id = f"cli-role-{secrets.token_hex(3)}"
    created = svod(
        "quality", "rules", "create", rule_id,
        "--field", "email", "--check", "email_not_role", "--action", "flag",
        "--source", "cli-quality",
    )  # fmt: skip
    assert created.code == 0, created.err
    assert rule_id in svod("quality", "rules", "list").out
    listed = svod("quality", "rules", "list", "--source", "cli-quality", "--json").json()
    assert rule_id in [r["rule_id"] for r in listed]

    phone = random_phone()
    customer = ingest_person(
        svod, tmp_path, "cli-quality", phones=(phone,), emails=(f"info@{unique()}.example.ru",)
    )
    stats = svod("quality", "violations", "--source", "cli-quality", "--json").json()
    assert any(v["rule"] == rule_id for v in stats["violations"])
    assert rule_id in svod("quality", "violations", "--days", "1").out
    score = wait_until(
        lambda: (ran := svod("quality", "score", customer)).code == 0 and ran,
        what="a quality score for the customer",
        interval_s=0.5,
    )
    assert f"{customer}: " in score.out and "/100" in score.out

    assert svod("quality", "rules", "delete", rule_id).code == 0
    again = svod("quality", "rules", "delete", rule_id)
    assert again.code == 1 and again.err.startswith("NOT_FOUND: ")
    malformed = svod(
        "quality", "rules", "create", "x", "--field", "nope", "--check", "required",
        "--action", "reject",
    )  # fmt: skip
    assert malformed.code == 1 and malformed.err.startswith("INVALID_ARGUMENT: ")
    assert svod("quality", "score", str(uuid.uuid4())).code == 1


def test_status_and_an_unreachable_service(svod, monkeypatch) -> None:
    status = svod("status", "--window", "0.2", "--json")
    assert status.code == 0
    assert [s["health"] for s in status.json()] == ["SERVING"] * 5
    monkeypatch.setenv("SVOD_PROFILE_TARGET", "127.0.0.1:1")
    away = svod("profile", "get", "--email", "a@example.ru")
    assert away.code == 3 and away.err.startswith("UNAVAILABLE: ")
    assert "svod status" in away.err
    assert svod("status", "--window", "0").code == 1


@pytest.fixture(scope="module")
def keyed_suite(postgres_admin_url, tmp_path_factory) -> Iterator[InProcessSuite]:
    """A suite with keys on: ``cli-key`` holds every scope; each service has its own key."""
    name = f"svod_test_cli_keys_{time.monotonic_ns()}"
    url = create_database(postgres_admin_url, name)
    key_file = tmp_path_factory.mktemp("cli-keys") / "keys.json"
    entries = [principal_entry("support", "cli-key", [scope.value for scope in Scope])]
    entries += [principal_entry(f"svod-{s}", f"peer-key-{s}", service=s) for s in SERVICES]
    key_file.write_text(json.dumps({"principals": entries}))
    env = {"SVOD_API_KEYS_FILE": str(key_file)}
    env.update({f"SVOD_{s.upper()}_PEER_API_KEY": f"peer-key-{s}" for s in SERVICES})
    suite = None
    try:
        prepare_database(url)
        suite = InProcessSuite(url, extra_env=env).start()
        yield suite
    finally:
        if suite is not None:
            suite.stop()
        drop_database(postgres_admin_url, name)


@pytest.mark.parametrize(
    "command",
    [
        ("profile", "get", "--id", "00000000-0000-7000-8000-000000000000"),
        ("profile", "search", "--city", "Москва"),
        ("identity", "rules", "get"),
        ("identity", "review", "list"),
        ("identity", "blocked"),
        ("segment", "list"),
        ("quality", "rules", "list"),
        ("quality", "violations"),
        ("record", "status", "--source", "s", "--message-id", "m"),
    ],
)
def test_without_a_key_every_group_says_so(keyed_suite, monkeypatch, command) -> None:
    point_at(monkeypatch, keyed_suite)
    monkeypatch.delenv("SVOD_API_KEY", raising=False)
    refused = run_cli(*command)
    assert refused.code == 1
    assert refused.err.startswith("UNAUTHENTICATED: missing API key")
    assert "set SVOD_API_KEY" in refused.err
    monkeypatch.setenv("SVOD_API_KEY", "cli-key")
    allowed = run_cli(*command)
    assert not allowed.err.startswith("UNAUTHENTICATED"), allowed.err


def test_ingest_without_a_key_is_one_line_not_a_traceback(keyed_suite, monkeypatch, tmp_path):
    point_at(monkeypatch, keyed_suite)
    monkeypatch.delenv("SVOD_API_KEY", raising=False)
    path = jsonl(tmp_path / "one.jsonl", identify("cli-keys", phones=(random_phone(),)))
    refused = run_cli("ingest", path)
    assert refused.code == 1 and refused.err.startswith("UNAUTHENTICATED: ")
    monkeypatch.setenv("SVOD_API_KEY", "cli-key")
    sent = run_cli("ingest", path, "--wait")
    assert sent.code == 0, sent.out + sent.err
    assert "delivered 1" in sent.out
