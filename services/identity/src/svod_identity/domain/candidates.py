"""Which blocking-key candidates are worth comparing at all (meta-blocking).

Blocks are capped at ``MAX_BLOCK_SIZE``. Inside the cap, a stored record that shares exactly
one name-based key with a new record, taken from a block of more than ``LONE_KEY_MAX_BLOCK``
records, agrees with it on one common combination (first name + surname, surname + birth
year, ...) and on nothing else that blocking saw. With a million customers such blocks hold
dozens of strangers each, and scoring them was most of ResolveBatch's time. A candidate is
compared when it shares two or more keys with the record, or a contact key (phone, e-mail,
card), or any key of a block of at most ``LONE_KEY_MAX_BLOCK`` records.

What it costs in recall was measured on the accuracy sets before choosing the size (true
pairs blocked together that this rule would drop, with the blocking keys of 2026-11-22):
FEBRL3 0 of 6,349, FEBRL4 1 of 4,947, generator seeds 101/202 0 of 9,037 / 8,903 — at a size
of 10 it would be 6, 2, 72 and 46. With the crossed-name and given-name + postcode keys added
later: FEBRL3 0 of 6,390, FEBRL4 0 of 4,961, the generator sets unchanged.
"""

from __future__ import annotations

LONE_KEY_MAX_BLOCK = 20
# Blocking-key kinds that are contacts (see matching/blocking.py): always worth comparing.
CONTACT_KEY_PREFIXES = ("p:", "e:", "c:")
