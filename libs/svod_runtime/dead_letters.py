"""The dead-letter RPCs every service with an outbox serves (ListDeadLetters, GetDeadLetter,
RedriveDeadLetters; messages in svod.common.v1), on :class:`svod_runtime.outbox.DeadLetterStore`.

A servicer mixes in :class:`DeadLetterRpcs` and its app sets ``servicer.dead_letters``.
Bounds (documented on the proto fields): page_size 0 (default 100) to 500, larger served as
500; 1 to 1,000 ids per redrive, each positive; a topic must be one of the service's topics.
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from svod.common.v1 import common_pb2
from svod_runtime.errors import FieldViolation, InvalidArgument, NotFound, ViolationCollector
from svod_runtime.outbox import (
    DEFAULT_DEAD_LETTER_PAGE,
    MAX_DEAD_LETTER_PAGE,
    MAX_REDRIVE_IDS,
    DeadLetter,
    DeadLetterStore,
)
from svod_runtime.paging import NOT_A_TOKEN, encode_page_token, number_token
from svod_runtime.protoconv import datetime_to_timestamp

MAX_TOPIC_CHARS = 100


def dead_letter_to_proto(dead: DeadLetter) -> common_pb2.DeadLetter:
    return common_pb2.DeadLetter(
        dead_letter_id=dead.dead_letter_id,
        topic=dead.topic,
        key=dead.key,
        attempts=dead.attempts,
        last_error=dead.last_error,
        fail_time=datetime_to_timestamp(dead.failed_at),
        create_time=datetime_to_timestamp(dead.created_at),
        redrive_count=dead.redrive_count,
    )


class DeadLetterApi:
    """Checks requests against the bounds and answers them from the store."""

    def __init__(self, store: DeadLetterStore, topics: Sequence[str]) -> None:
        self.store = store
        self.topics = sorted(topics)

    def _topic(self, topic: str, errors: ViolationCollector) -> str | None:
        if not topic:
            return None
        if len(topic) > MAX_TOPIC_CHARS or topic not in self.topics:
            errors.add("topic", f"must be one of this service's topics: {', '.join(self.topics)}")
        return topic

    async def list(
        self, request: common_pb2.ListDeadLettersRequest
    ) -> common_pb2.ListDeadLettersResponse:
        errors = ViolationCollector()
        topic = self._topic(request.topic, errors)
        if request.page_size < 0:
            errors.add("page_size", f"must be 0 (default {DEFAULT_DEAD_LETTER_PAGE}) or more")
        after = 0
        if request.page_token:
            try:
                after = number_token(request.page_token)
            except InvalidArgument:
                errors.add("page_token", NOT_A_TOKEN)
        errors.raise_if_any()
        size = min(request.page_size or DEFAULT_DEAD_LETTER_PAGE, MAX_DEAD_LETTER_PAGE)
        page, total = await self.store.list(topic, after, size + 1)
        more = len(page) > size
        page = page[:size]
        token = encode_page_token([str(page[-1].dead_letter_id)]) if more and page else ""
        return common_pb2.ListDeadLettersResponse(
            dead_letters=[dead_letter_to_proto(d) for d in page],
            next_page_token=token,
            total_count=total,
        )

    async def get(self, request: common_pb2.GetDeadLetterRequest) -> common_pb2.DeadLetter:
        if request.dead_letter_id <= 0:
            raise InvalidArgument([FieldViolation("dead_letter_id", "must be positive")])
        dead = await self.store.get(request.dead_letter_id)
        if dead is None:
            raise NotFound(f"no dead letter {request.dead_letter_id}")
        return dead_letter_to_proto(dead)

    async def redrive(
        self, request: common_pb2.RedriveDeadLettersRequest
    ) -> common_pb2.RedriveDeadLettersResponse:
        errors = ViolationCollector()
        topic = self._topic(request.topic, errors)
        ids = list(request.dead_letter_ids)
        if not ids and topic is None:
            errors.add("dead_letter_ids", "name dead letters, or give a topic to redrive all of")
        if len(ids) > MAX_REDRIVE_IDS:
            errors.add("dead_letter_ids", f"at most {MAX_REDRIVE_IDS:,} ids per call")
        for index, dead_letter_id in enumerate(ids):
            if dead_letter_id <= 0:
                errors.add(f"dead_letter_ids[{index}]", "must be positive")
        errors.raise_if_any()
        redriven, missing = await self.store.redrive(ids or None, topic)
        if missing:
            shown = ", ".join(str(i) for i in missing[:20])
            raise NotFound(f"not dead letters{' of ' + topic if topic else ''}: {shown}")
        return common_pb2.RedriveDeadLettersResponse(
            redriven_count=len(redriven),
            dead_letter_ids=[d.dead_letter_id for d in redriven],
        )


class DeadLetterRpcs:
    """The three RPCs, for a servicer to inherit (before its generated base class)."""

    dead_letters: DeadLetterApi | None = None

    def _dead_letter_api(self) -> DeadLetterApi:
        if self.dead_letters is None:  # wired by every app; a bare servicer has no outbox
            raise NotFound("this server keeps no dead letters")
        return self.dead_letters

    async def ListDeadLetters(
        self, request: common_pb2.ListDeadLettersRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.ListDeadLettersResponse:
        return await self._dead_letter_api().list(request)

    async def GetDeadLetter(
        self, request: common_pb2.GetDeadLetterRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.DeadLetter:
        return await self._dead_letter_api().get(request)

    async def RedriveDeadLetters(
        self, request: common_pb2.RedriveDeadLettersRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.RedriveDeadLettersResponse:
        return await self._dead_letter_api().redrive(request)
