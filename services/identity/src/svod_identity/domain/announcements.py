"""The outbox topics identity announces its changes on (written by ``adapters/announcements.py``
and the use cases, relayed by the app)."""

from __future__ import annotations

# Merges and splits, to the profile service.
MERGED_TOPIC = "customer.merged"
SPLIT_TOPIC = "customer.split"
# Which customers changed, to ingestion (events it holds may now be theirs).
ATTRIBUTION_TOPIC = "attribution.changed"
# Suspected duplicates and blocked identifiers, to the quality service.
QUALITY_TOPIC = "quality.duplicates"
