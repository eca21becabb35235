"""A random generator of the caller's own, for jitter and ids.

The random module's functions share one global state. Drawing from it on a server's thread
(a retry's pause, a relay's backoff, OpenTelemetry's span ids) moved that state under a
property test drawing on another thread of the same process, and Hypothesis warned that the
test's strategy used the random module (tests/properties/test_track_clean). A generator of
one's own is reseeded in a forked child, as the global state is, so two processes never pause
alike or share ids.
"""

from __future__ import annotations

import os
import random


def own_random() -> random.Random:
    """A fresh generator seeded from the OS, reseeded in every forked child."""
    generator = random.Random()
    os.register_at_fork(after_in_child=generator.seed)
    return generator
