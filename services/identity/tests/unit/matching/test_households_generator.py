"""The second benchmark generator (households.py): a mailbox is one person's, as at real
providers; the only mailbox several people use is a family's box."""

from __future__ import annotations

from collections import defaultdict

from benchmarks.identity.households import HouseholdGenerator, generate, mailbox


def test_a_mailbox_is_one_persons_or_one_familys() -> None:
    gen = HouseholdGenerator(7)
    people = []
    family_of: dict[int, int] = {}
    for family in range(1500):
        members = gen.household()
        # A namesake of one of them (another person, another family), often: the case where
        # logins drawn from one name collide.
        namesakes = [gen.namesake(members[0])] if family % 3 == 0 else []
        for person in members:
            family_of[person.person_id] = family
        for stranger in namesakes:
            family_of[stranger.person_id] = -stranger.person_id
        people += members + namesakes
    holders: dict[str, set[int]] = defaultdict(set)
    for person in people:
        for record in gen.records_of(person):
            for identifier in record["identifiers"]:
                if identifier["type"] == "email":
                    login, _, provider = identifier["value"].partition("@")
                    holders[mailbox(login, provider)].add(person.person_id)
    shared = {box: ids for box, ids in holders.items() if len(ids) > 1}
    assert shared, "family boxes are generated"
    for box, ids in shared.items():
        assert len({family_of[i] for i in ids}) == 1, box
    # ... and it is the family's box, not two relatives' logins that happen to collide.
    family_boxes = {mailbox(*p.shared_email.split("@")) for p in people if p.shared_email}
    assert set(shared) <= family_boxes


def test_the_same_login_at_another_provider_is_still_there() -> None:
    logins: dict[tuple[int, str], set[str]] = defaultdict(set)
    for message in generate(1000, seed=5):
        for identifier in message["identifiers"]:
            if identifier["type"] == "email":
                login, _, provider = identifier["value"].partition("@")
                logins[(message["person_id"], login)].add(provider)
    assert sum(len(providers) > 1 for providers in logins.values()) > 20


def test_same_seed_same_data() -> None:
    assert generate(300, seed=9) == generate(300, seed=9)
