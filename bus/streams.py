"""Creating Updraft's JetStream streams with as many replicas as the NATS cluster allows.

Every durable stream (run triggers, asset events, the NATS queue executor's task queues)
is created here. On a cluster a stream with one replica stops answering when its server
dies (``NoStreamResponseError``), so ``[nats] stream_replicas`` ("auto", the default) gives
each stream min(3, servers in the cluster) replicas: any one server can be lost. An integer
forces that many. A stream found with fewer replicas than wanted is updated in place
(JetStream moves it to more servers without losing a message).
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

#: Replicas JetStream allows at most for a stream.
MAX_REPLICAS = 5


def cluster_size(nc: Any) -> int:
    """How many servers the connection knows in its cluster (1 when not clustered): the
    configured servers plus those the cluster announced (``connect_urls``)."""
    info = getattr(nc, "_server_info", None) or {}
    if not info.get("cluster"):
        return 1
    known = {f"{url.hostname}:{url.port}" for url in getattr(nc, "servers", [])}
    known.update(str(url).split("://")[-1] for url in info.get("connect_urls") or [])
    return max(1, len(known))


def wanted_replicas(nc: Any, setting: Any = None) -> int:
    """``[nats] stream_replicas`` as a number: "auto" is min(3, cluster size)."""
    if setting is None:
        from updraft.config import conf

        setting = conf.get("nats", "stream_replicas")
    text = str(setting).strip().lower()
    if text in ("", "auto"):
        return min(3, cluster_size(nc))
    try:
        replicas = int(text)
    except ValueError:
        from updraft.config import ConfigError

        raise ConfigError(f"[nats] stream_replicas: expected auto or 1-{MAX_REPLICAS}, got "
                          f"{setting!r}") from None
    if not 1 <= replicas <= MAX_REPLICAS:
        from updraft.config import ConfigError

        raise ConfigError(f"[nats] stream_replicas: expected auto or 1-{MAX_REPLICAS}, got "
                          f"{replicas}")
    return replicas


async def ensure_replicated_stream(js: Any, config: Any) -> None:
    """Create the stream ``config`` describes (through the JetStream context ``js``) with
    the wanted replicas, or raise an existing one's replicas to them; idempotent, several
    nodes may race."""
    import dataclasses

    from nats.js.errors import BadRequestError, NotFoundError

    replicas = wanted_replicas(js._nc)
    try:
        info = await js.stream_info(config.name)
    except NotFoundError:
        info = None
    if info is None:
        try:
            await js.add_stream(dataclasses.replace(config, num_replicas=replicas))
            log.info("JetStream stream %s created with %d replica(s)", config.name, replicas)
            return
        except BadRequestError as exc:
            if "already in use" in str(exc):
                info = await js.stream_info(config.name)
            elif replicas > 1 and "replica" in str(exc).lower():
                # The servers refused (not clustered after all, too few with JetStream):
                # one replica works everywhere; say so, since a server loss now stops it.
                log.warning("JetStream refused %d replicas for %s (%s); using 1", replicas,
                            config.name, exc)
                await js.add_stream(dataclasses.replace(config, num_replicas=1))
                return
            else:
                raise
    have = info.config.num_replicas or 1
    if have < replicas:
        try:
            await js.update_stream(dataclasses.replace(info.config, num_replicas=replicas))
            log.info("JetStream stream %s: replicas raised from %d to %d", config.name, have,
                     replicas)
        except BadRequestError as exc:
            log.warning("JetStream stream %s keeps %d replica(s): %s", config.name, have, exc)


__all__ = ["cluster_size", "ensure_replicated_stream", "wanted_replicas"]
