"""What the Dask scheduler says of its cluster, read so that the answer is ours.

``Client.scheduler_info(n_workers=-1)`` fetches the identity with every worker into the
client's cache and returns the cache; the client's periodic refresh (every 2 s) overwrites
that cache with cluster-wide totals only (``"workers"`` empty). If the refresh lands
between the fetch and the return, every worker seems to have left the cluster: a watchdog
that believed it would fail the running tries of healthy workers (seen under load). This
asks the scheduler directly and returns its answer, never the cache.
"""

from __future__ import annotations

from typing import Any


def cluster_identity(client, n_workers: int = -1) -> dict[str, Any]:
    """The Dask scheduler's identity with ``n_workers`` workers (-1: all), from a sync
    client (any thread but the client's event loop)."""
    return dict(client.sync(client.scheduler.identity, n_workers=n_workers))


def worker_addresses(client) -> list[str]:
    """The addresses of the cluster's workers, now."""
    return list(cluster_identity(client).get("workers", {}))


__all__ = ["cluster_identity", "worker_addresses"]
