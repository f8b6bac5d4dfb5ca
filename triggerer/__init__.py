"""``updraft triggerer``: the node that runs deferred tasks' triggers (ADR 11).

Many triggers share one asyncio loop (``runner``); the node's loop (``node``) leases them
from the store, renews its leases, and writes what fired. It talks to the scheduler only
through the store and a nudge on the bus (``P.wake.scheduler``).
"""
