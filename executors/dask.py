"""The Dask executor (the default): every try is one Dask task on a distributed cluster.

Cluster: with ``[dask] processes`` (the default) and ``cluster = "subprocess"``, a cluster
the executor owns: a ``dask scheduler`` and ``n_workers`` ``dask worker`` processes on this
machine (``executors.dask_cluster``), which die with the Updraft scheduler even on SIGKILL;
``cluster = "local"`` or ``processes = false`` gives a ``distributed.LocalCluster``
instead; ``[dask] scheduler_address`` uses a running cluster. Each try runs
``executors.dask_worker.run_on_dask`` in a worker thread, which supervises the try in a
process of its own (``updraft.isolation``; ``[core] task_isolation = thread`` runs it in
the thread). Task code may use the cluster through ``distributed.get_client()`` or
``worker_client()``; the supervisor secedes from the worker's thread pool meanwhile.

Nothing here blocks on a result. ``submit`` sends a batch with one ``client.map`` per
queue; each future's done-callback (on Dask's callback thread) hands it to a collector
thread, which gathers finished results in batches, queues the events and calls the
wakeup. Dask keys read ``updraft-<dag>-<run>-<task>-<map index>-<try>-<submission>``, with
every character outside ``[A-Za-z0-9_.-]`` replaced by ``_``; the submission number makes
a duplicate submission a separate Dask task (its claim is then refused by the store).

Bundles: when more tries are in flight than the cluster has threads (twice as many),
tries would wait in Dask's queue anyway; new ones then go in bundles of about the tries
waiting per thread (at most ``[dask] max_bundle``), one Dask task running them one after
the other (in one try process while each leaves nothing behind), which spares Dask's
per-task cost on short tries. Each try still claims and records itself in the store. A try
that runs long does not hold up the rest of its bundle for more than half a second: they
go on in another thread (``executors.bundles``). A runner error on one try of a bundle
(not a task failure: the store unreachable, say) is reported for every try of it once the
others ran; tries that never started are queued again by the scheduler, counting nothing.

Queues: a task whose ``queue`` is not ``default`` is submitted with the Dask resource
``queue-<name>: 1``, so it only runs on workers started with that resource, e.g.
``dask worker SCHEDULER --resources "queue-gpu=1000"`` (1000 = no practical limit; the
worker's threads bound concurrency). ``cluster_options={"resources": {...}}`` gives the
LocalCluster's workers queues to serve, ``[dask] worker_resources`` the cluster's workers
the executor starts.

Resources (``executors.dask_native``): a task's ``executor_config={"resources": {...}}``
joins its queue's resource; its pool is a Dask annotation (and a resource when workers
declare ``pool-<name>``). A try whose resources no worker of the cluster has waits in Dask
for ``[dask] resource_wait`` seconds (a worker may be restarting), then fails through the
store with the reason, under its retry policy.

Faults (a lost worker, a lost Dask scheduler): ``executors.dask_recovery``. Dask's own
retries are never used: retries are Updraft's.

Cancel: ``Future.cancel`` stops a try that has not started; a running one is stopped by its
supervisor (SIGTERM, ``on_kill()``, SIGKILL after the grace period).
"""

from __future__ import annotations

import functools
import logging
import os
import queue
import re
import threading
import time
from collections.abc import Iterable
from typing import Any

from executors.base import BaseExecutor, TryKey
from executors.dask_identity import cluster_identity, worker_addresses
from executors.dask_native import DaskNative
from executors.dask_recovery import DaskRecovery
from updraft.runtime import TryRequest

log = logging.getLogger(__name__)
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
_UNSET: Any = object()


def dask_key(request: TryRequest, submission: int) -> str:
    """The Dask key of one submission of a try (readable, safe in URLs and the dashboard)."""
    raw = (f"updraft-{request.dag_id}-{request.run_id}-{request.task_id}-"
           f"{request.map_index}-{request.try_number}-{submission}")
    return _UNSAFE.sub("_", raw)


def queue_resource(queue_name: str | None) -> str | None:
    """The Dask worker resource that serves ``queue_name`` (None for the default queue)."""
    if not queue_name or queue_name == "default":
        return None
    return f"queue-{queue_name}"


def pool_resource(pool: str | None) -> str | None:
    """The Dask worker resource a pool maps to when workers declare it (``pool-<name>``)."""
    return f"pool-{pool}" if pool else None


def try_resources(request: TryRequest, declared: set[str] | None = None) -> dict[str, float]:
    """The Dask resources one try needs: its queue's, its ``executor_config`` resources, and
    its pool's slots when some worker declares the pool (``declared``: every resource name
    the cluster's workers have)."""
    needs: dict[str, float] = {}
    resource = queue_resource(request.queue)
    if resource:
        needs[resource] = 1
    for name, amount in (request.resources or {}).items():
        needs[str(name)] = float(amount)
    pooled = pool_resource(request.pool)
    if pooled and declared and pooled in declared:
        needs[pooled] = float(request.pool_slots or 1)
    return needs


def parse_resources(text: str) -> dict[str, float]:
    """``"GPU=1,MEMORY=8e9"`` (Dask's ``--resources`` form) as a dict."""
    found: dict[str, float] = {}
    for part in str(text or "").replace(" ", ",").split(","):
        if not part.strip():
            continue
        name, sep, amount = part.partition("=")
        try:
            found[name.strip()] = float(amount)
        except ValueError:
            raise ValueError(f"[dask] worker_resources: {part!r} is not NAME=AMOUNT") from None
        if not sep or not name.strip():
            raise ValueError(f"[dask] worker_resources: {part!r} is not NAME=AMOUNT")
    return found


def can_run(needs: dict[str, float], workers: Iterable[dict[str, float]]) -> bool:
    """Whether some worker has every resource of ``needs`` in the amount asked for."""
    return any(all(float(have.get(name, 0)) >= amount for name, amount in needs.items())
               for have in workers)


def describe_needs(needs: dict[str, float], workers: dict[str, dict[str, float]]) -> str:
    """The message of a try no worker can run."""
    wanted = ", ".join(f"{name}={amount:g}" for name, amount in sorted(needs.items()))
    have = "; ".join(f"{address}: " + (", ".join(f"{k}={v:g}" for k, v in sorted(r.items()))
                                        or "no resources")
                     for address, r in sorted(workers.items())) or "no workers"
    return (f"no worker of the Dask cluster has the resources this try needs ({wanted}); "
            f"the cluster's workers have: {have}. Start a worker with them (dask worker "
            f"--resources \"{','.join(f'{k}={v:g}' for k, v in sorted(needs.items()))}\", "
            "or [dask] worker_resources for the cluster Updraft starts), or change the "
            "task's executor_config / queue")


class DaskExecutor(DaskNative, DaskRecovery, BaseExecutor):
    """Runs tries as Dask tasks; options default to the ``[dask]`` configuration."""

    name = "dask"

    def __init__(self, parallelism: int | None = None, *, scheduler_address: str | None = None,
                 n_workers: int | None = None, threads_per_worker: int | None = None,
                 processes: bool | None = None, dashboard_address: str | None = _UNSET,
                 cluster_options: dict[str, Any] | None = None, client: Any = None,
                 fetch_outcomes: bool = False, batch_interval: float = 0.002,
                 max_bundle: int | None = None) -> None:
        from updraft.config import conf

        super().__init__(parallelism)
        self.scheduler_address = (conf.get("dask", "scheduler_address")
                                  if scheduler_address is None else scheduler_address) or None
        self.n_workers = conf.getint("dask", "n_workers") if n_workers is None else n_workers
        self.threads_per_worker = (conf.getint("dask", "threads_per_worker")
                                   if threads_per_worker is None else threads_per_worker)
        self.processes = conf.getboolean("dask", "processes") if processes is None else processes
        if dashboard_address is _UNSET:
            dashboard_address = conf.get("dask", "dashboard_address")
        if isinstance(dashboard_address, str) and \
                dashboard_address.strip().lower() in ("", "none", "off", "false"):
            dashboard_address = None
        self.dashboard_address = dashboard_address
        self.cluster_options = dict(cluster_options or {})
        self._client = client
        self._owns_client = client is None
        #: Fetching each result from its worker costs a round trip (and the client's 10 ms
        #: batching) per finished try; the store already holds the outcome, so the event
        #: only needs to say "look again". Tests that inspect outcomes turn it on.
        self.fetch_outcomes = fetch_outcomes
        self.batch_interval = batch_interval
        #: Tries sent in bundles so far (for tests and the health page).
        self.bundled_tries = 0
        #: At most this many tries per Dask task when tries queue up (1: never bundle).
        self.max_bundle = conf.getint("dask", "max_bundle") if max_bundle is None \
            else max_bundle
        self._cluster: Any = None
        self._futures: dict[int, Any] = {}
        self._done: queue.SimpleQueue = queue.SimpleQueue()
        self._collector: threading.Thread | None = None
        self._threads = 0
        self._default_store_url: str | None = None
        self._processes: Any = None  # executors.dask_cluster.LocalDaskProcesses (owned)
        self._watchdog: threading.Thread | None = None
        self._known_workers: dict[str, str] = {}
        #: Address -> resources of each worker of the cluster (refreshed by the watchdog).
        self._worker_resources: dict[str, dict[str, float]] = {}
        #: Token -> (resources needed, when submitted), for tries that need resources.
        self._needs: dict[int, tuple[dict[str, float], float]] = {}
        self.resource_wait = conf.getfloat("dask", "resource_wait")
        self._last_identity: dict[str, Any] = {}
        #: Resources the workers of the owned cluster declare ("GPU=1,MEMORY=8e9").
        self.worker_resources = str(conf.get("dask", "worker_resources") or "").strip() \
            or None
        self.adapt_min = max(0, conf.getint("dask", "adapt_min"))
        self.adapt_max = max(0, conf.getint("dask", "adapt_max"))
        self.adapt_idle = conf.getfloat("dask", "adapt_idle")
        if self.adapt_max and self.adapt_min > self.adapt_max:
            raise ValueError(f"[dask] adapt_min ({self.adapt_min}) is more than adapt_max "
                             f"({self.adapt_max})")
        #: What went wrong while the cluster is being recovered (None: all is well).
        self._incident: dict[str, Any] | None = None
        #: How many times the executor got a working cluster back.
        self.recoveries = 0
        from updraft.isolation import configured_isolation

        #: "process" (each try in its own process, the default) or "thread".
        self.isolation = configured_isolation()

    @property
    def client(self):
        """The ``distributed.Client`` in use (None before ``start``)."""
        return self._client

    # -- interface -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the owned cluster or connect to the scheduler; blocks until connected."""
        if self._collector is not None:
            return
        from updraft.config import conf

        self._default_store_url = conf.sql_alchemy_conn()
        if self._client is None:
            if self.scheduler_address:
                self._client = self._connect(self.scheduler_address)
            else:
                self._start_owned_cluster()
        self._after_connect()
        super().start()
        self._collector = threading.Thread(target=self._collect, name="updraft-dask-collector",
                                           daemon=True)
        self._collector.start()
        self._watchdog = threading.Thread(target=self._watch, name="updraft-dask-watchdog",
                                          daemon=True)
        self._watchdog.start()

    def _connect(self, address: str) -> Any:
        from distributed import Client

        return Client(address, set_as_default=False, timeout=30)

    def _after_connect(self, recovering: bool = False) -> None:
        self._tighten_batching()
        self._register_warm_up(wait=not recovering)
        self._refresh_threads()
        self._known_workers = self._current_workers()

    def _start_owned_cluster(self) -> None:
        """The cluster this executor owns: processes of its own (``executors.dask_cluster``)
        with worker processes and ``[dask] cluster = "subprocess"`` (the default), so the
        Dask scheduler does not share the Updraft scheduler's GIL; else a LocalCluster."""
        from updraft.config import conf

        kind = str(conf.get("dask", "cluster", "subprocess")).strip().lower()
        if kind not in ("subprocess", "local"):
            raise ValueError(f"[dask] cluster must be 'subprocess' or 'local', got {kind!r}")
        import dask

        profile = conf.getboolean("dask", "worker_profile")
        # Worker processes read Dask's configuration from the environment (subprocesses)
        # or from the nanny, which sends this process's (LocalCluster).
        os.environ["DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED"] = str(profile)
        dask.config.set({"distributed.worker.profile.enabled": profile})
        if kind == "subprocess" and self.processes and not self.cluster_options:
            from executors.dask_cluster import LocalDaskProcesses

            self._processes = LocalDaskProcesses(
                n_workers=self.initial_workers(), threads_per_worker=self.threads_per_worker,
                dashboard_address=self.dashboard_address,
                worker_resources=self.worker_resources)
            try:
                address = self._processes.start()
                self._client = self._connect(address)
            except Exception:
                self._processes.close()
                self._processes = None
                raise
        else:
            from distributed import Client, LocalCluster

            # processes=False must not get host="127.0.0.1" (it fails to start): leave
            # host out; LocalCluster listens on localhost by default anyway.
            options = {"n_workers": self.n_workers,
                       "threads_per_worker": self.threads_per_worker,
                       "processes": self.processes,
                       "dashboard_address": self.dashboard_address,
                       # Workers serve HTTP (health, metrics) on every interface unless
                       # told otherwise: keep it on loopback.
                       "worker_dashboard_address": "127.0.0.1:0"}
            if self.dashboard_address is None:
                # Without a dashboard the scheduler still serves /health on HTTP, by
                # default on port 8787 of every interface: keep it on loopback.
                options["scheduler_kwargs"] = {"dashboard": False,
                                               "dashboard_address": "127.0.0.1:0"}
            if self.worker_resources:
                options["resources"] = parse_resources(self.worker_resources)
            options.update(self.cluster_options)
            self._cluster = LocalCluster(**options)
            self._client = Client(self._cluster, set_as_default=False)
        try:  # our own workers are on their way: have them ready to warm up
            if self.initial_workers():
                self._client.wait_for_workers(self.initial_workers(), timeout=60)
        except Exception:  # noqa: BLE001  (tries wait in Dask until they come)
            log.warning("the Dask workers were not all up after 60 s", exc_info=True)

    def initial_workers(self) -> int:
        """Workers the owned cluster starts with: ``n_workers``, or ``adapt_min`` (at least
        one) when adapting."""
        if self.adapt_max > 0:
            return max(1, self.adapt_min)
        return self.n_workers

    def submit(self, requests: Iterable[TryRequest]) -> None:
        """Send the tries to Dask, one ``client.map`` per queue. Never waits for results.

        When more tries are in flight than the cluster has threads, tries wait in Dask's
        queue anyway: then new tries go in bundles (one Dask task runs several tries one
        after the other), which spares Dask's per-task cost; see ``_bundle_size``."""
        from executors.dask_worker import run_bundle_on_dask, run_on_dask

        self._check_accepting()
        import dask

        groups: dict[tuple, list[tuple[int, TryRequest]]] = {}
        declared = set().union(*self._worker_resources.values()) \
            if self._worker_resources else set()
        for request in requests:
            token = self._accept(request)
            needs = try_resources(request, declared)
            if needs:
                with self._lock:
                    self._needs[token] = (needs, time.monotonic())
            group = (tuple(sorted(needs.items())), self._store_url(request), request.pool)
            groups.setdefault(group, []).append((token, request))
        for (needs, store_url, pool), items in groups.items():
            # Tries that need resources go one per Dask task: each may have to be failed
            # alone when no worker can run it.
            size = 1 if needs else self._bundle_size()
            bundles = [items[i:i + size] for i in range(0, len(items), size)]
            if size > 1:
                function, prefix = run_bundle_on_dask, "bundle-"
                payloads = [[request.to_json() for _, request in bundle] for bundle in bundles]
            else:
                function, prefix = run_on_dask, ""
                payloads = [bundle[0][1].to_json() for bundle in bundles]
            try:
                # The pool is an annotation every Dask task of the try carries (the
                # dashboard shows it; scheduler plugins may act on it).
                with dask.annotate(updraft_pool=pool or "default_pool"):
                    futures = self._client.map(
                        function, payloads, [store_url] * len(bundles),
                        [self.isolation] * len(bundles),
                        key=[prefix + dask_key(bundle[0][1], bundle[0][0])
                             for bundle in bundles],
                        pure=False, resources=dict(needs) or None, retries=0)
            except Exception as exc:  # reported per try, the scheduler retries
                log.exception("could not submit %d tries to Dask", len(items))
                for token, _ in items:
                    self._finish(token, error=f"could not submit to Dask: "
                                              f"{type(exc).__name__}: {exc}")
                continue
            if size > 1:
                self.bundled_tries += len(items)
            with self._lock:
                for bundle, future in zip(bundles, futures):
                    for token, _ in bundle:
                        self._futures[token] = future
            for bundle, future in zip(bundles, futures):
                future.add_done_callback(functools.partial(
                    self._on_done, tuple(token for token, _ in bundle)))

    def _store_url(self, request: TryRequest) -> str | None:
        return request.store_url or self._default_store_url

    def _bundle_size(self) -> int:
        """Tries per Dask task: about the tries waiting per thread, at most ``max_bundle``;
        one while every try finds a free thread (then bundling would only delay tries)."""
        threads = self._threads or self.parallelism  # unknown: as if never queued
        with self._lock:
            in_flight = len(self._in_flight)
        if self.max_bundle <= 1 or in_flight <= 2 * threads:
            return 1
        return min(self.max_bundle, in_flight // threads)

    def warm(self, dags: list[tuple[str, str]]) -> None:
        """Have every worker parse these DAGs in a background thread (waits only for the
        workers to start it)."""
        from executors.dask_worker import warm_dags

        if not dags or self._client is None:
            return
        try:
            self._client.run(warm_dags, list(dags), self.isolation, self._default_store_url,
                             on_error="return")
        except Exception:  # noqa: BLE001  (only an optimisation)
            log.debug("could not ask the Dask workers to parse DAGs ahead", exc_info=True)

    def _register_warm_up(self, wait: bool = True) -> None:
        """Workers (current and joining) import the runner and connect in the background,
        and one no-op task per worker warms Dask's own path to it (waited for at start,
        not while recovering: the workers may be on their way back)."""
        from executors.dask_worker import WarmWorker, noop

        try:
            self._client.register_plugin(WarmWorker(self._default_store_url, self.isolation))
            workers = worker_addresses(self._client)
            futures = [self._client.submit(noop, pure=False, workers=[address],
                                           allow_other_workers=True) for address in workers]
            if wait:
                self._client.gather(futures, errors="skip")
        except Exception:  # noqa: BLE001  (only an optimisation)
            log.debug("could not warm the Dask workers up", exc_info=True)

    def cancel(self, key: TryKey) -> bool:
        """Cancel the Dask futures of ``key`` and stop its try where it runs (its process
        gets SIGTERM, then SIGKILL after the grace period); one round trip to the cluster."""
        from executors.dask_worker import stop_try

        tokens = self._tokens_for(key)
        if tokens and self._client is not None and self.isolation != "thread":
            try:
                self._client.run(stop_try, list(key), "stopped: cancelled by the scheduler",
                                 wait=False)
            except Exception:  # noqa: BLE001  (the heartbeat check stops it later)
                log.debug("could not ask the workers to stop %s", key, exc_info=True)
        with self._lock:
            popped = [self._futures.pop(token) for token in tokens if token in self._futures]
            # A bundle's Dask task goes on while it still carries other tries.
            shared = {id(future) for future in self._futures.values()}
            futures = [future for future in popped if id(future) not in shared]
        if futures:
            try:
                self._client.cancel(futures, reason="cancelled by the Updraft scheduler")
            except Exception:  # the event below is what the scheduler needs
                log.warning("Dask cancel failed", exc_info=True)
        cancelled = False
        for token in tokens:
            cancelled |= self._finish(
                token, error="cancelled; if it had started on a worker thread it runs to its "
                             "end, and the store records it only if it still expects it")
        return cancelled

    def queue_depth(self) -> int:
        """Estimate: tries in flight beyond the cluster's total threads."""
        identity = getattr(self._client, "_scheduler_identity", None) or {}
        threads = identity.get("total_threads") or self._threads or self.parallelism
        with self._lock:
            return max(0, len(self._in_flight) - int(threads))

    def stop(self, wait: bool = True) -> None:
        """Wait for the tries in flight (``wait=True``) or stop them (``wait=False``: on an
        owned cluster they are interrupted, recorded ``up_for_retry`` without using a retry;
        on an external one they go on and their supervisors record them), then close the
        client and, last, the owned cluster, quietly."""
        self._stopping = True
        if self._collector is None:
            return
        if wait:
            self.join()
        else:
            owned = self._processes is not None or self._cluster is not None
            if owned and self._client is not None and self.isolation != "thread":
                from executors.dask_worker import interrupt_all

                try:
                    self._client.run(interrupt_all, wait=False)
                except Exception:  # noqa: BLE001  (their processes die with the cluster)
                    log.debug("could not interrupt the tries on the workers", exc_info=True)
                self.join(timeout=self._interrupt_wait())
            with self._lock:
                pending = dict(self._futures)
                self._futures.clear()
            if pending and self._client is not None:
                try:
                    unique = {id(future): future for future in pending.values()}
                    self._client.cancel(list(unique.values()),
                                        reason="the Updraft executor stopped")
                except Exception:  # noqa: BLE001
                    log.debug("Dask cancel failed", exc_info=True)
            for token in pending:
                self._finish(token, error="cancelled: the executor stopped")
        self._done.put(None)
        self._collector.join(10)
        self._collector = None
        if self._owns_client:
            self._close_client_quietly(self._client)
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None
        if self._processes is not None:
            self._processes.close()
            self._processes = None

    @staticmethod
    def _interrupt_wait() -> float:
        from updraft.config import conf

        return conf.getfloat("core", "kill_grace_period") + 2.0

    def health(self) -> dict[str, Any]:
        """Adds the scheduler address, dashboard link and workers (one round trip)."""
        info = super().health()
        info.update(scheduler_address=self.scheduler_address,
                    local_cluster=bool(self._cluster or self._processes),
                    dashboard_link=None, workers=[], isolation=self.isolation,
                    recoveries=self.recoveries)
        incident = self._incident
        if incident is not None:
            info["error"] = incident["reason"] + (f"; last attempt: {incident['error']}"
                                                  if incident.get("error") else "")
            info["recovering_since"] = incident["since"]
        if self._processes is not None:
            info["cluster_processes"] = self._processes.pids()
            info["cluster_restarts"] = dict(self._processes.restarts)
        if self._client is None:
            return info
        try:
            identity = cluster_identity(self._client)
            info["scheduler_address"] = identity.get("address")
            info["dashboard_link"] = self._dashboard_link(identity)
            info["workers"] = [
                {"name": str(w.get("name")), "address": address, "nthreads": w.get("nthreads"),
                 "resources": w.get("resources") or {}, "status": w.get("status")}
                for address, w in identity.get("workers", {}).items()]
            info["total_threads"] = identity.get("total_threads")
            self._threads = int(identity.get("total_threads") or 0)
            # Workers, memory and tasks in flight, for the health page (dask_native).
            info["cluster"] = self.cluster_summary(identity)
            info["cluster"].update(
                scheduler_address=identity.get("address"), adapt=(
                    {"min": self.adapt_min, "max": self.adapt_max,
                     "wanted": self.wanted_workers()} if self._processes is not None
                    and self.adapt_max else None))
        except Exception as exc:  # noqa: BLE001  (the health page shows the problem)
            info["error"] = f"{type(exc).__name__}: {exc}"
        return info

    def _dashboard_link(self, identity: dict) -> str | None:
        """The dashboard URL, with the host it is bound to when we started the cluster."""
        port = identity.get("services", {}).get("dashboard")
        if not port:
            return None
        if self._cluster is None and self._processes is None:
            return self._client.dashboard_link
        if self.dashboard_address is None:
            return None  # the scheduler serves /health on HTTP, but there is no dashboard
        host = str(self.dashboard_address).rpartition(":")[0].strip("[]")
        if host in ("", "0.0.0.0", "::"):
            return self._client.dashboard_link
        return f"http://{host}:{port}/status"

    # -- results ---------------------------------------------------------------------------

    def _tighten_batching(self) -> None:
        """The client batches its messages to the Dask scheduler every 10 ms; each task hop
        pays that twice, so send more often (distributed reads the interval on every send)."""
        comm = getattr(self._client, "scheduler_comm", None)
        if comm is not None and hasattr(comm, "interval") and self.batch_interval:
            comm.interval = self.batch_interval

    def _refresh_threads(self) -> None:
        try:
            self._threads = int(self._client.scheduler_info(n_workers=0)
                                .get("total_threads") or 0)
        except Exception:  # noqa: BLE001  (only an estimate for queue_depth)
            self._threads = 0

    def _on_done(self, tokens: tuple[int, ...], future: Any) -> None:
        """Dask's callback thread: hand the future to the collector, never block here."""
        self._done.put((tokens, future))

    def _collect(self) -> None:
        """Collector thread: turn finished futures into events, gathering in batches."""
        running = True
        while running:
            batch = [self._done.get()]
            while True:
                try:
                    batch.append(self._done.get_nowait())
                except queue.Empty:
                    break
            if None in batch:
                running = False
                batch = [item for item in batch if item is not None]
            try:
                self._handle(batch)
            except Exception:  # keep collecting; the tries show as zombies
                log.exception("Dask executor collector failed on a batch")

    def _handle(self, batch: list[tuple[tuple[int, ...], Any]]) -> None:
        finished = []
        for tokens, future in batch:
            with self._lock:
                owned = [token for token in tokens if self._futures.pop(token, None) is not None]
            if not owned:  # cancelled meanwhile: the events are already queued
                continue
            if future.status == "finished":
                finished.append((tokens, owned, future))
            elif future.status == "error":
                error = self._describe_error(future)
                for token in owned:
                    self._finish(token, error=error)
            else:
                for token in owned:
                    self._finish(token, error=f"Dask reports the task {future.status} "
                                              "(scheduler connection lost, cluster restarted "
                                              "or cancelled outside Updraft)")
        if not finished:
            return
        if not self.fetch_outcomes:
            for _tokens, owned, _future in finished:
                for token in owned:
                    self._finish(token, None, worker=None)
            return
        try:
            results = self._client.gather([future for *_rest, future in finished])
        except Exception:  # noqa: BLE001  (one lost result must not hide the others)
            results = []
            for *_rest, future in finished:
                try:
                    results.append(future.result())
                except Exception as exc:  # noqa: BLE001
                    results.append(exc)
        for (tokens, owned, _future), result in zip(finished, results):
            if isinstance(result, BaseException):
                for token in owned:
                    self._finish(token, error=f"result lost: {type(result).__name__}: "
                                              f"{result}")
                continue
            # A bundle returns one result per try, in order; a single try one result.
            per_try = result if isinstance(result, list) else [result]
            for token, item in zip(tokens, per_try):
                if token in owned:
                    self._finish(token, item["outcome"], worker=item.get("worker"))

    @staticmethod
    def _describe_error(future: Any) -> str:
        from distributed import KilledWorker

        try:
            exc = future.exception()
        except Exception as problem:  # noqa: BLE001
            return f"the Dask task failed and its error could not be read: {problem}"
        if isinstance(exc, KilledWorker):
            return (f"KilledWorker: the workers running this try died too often "
                    f"(last: {getattr(exc, 'last_worker', None)}); {exc}")
        return f"the task runner failed on the Dask worker: {type(exc).__name__}: {exc}"
