"""Where merged-away ids point after a split (domain/split.py)."""

from __future__ import annotations

from svod_identity.domain.split import alias_sides

SOURCE, TARGET = "s", "t"


def test_an_id_follows_the_records_it_stood_for() -> None:
    parents = {"masha": SOURCE, "old": SOURCE}
    holdings = {"masha": {TARGET: 2}, "old": {SOURCE: 3, TARGET: 1}}
    assert alias_sides(parents, holdings, SOURCE, TARGET) == {"masha": TARGET, "old": SOURCE}


def test_an_even_or_empty_id_goes_where_its_parent_goes() -> None:
    # "app" was merged into "masha" before "masha" was merged into the source.
    parents = {"masha": SOURCE, "app": "masha", "erased": "masha", "even": SOURCE}
    holdings = {"masha": {TARGET: 1}, "app": {TARGET: 1, SOURCE: 1}, "even": {SOURCE: 2, TARGET: 2}}
    assert alias_sides(parents, holdings, SOURCE, TARGET) == {
        "masha": TARGET,
        "app": TARGET,
        "erased": TARGET,
        "even": SOURCE,
    }


def test_records_elsewhere_do_not_count() -> None:
    parents = {"a": SOURCE}
    holdings = {"a": {"someone-else": 5, TARGET: 1}}
    assert alias_sides(parents, holdings, SOURCE, TARGET) == {"a": TARGET}
