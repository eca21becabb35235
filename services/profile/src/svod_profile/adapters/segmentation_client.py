"""Announces profile changes to the segmentation service (the outbox handler of profile).

A relay pass's changes go in one ApplyProfileChanges call; each carries the trace context of
its own delivery, so every change stays in the trace of the write that caused it. A change
that only applied events carries the profile's metrics alone (ProfileChanged.metrics_only);
the others the profile as it is at delivery, as far as segmentation's read model keeps it
(``announced_profile_proto``: no identifier values, provenance or name variants). A change's
new events go in columns (``new_event_columns``), made by Postgres from the changes' payloads
(``EventRepository.announced_event_columns``); a split's moved events as TimelineEntry
messages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import grpc
from google.rpc import code_pb2

from svod.common.v1 import common_pb2
from svod.segmentation.v1 import segmentation_pb2, segmentation_pb2_grpc
from svod_profile.adapters.storage import ProfileStore
from svod_profile.domain.announcements import EventRef, ProfileChanged, SplitPart
from svod_profile.domain.summaries import ShownEvent
from svod_runtime.clients import delivery_error
from svod_runtime.outbox import DeliveryError, OutboxMessage
from svod_runtime.priority import sliced, step_aside
from svod_runtime.protoconv import datetime_to_timestamp, enum_short_names

# The most changes segmentation takes in one call.
MAX_CHANGES_PER_CALL = 1000


# The channel names segmentation knows (a SourceChannel's short names but "unspecified").
_CHANNEL_NAMES = tuple(
    name
    for name in enum_short_names(common_pb2.SourceChannel.DESCRIPTOR, "SOURCE_CHANNEL_").values()
    if name != "unspecified"
)


def _metrics_alone(change: ProfileChanged) -> bool:
    return change.metrics_only and not change.merged and change.split is None


class SegmentationAnnouncer:
    def __init__(
        self,
        store: ProfileStore,
        channel: grpc.aio.Channel,
        timeout_s: float,
        currency: str,
        *,
        event_columns: bool = True,
    ) -> None:
        """``event_columns``: a change's new events go as EventColumns (False: as a
        TimelineEntry each, the form segmentation still takes; tests compare the two)."""
        self.store = store
        self.stub = segmentation_pb2_grpc.SegmentationServiceStub(channel)
        self.timeout_s = timeout_s
        self.currency = currency
        self.event_columns = event_columns

    async def changed(self, messages: list[OutboxMessage]) -> list[DeliveryError | None]:
        answers: list[DeliveryError | None] = []
        for start in range(0, len(messages), MAX_CHANGES_PER_CALL):
            answers.extend(await self._announce(messages[start : start + MAX_CHANGES_PER_CALL]))
        return answers

    def _add_entries(
        self,
        entries: Any,
        refs: Sequence[EventRef],
        events: Mapping[EventRef, ShownEvent],
    ) -> None:
        """The events of ``refs`` still stored, each built in place in ``entries`` (a repeated
        TimelineEntry field of the request): made apart and then copied in, the copy alone
        was 8% of announcing an import's 200,000 events (py-spy). Only a split's moved events
        come here, unless ``event_columns`` is off."""
        from svod_profile.entrypoints.grpc_servicer import timeline_fields

        for ref in refs:
            event = events.get(ref)
            if event is not None:
                entries.add(**timeline_fields(event, self.currency))

    def _add_split(
        self,
        out: segmentation_pb2.ProfileSplit,
        split: SplitPart,
        views: Mapping[str, Any],
        events: Mapping[EventRef, ShownEvent],
    ) -> None:
        """The source side of a split: its profile as it is now, and the moved events."""
        from svod_profile.entrypoints.grpc_servicer import announced_profile_proto

        out.source_customer_id = split.source
        source = views.get(split.source)
        if source is not None:  # erased since: only the events move
            out.source_profile_version = source.version
            out.source_profile.CopyFrom(announced_profile_proto(source, self.currency))
        self._add_entries(out.moved_events, split.moved, events)

    async def _announce(self, messages: list[OutboxMessage]) -> list[DeliveryError | None]:
        # Imported here: the servicer module holds the proto mapping of a profile.
        from svod_profile.entrypoints.grpc_servicer import (
            announced_profile_proto,
            metrics_proto,
        )

        changes = [ProfileChanged.parse(m.payload) for m in messages]
        # The changes' new events go in columns (EventColumns), read out of their payloads
        # by Postgres; a split's moved events (rare) as TimelineEntry messages.
        with_events = [i for i, change in enumerate(changes) if change.events]
        refs = [r for change in changes if change.split is not None for r in change.split.moved]
        if not self.event_columns:
            refs += [r for change in changes for r in change.events]
            with_events = []
        split_sources = {c.split.source for c in changes if c.split is not None}
        # A change that only applied events is announced with the metrics alone (see
        # ProfileChanged.metrics_only); the others with whole profiles, as they are now.
        alone = [_metrics_alone(c) for c in changes]
        whole = {m.key for m, a in zip(messages, alone, strict=True) if not a} | split_sources
        async with self.store.reader() as tx:
            views = await tx.announced_many(sorted(whole))
            metrics = await tx.events.current_metrics(
                sorted({m.key for m, a in zip(messages, alone, strict=True) if a})
            )
            announced = await tx.events.announced_events(refs)
            events = {(e.source, e.message_id): e for e in announced}
            column_rows = await tx.events.announced_event_columns(
                [messages[i].payload for i in with_events], _CHANNEL_NAMES
            )
            columns = {
                with_events[position]: segmentation_pb2.EventColumns(**values)
                async for position, values in sliced(column_rows)
            }
        requests: list[segmentation_pb2.ApplyProfileChangeRequest] = []
        sent: list[int] = []  # index of the message each request announces
        for index, (message, change) in enumerate(zip(messages, changes, strict=True)):
            # Building a pass's requests takes tens of milliseconds: let single calls and the
            # event batches sharing this loop run in between.
            await step_aside()
            if alone[index]:
                current = metrics.get(message.key)
                if current is None:  # merged away or erased since: nothing left to announce
                    continue
                request = segmentation_pb2.ApplyProfileChangeRequest(
                    customer_id=message.key,
                    profile_version=current.version,
                    metrics=metrics_proto(current.metrics, self.currency),
                    profile_update_time=datetime_to_timestamp(current.updated_at),
                    profile_create_time=datetime_to_timestamp(current.created_at),
                    trace_context=message.trace_carrier,
                    new_event_columns=columns.get(index),
                )
            else:
                view = views.get(message.key)
                if view is None:  # merged away or erased since: nothing left to announce
                    continue
                request = segmentation_pb2.ApplyProfileChangeRequest(
                    customer_id=message.key,
                    profile_version=view.version,
                    profile=announced_profile_proto(view, self.currency),
                    merged_customer_ids=change.merged,
                    trace_context=message.trace_carrier,
                    new_event_columns=columns.get(index),
                )
                if change.split is not None:
                    self._add_split(request.split, change.split, views, events)
            if not self.event_columns:
                self._add_entries(request.new_events, change.events, events)
            requests.append(request)
            sent.append(index)
        answers: list[DeliveryError | None] = [None] * len(messages)
        if not requests:
            return answers
        try:
            reply = await self.stub.ApplyProfileChanges(
                segmentation_pb2.ApplyProfileChangesRequest(changes=requests),
                timeout=self.timeout_s,
            )
        except grpc.aio.AioRpcError as error:
            raise delivery_error(error) from None
        for index, result in zip(sent, reply.results, strict=True):
            if result.HasField("error") and result.error.code != code_pb2.OK:
                answers[index] = DeliveryError(
                    code_pb2.Code.Name(result.error.code), result.error.message
                )
        return answers
