"""Accuracy per kind of evidence: which evidence a pair of records shares, for every true pair
(found or missed) and every wrongly merged pair.

Each record pair is put in the first category whose evidence it has (strongest first), from
the matcher's own comparison levels (``compare_records``), so the categories read the same way
on every data set:

* ``card``, ``phone``, ``email``: a shared loyalty card, mobile or mailbox (one-letter typo
  allowed in the mailbox)
* ``email_login``: the same mailbox name at another provider (ivan.petrov85@mail.ru /
  ivan.petrov85@gmail.com) and nothing above
* ``landline``: only a shared fixed-line phone
* ``name+birth``: same given name (nickname, transliteration or slip allowed) and surname
  (or its other-gender form) and birth date (slip allowed)
* ``name+place``: same given name and surname, same street address, postcode or city
* ``name``: same given name and surname, nothing else
* ``first+birth``, ``first+place``: same given name and birth date, or place; surname differs
  or is missing
* ``other``: anything less

Recall per category says which evidence the matcher fails to use; false merges per category
which evidence it trusts too much. Records in clusters that mix people are also counted by the
rule that placed them (``exact:email``, ``fuzzy``, ...).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from itertools import combinations

from svod_identity.domain.engine import person_from
from svod_identity.domain.matching.compare import compare_records
from svod_identity.domain.matching.record import PersonRecord
from svod_identity.domain.records import build_record
from svod_identity.entrypoints.grpc_servicer import raw_record

Key = tuple[str, str]

CATEGORIES = (
    "card",
    "phone",
    "email",
    "email_login",
    "landline",
    "name+birth",
    "name+place",
    "name",
    "first+birth",
    "first+place",
    "other",
)
_FIRST = frozenset({"exact", "equivalent", "fuzzy"})
_LAST = frozenset({"exact", "fuzzy", "gender_form"})
_BIRTH = frozenset({"exact", "typo"})
_PLACE = frozenset({"address", "postcode", "city"})


def pair_category(levels: Mapping[str, str]) -> str:  # noqa: PLR0911
    """The strongest evidence two records share (see the module docstring)."""
    if levels["card"] == "agree":
        return "card"
    if levels["phone"] == "agree":
        return "phone"
    if levels["email"] in ("exact", "fuzzy"):
        return "email"
    if levels["email"] == "local_part":
        return "email_login"
    if levels["phone"] == "agree_landline":
        return "landline"
    first = levels["first_name"] in _FIRST
    full = first and levels["last_name"] in _LAST
    birth = levels["birth_date"] in _BIRTH
    place = levels["location"] in _PLACE
    if full and birth:
        return "name+birth"
    if full and place:
        return "name+place"
    if full:
        return "name"
    if first and birth:
        return "first+birth"
    if first and place:
        return "first+place"
    return "other"


def persons(requests: Sequence) -> dict[Key, PersonRecord]:
    """The matcher's view of every request, by (source, message id)."""
    now = dt.datetime.now(dt.UTC)
    out: dict[Key, PersonRecord] = {}
    for request in requests:
        record = build_record(raw_record(request), now)
        key = (record.ref.source, record.ref.message_id)
        out[key] = person_from(
            f"{key[0]}:{key[1]}", record.attributes, record.identifiers, record.ref.source
        )
    return out


def breakdown(  # noqa: C901
    requests: Sequence,
    truth: Mapping[Key, str],
    clusters: Mapping[str, Sequence[Key]],
    rules: Mapping[Key, str] | None = None,
) -> dict:
    """Per category: true pairs, found, missed, recall, and wrongly merged pairs."""
    records = persons(requests)
    cluster_of = {key: cid for cid, members in clusters.items() for key in members}
    by_person: dict[str, list[Key]] = defaultdict(list)
    for key, person in truth.items():
        by_person[person].append(key)
    found: Counter[str] = Counter()
    missed: Counter[str] = Counter()
    for keys in by_person.values():
        for a, b in combinations(keys, 2):
            category = pair_category(compare_records(records[a], records[b]))
            if cluster_of.get(a) == cluster_of.get(b):
                found[category] += 1
            else:
                missed[category] += 1
    wrong: Counter[str] = Counter()
    mixed_rules: Counter[str] = Counter()
    for members in clusters.values():
        if len({truth[k] for k in members}) < 2:
            continue
        for a, b in combinations(members, 2):
            if truth[a] != truth[b]:
                wrong[pair_category(compare_records(records[a], records[b]))] += 1
        if rules is not None:
            mixed_rules.update(rules.get(k, "") for k in members)
    table = {}
    for category in CATEGORIES:
        total = found[category] + missed[category]
        if not total and not wrong[category]:
            continue
        table[category] = {
            "true_pairs": total,
            "found": found[category],
            "missed": missed[category],
            "recall": round(found[category] / total, 4) if total else None,
            "false_pairs": wrong[category],
        }
    result: dict = {"by_evidence": table}
    if rules is not None:
        result["rules_in_mixed_clusters"] = dict(mixed_rules.most_common())
    return result


def print_breakdown(name: str, result: Mapping) -> None:
    print(f"  {name}: category      true  found missed recall  false", flush=True)
    for category, row in result["by_evidence"].items():
        recall = "  -   " if row["recall"] is None else f"{row['recall']:.4f}"
        print(
            f"    {category:<18} {row['true_pairs']:>6} {row['found']:>6} {row['missed']:>6} "
            f"{recall} {row['false_pairs']:>6}",
            flush=True,
        )
    if result.get("rules_in_mixed_clusters"):
        print(f"    records in mixed clusters by rule: {result['rules_in_mixed_clusters']}")
