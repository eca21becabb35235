"""What every Svod service needs and nothing else: config, server bootstrap, telemetry, db plumbing.

No business logic lives here.
"""
