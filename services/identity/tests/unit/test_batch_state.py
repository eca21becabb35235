"""The batch engine's candidates (domain/batch.py): online's meta-blocking, and the records
of one ResolveBatch transaction meeting in memory."""

from __future__ import annotations

from svod_identity.domain.batch import ONLINE_CHUNK, ImportState, chunk_of, worth_comparing
from svod_identity.domain.engine import GraphState


def state_with(blocks: dict[str, list[int]], unlisted: dict[str, int] | None = None) -> GraphState:
    return GraphState(blocks=blocks, unlisted=unlisted or {})


def test_a_candidate_is_worth_comparing_for_two_keys_a_contact_or_a_small_block() -> None:
    big = list(range(100, 130))  # 30 members: more than LONE_KEY_MAX_BLOCK
    state = state_with(
        {
            "fs:ivan:ivanov": [*big, 1],
            "sb:ivanov:1980": [1, 2, *range(200, 230)],
            "p:+79160000000": [3],
            "fb:ivan:19800101": [4],
            "db:19800101:moscow": [5, *range(300, 360)],  # 61 members: too big to compare
        }
    )
    worth = worth_comparing(state.blocks, state)
    assert {1, 3, 4} <= worth  # two keys; a contact key; a block of 1
    assert 2 not in worth and 100 not in worth  # one name key of a big block, nothing else
    assert 5 not in worth  # only in a block too big to say anything


def test_records_of_one_online_transaction_meet_whatever_meta_blocking_says() -> None:
    assert chunk_of(-1) == chunk_of(-ONLINE_CHUNK) == 0
    assert chunk_of(-ONLINE_CHUNK - 1) == 1
    state = ImportState(blocks={"fs:ivan:ivanov": [*range(100, 130), -2, -(ONLINE_CHUNK + 2)]})
    state.worth = set()
    state.chunk = 0
    assert state.comparable("fs:ivan:ivanov") == [-2]
    state.chunk = 1
    assert state.comparable("fs:ivan:ivanov") == [-(ONLINE_CHUNK + 2)]
    state.worth = None  # nothing considered: every member of a comparable block
    assert len(state.comparable("fs:ivan:ivanov")) == 32
