"""Blocking keys: short strings two records of one person are likely to share.

The service stores each record's keys in an indexed table and compares a new record only with
records sharing a key. Keys are few (at most ``MAX_KEYS``) and selective; each starts with a
kind prefix so the service can cap or drop a kind whose blocks grow too large (a shared office
phone, "Александр Иванов" in Moscow):

* ``p:``  a phone (placeholders excluded)
* ``e:``  an e-mail's mailbox name when distinctive (catches a changed provider), else the
  full address
* ``c:``  a loyalty card
* ``fb:`` canonical first name + birth date (survives surname change, moves, new contacts)
* ``sb:`` surname phonetic key + birth year (survives first-name typos and nicknames the
  tables do not know); an unknown given name's key too, as a second key, for swapped fields
* ``fs:`` canonical first name + surname phonetic key (records without birth date)
* ``fi:`` the initial of a given name the tables do not know + surname phonetic key: such a
  name has no canonical form, so a slip in it changes its ``fs:`` key
* ``fs:`` read crosswise, for a given name the tables do not know: the surname field read as
  the given name and the given-name field as the surname (the fields swapped at one source,
  with no birth date for ``sb:`` to catch it)
* ``fp:`` canonical first name + postcode: survives a slip in the surname or a new one, with
  the birth date missing or wrong (a typo in a surname changes its phonetic key)
* ``db:`` birth date + postcode, and birth date + city as a second key: survives any name
  being garbled or replaced
* ``ad:`` house number + the street's first letters + postcode, and + city as a second key: one
  home, whatever happened to the names and the birth date. Only for addresses with a postcode
  (house-level ones): without, the key would gather whole households (one flat) into candidate
  pairs and teach EM that a shared address means little

Ambiguous first names (Саша with no gender) give one key per reading. The crossed ``fs:`` and
the ``fp:`` key come last: they only take places in ``MAX_KEYS`` that the others left free.
"""

from __future__ import annotations

from svod_identity.domain.matching.compare import view
from svod_identity.domain.matching.places import street_key
from svod_identity.domain.matching.record import CACHED_RECORDS, BoundedCache, PersonRecord
from svod_identity.domain.matching.surnames import surname_key

MAX_KEYS = 10
MAX_PHONES = 2
MAX_EMAILS = 2
MAX_FIRST_NAME_READINGS = 2
# Blocks larger than this say nothing about identity (shared numbers, very common names); the
# evaluation helper skips them and the service should too.
MAX_BLOCK_SIZE = 50


# By record content: a batch needs an incoming record's keys to fetch candidates, to choose
# which to lock and to place it.
_KEYS: BoundedCache[frozenset[str]] = BoundedCache(CACHED_RECORDS)


def blocking_keys(record: PersonRecord) -> frozenset[str]:
    """The record's blocking keys, at most ``MAX_KEYS``.

    Each kind's first key comes before anyone's second (a second phone, the other reading of
    "Саша"), so a record with many contacts still gets its name-based keys.
    """
    return _KEYS.kept(record, "_keys", _derive_keys)


def possible_keys(record: PersonRecord) -> frozenset[str]:
    """Every key the record may be stored and looked up under, whichever of its identifiers
    turn out to be blocked: each of its contacts' keys, and its name and place keys as a record
    without contacts gets them (contacts only take places among ``MAX_KEYS`` away from those).
    Two records with no possible key in common never meet as candidates."""
    contacts, names, tail = _key_kinds(record)
    # The record's own keys from the same kinds, kept for ``blocking_keys``, which the batch
    # asks for next.
    own = _KEYS.derived(record, lambda _: _own_keys(contacts, names, tail))
    return frozenset(key for kind in contacts for key in kind) | _select(names, tail) | own


def _derive_keys(record: PersonRecord) -> frozenset[str]:
    return _own_keys(*_key_kinds(record))


def _own_keys(
    contacts: tuple[list[str], list[str], list[str]],
    names: tuple[list[str], ...],
    tail: list[str],
) -> frozenset[str]:
    """The record's keys: its first contacts of each kind (up to their limits), then the
    name and place keys."""
    phones, emails, cards = contacts
    return _select((phones[:MAX_PHONES], emails[:MAX_EMAILS], cards[:1], *names), tail)


def _select(kinds: tuple[list[str], ...], tail: list[str]) -> frozenset[str]:
    """Each kind's first key, then the others, then ``tail``: the first ``MAX_KEYS``."""
    ordered = [kind[0] for kind in kinds if kind] + [key for kind in kinds for key in kind[1:]]
    # Last, for the places no other key wanted: the crossed reading and the given name by
    # postcode. They find what every key above missed, and as a first key of their kind they
    # would push out the second ones (the city-based keys) that records of many readings need.
    ordered += tail
    return frozenset(list(dict.fromkeys(ordered))[:MAX_KEYS])


def _key_kinds(
    record: PersonRecord,
) -> tuple[tuple[list[str], list[str], list[str]], tuple[list[str], ...], list[str]]:
    """The keys the record could get, by kind: all its contacts' (phones, e-mails, cards),
    its names and places, and the keys that only take places left free."""
    v = view(record)
    phones = [f"p:{phone}" for phone in sorted(v.mobiles | v.landlines)]
    emails = [
        f"e:{email.mailbox_name}" if email.distinctive_local else f"e:{email.address}"
        for email in v.emails
    ]
    cards = [f"c:{card}" for card in sorted(v.cards)]
    # Initials ("И.") are too unselective to block on.
    first_keys = [k for k in sorted(v.first.keys) if len(k) > 1] if v.first else []
    first_keys = first_keys[:MAX_FIRST_NAME_READINGS]
    surname = surname_key(record.last_name) if record.last_name else ""
    given = surname_key(record.first_name) if record.first_name else ""
    by_birth: list[str] = []
    by_surname_year: list[str] = []
    if v.birth_date is not None:
        by_birth = [f"fb:{k}:{v.birth_date:%Y%m%d}" for k in first_keys]
        # A given-name field the name tables do not know read as a surname too: the two
        # fields swapped at one source (known names are put back by ``build_person_record``).
        swapped = given if v.first is not None and not v.first.known else ""
        by_surname_year = [
            f"sb:{key}:{v.birth_date.year}" for key in dict.fromkeys((surname, swapped)) if key
        ]
    by_name = [f"fs:{k}:{surname}" for k in first_keys] if surname else []
    # A given-name field the tables do not know may hold the surname, the two fields swapped at
    # one source: its ``fs:`` key read crosswise meets the other record's straight one.
    crossed: list[str] = []
    if v.first is not None and not v.first.known and v.last_as_first is not None and given:
        readings = [k for k in sorted(v.last_as_first.keys) if len(k) > 1]
        crossed = [f"fs:{k}:{given}" for k in readings[:1]]
    # By postcode and by city: either may carry a slip.
    by_birth_place = (
        [f"db:{v.birth_date:%Y%m%d}:{p}" for p in dict.fromkeys((v.postcode, v.city)) if p]
        if v.birth_date
        else []
    )
    street = street_key(v.address) if v.address else ""
    by_home = (
        [f"ad:{street}:{p}" for p in dict.fromkeys((v.postcode, v.city)) if p]
        if street and v.postcode
        else []
    )
    # A given name the tables do not know has no canonical form to survive a slip in ``fs:``;
    # its initial does.
    initial = v.first.skeleton[:1] if v.first is not None and not v.first.known else ""
    by_initial = [f"fi:{initial}:{surname}"] if initial and surname else []
    # Given name and postcode: survives a slip in the surname, a surname change and a missing
    # or garbled birth date; a common name's block in a wide postcode is simply too big to use.
    by_name_place = [f"fp:{first_keys[0]}:{v.postcode}"] if first_keys and v.postcode else []
    names = (by_birth, by_surname_year, by_name, by_birth_place, by_home, by_initial)
    return (phones, emails, cards), names, crossed + by_name_place
