"""Live state and live logs for the browser: server-sent events fed from NATS.

One shared ``BusThread`` per web process (``bus.connection.shared_bus``) carries one
subscription to ``P.evt.run.*`` and one to ``P.evt.ti.*``; each event goes to the queues of
the browsers watching that DAG. ``/events/dag/<dag_id>`` streams them as JSON (``run`` and
``ti`` events). Live logs subscribe per stream to ``P.log.<dag>.<run>.<task>.<map>.<try>``:
``/events/log/...`` sends the try's log file so far, then the live lines numbered after it
(``LogLine.seq`` is the line number), until the line marked ``eof`` or the try is over.

Every stream holds one server thread, so their number is capped (``UPDRAFT_SSE_MAX``, 503
past it) and each ends after ``UPDRAFT_SSE_MAX_SECONDS`` (the browser reconnects by itself).
The page scripts fall back to polling ``/dags/<id>/state.json`` when a stream fails.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from flask import Response, current_app

from updraft.secrets import redact
from updraft.state import IN_FLIGHT_STATES
from web.auth.permissions import READ, require
from web.ui.blueprint import bp

log = logging.getLogger(__name__)

KEEPALIVE = 15.0
QUEUE_SIZE = 2000
#: The listeners' key of the DAG list's stream (no DAG id can be this: ids are printable).
ALL_DAGS = "\x00all"


class LiveHub:
    """Fans the bus's state events out to the SSE streams of this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._listeners: dict[str, set[queue.Queue]] = defaultdict(set)
        self._bus = None
        self.streams = 0

    def bus(self):
        """The shared bus, with the event subscriptions made on (re)start."""
        from bus.connection import shared_bus

        bus = shared_bus(wait=1.0)
        with self._lock:
            if bus is not self._bus:
                self._bus = bus
                bus.on_connect(self._subscribe)
        return bus

    async def _subscribe(self, nc) -> None:
        from bus import subjects

        await nc.subscribe(subjects.evt_run(None), cb=self._on_event)
        await nc.subscribe(subjects.evt_ti(None), cb=self._on_event)

    async def _on_event(self, msg) -> None:
        try:
            body = json.loads(msg.data)
        except ValueError:
            return
        kind = "run" if ".evt.run." in msg.subject else "ti"
        dag_id = body.get("dag_id")
        with self._lock:
            targets = list(self._listeners.get(dag_id, ()))
            if kind == "run":  # the DAG list follows every DAG's run states
                targets += self._listeners.get(ALL_DAGS, ())
        for target in targets:
            try:
                target.put_nowait((kind, body))
            except queue.Full:
                pass  # that browser resyncs from state.json when it sees "overflow"

    def listen(self, dag_id: str) -> queue.Queue:
        q: queue.Queue = queue.Queue(QUEUE_SIZE)
        with self._lock:
            self._listeners[dag_id].add(q)
        return q

    def unlisten(self, dag_id: str, q: queue.Queue) -> None:
        with self._lock:
            self._listeners[dag_id].discard(q)
            if not self._listeners[dag_id]:
                del self._listeners[dag_id]


hub = LiveHub()
_count_lock = threading.Lock()


def _sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, default=str)}\n\n"


def _limits() -> tuple[int, float]:
    return (int(current_app.config.get("UPDRAFT_SSE_MAX", 24)),
            float(current_app.config.get("UPDRAFT_SSE_MAX_SECONDS", 600)))


def _claim_stream() -> bool:
    limit, _ = _limits()
    with _count_lock:
        if hub.streams >= limit:
            return False
        hub.streams += 1
        return True


def _release_stream() -> None:
    with _count_lock:
        hub.streams -= 1


def _event_response(body: Iterator[str]) -> Response:
    return Response(body, mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _busy() -> Response:
    return Response("too many live streams on this web node; the page polls instead\n",
                    status=503, mimetype="text/plain", headers={"Retry-After": "30"})


@bp.route("/events/dag/<dag_id>")
@require(READ)
def dag_events(dag_id: str):
    """State changes of the runs and task instances of one DAG, as they happen."""
    return _state_stream(dag_id, {"dag_id": dag_id})


@bp.route("/events/dags")
@require(READ)
def all_dag_events():
    """Run state changes of every DAG, as they happen (the DAG list follows them)."""
    return _state_stream(ALL_DAGS, {"dag_id": None})


def _state_stream(key: str, hello: dict) -> Response:
    if not _claim_stream():
        return _busy()
    _, max_seconds = _limits()
    bus = hub.bus()
    q = hub.listen(key)

    def stream() -> Iterator[str]:
        try:
            yield "retry: 3000\n\n"
            yield _sse("hello", dict(hello, bus=bus.connected,
                                     error=None if bus.connected else
                                     f"the bus is down: {bus.last_error or 'not connected'}"))
            ends = time.monotonic() + max_seconds
            was_connected = bus.connected
            while time.monotonic() < ends:
                try:
                    kind, body = q.get(timeout=KEEPALIVE)
                except queue.Empty:
                    if bus.connected != was_connected:
                        was_connected = bus.connected
                        yield _sse("bus", {"connected": was_connected})
                    yield ": keepalive\n\n"
                    continue
                yield _sse(kind, body)
        finally:
            hub.unlisten(key, q)
            _release_stream()

    return _event_response(stream())


@bp.route("/events/log/<dag_id>/<run_id>/<task_id>/<int(signed=True):map_index>/<int:try_number>")
@require(READ)
def log_events(dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int):
    """A try's log: the file so far, then live lines from the bus until the try ends. The file
    is found from the task instance in the store (404 if there is none), never from the URL."""
    from flask import abort

    from bus import subjects
    from updraft.store.engine import session_scope
    from updraft.store.models import TaskInstanceModel
    from web.queries import log_path_for

    if not -1 <= map_index <= 2**31 - 1 or try_number > 2**31 - 1:
        abort(404, "no such task instance")
    with session_scope() as session:
        ti = session.get(TaskInstanceModel, (dag_id, run_id, task_id, map_index))
        path = log_path_for(ti, try_number, upcoming=True) if ti is not None else None
    if path is None:
        abort(404, f"no try {try_number} of task {task_id!r} in run {run_id!r} of {dag_id!r}")
    from web.masking import register_known_secrets

    register_known_secrets()  # the lines streamed below pass through the masker
    if not _claim_stream():
        return _busy()
    _, max_seconds = _limits()
    lines: queue.Queue = queue.Queue(QUEUE_SIZE * 5)
    bus = hub.bus()
    subscription = None

    async def on_line(msg) -> None:
        try:
            lines.put_nowait(json.loads(msg.data))
        except (ValueError, queue.Full):
            pass

    if bus.connected:
        try:
            subscription = bus.call(bus.nc.subscribe(
                subjects.log(dag_id, run_id, task_id, try_number, map_index), cb=on_line),
                timeout=5)
        except Exception:
            log.debug("could not subscribe to live log lines", exc_info=True)

    def stream() -> Iterator[str]:
        sent = 0
        try:
            yield "retry: 5000\n\n"
            for event, count in _file_since(path, 0):
                sent = count
                yield event
            yield _sse("hello", {"live": subscription is not None})
            ends = time.monotonic() + max_seconds
            last_check = 0.0
            while time.monotonic() < ends:
                try:
                    item = lines.get(timeout=0.5)
                except queue.Empty:
                    item = None
                if item is not None:
                    if item.get("eof"):
                        yield from _rest_of_file(path, sent)
                        yield _sse("end", {"reason": "the try's log ended"})
                        return
                    seq = int(item.get("seq", 0))
                    if seq > sent:
                        sent = seq
                        yield _sse("lines", {"lines": [redact(str(item.get("line", "")))],
                                             "from": seq})
                    continue
                # The file (when this node sees it) and the bus number lines the same way,
                # so following both sends each line once, whichever comes first.
                for event, count in _file_since(path, sent):
                    sent = count
                    yield event
                if time.monotonic() - last_check >= 2.0:
                    last_check = time.monotonic()
                    state = _try_state(dag_id, run_id, task_id, map_index, try_number)
                    if state != "running":
                        for event, count in _file_since(path, sent, final=True):
                            sent = count
                            yield event
                        yield _sse("end", {"reason": f"the try is {state}"})
                        return
                    yield ": keepalive\n\n"
        finally:
            if subscription is not None:
                try:
                    bus.call(subscription.unsubscribe(), timeout=2)
                except Exception:
                    log.debug("unsubscribing a live log failed", exc_info=True)
            _release_stream()

    return _event_response(stream())


def _read(path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _file_since(path, sent: int, final: bool = False):
    """The lines of the file after the first ``sent`` (a last line without its newline only
    when ``final``: while the try runs it may still be growing)."""
    text = _read(path)
    chunk = text.split("\n")
    if chunk and (chunk[-1] == "" or not final):
        chunk.pop()
    if len(chunk) > sent:
        yield _sse("lines", {"lines": [redact(line) for line in chunk[sent:]],
                             "from": sent + 1}), len(chunk)


def _rest_of_file(path, sent: int) -> Iterator[str]:
    for event, _count in _file_since(path, sent, final=True):
        yield event


def _try_state(dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int) -> str:
    """``running`` while this try may still write; else the state it ended in."""
    from sqlalchemy import select

    from updraft.store.engine import session_scope
    from updraft.store.models import TaskInstanceModel, TaskInstanceTry

    with session_scope() as session:
        ended = session.scalar(select(TaskInstanceTry.state).where(
            TaskInstanceTry.dag_id == dag_id, TaskInstanceTry.run_id == run_id,
            TaskInstanceTry.task_id == task_id, TaskInstanceTry.map_index == map_index,
            TaskInstanceTry.try_number == try_number))
        if ended is not None:
            return ended
        row = session.execute(select(TaskInstanceModel.state, TaskInstanceModel.try_number)
                              .where(TaskInstanceModel.dag_id == dag_id,
                                     TaskInstanceModel.run_id == run_id,
                                     TaskInstanceModel.task_id == task_id,
                                     TaskInstanceModel.map_index == map_index)).first()
    if row is None:
        return "removed"
    if row.try_number == try_number and row.state in IN_FLIGHT_STATES:
        return "running"
    if row.try_number < try_number:
        return "running"  # not started yet: wait for it
    return row.state
