"""Updraft on a three-server NATS cluster (issue 18): ``[nats] servers`` written as a TOML
list, streams replicated on three servers, and a server killed while outside systems
publish triggers: no trigger is lost and the scheduler keeps working.

The cluster runs on loopback ports (``tests/nats_cluster.py``); the store is a copied SQLite
file and the scheduler runs in a thread with the sequential executor, as in ``test_bus``.
"""

from __future__ import annotations

import asyncio
import json

import pytest
import scheduler_helpers as h
from nats_cluster import NatsCluster
from test_bus import PARAMS_DAG, running

from bus import subjects
from bus.connection import connect

pytestmark = [pytest.mark.nats, pytest.mark.slow, pytest.mark.timeout(240)]


@pytest.fixture
def cluster(tmp_path):
    nats = NatsCluster(tmp_path / "nats-cluster").start()
    yield nats
    nats.stop()


@pytest.fixture
def cluster_env(cluster, updraft_home, tmp_path, monkeypatch, _sqlite_template):
    """Scheduler settings as in test_bus, with ``[nats] servers`` a TOML list of the
    cluster's three servers (and no UPDRAFT__NATS__SERVERS variable)."""
    from updraft.config import conf

    dags = h.prepare_bus_env(monkeypatch, tmp_path, updraft_home, _sqlite_template,
                             cluster.servers, "c")
    monkeypatch.delenv("UPDRAFT__NATS__SERVERS")
    (updraft_home / "updraft.toml").write_text(
        "[nats]\nservers = [" + ", ".join(f'"{url}"' for url in cluster.urls) + "]\n")
    conf.reload()
    yield dags
    from bus.connection import close_shared_bus

    close_shared_bus()


def stream_info(servers: str, name: str):
    async def main():
        nc = await connect(servers)
        try:
            return await nc.jetstream().stream_info(name)
        finally:
            await nc.close()
    return asyncio.run(main())


def publish_triggers(servers: str, dag_id: str, ids: list[str]) -> None:
    """Publish one trigger per id (its run id and message id), as an outside system would:
    each publish waits for JetStream's ack, retried while the cluster elects a new leader."""
    import nats.errors

    async def main():
        nc = await connect(servers)
        js = nc.jetstream()
        try:
            for run_id in ids:
                body = json.dumps({"conf": {"size": 2}, "run_id": run_id}).encode()
                for attempt in range(100):
                    try:
                        await js.publish(subjects.trigger(dag_id), body, timeout=2,
                                         headers={"Nats-Msg-Id": run_id})
                        break
                    except (nats.errors.Error, TimeoutError):
                        if attempt == 99:
                            raise
                        await asyncio.sleep(0.2)
        finally:
            await nc.close()
    asyncio.run(main())


def test_toml_server_list_replicated_streams_and_a_lost_server(cluster, cluster_env):
    from updraft.config import conf

    assert conf.get("nats", "servers") == cluster.servers
    h.write_dag(cluster_env, "params_dag", PARAMS_DAG.format(dag_id="params_dag"))
    with running(cluster_env):
        h.wait_parsed("params_dag")
        first = [f"before-{i}" for i in range(5)]
        publish_triggers(cluster.servers, "params_dag", first)
        for run_id in first:
            h.wait_run("params_dag", run_id)
        info = stream_info(cluster.servers, subjects.triggers_stream())
        assert info.config.num_replicas == 3
        # Kill the server that leads the trigger stream: the worst one to lose.
        leader = int(info.cluster.leader.removeprefix("n"))
        cluster.kill(leader)
        second = [f"after-{i}" for i in range(10)]
        publish_triggers(",".join(u for i, u in enumerate(cluster.urls) if i != leader),
                         "params_dag", second)
        for run_id in second:
            h.wait_run("params_dag", run_id)
        runs = h.runs("params_dag")
        assert sorted(r.run_id for r in runs) == sorted(first + second)
        assert {h.run_state("params_dag", r.run_id) for r in runs} == {"success"}
