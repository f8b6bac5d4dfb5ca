"""``updraft web``: serve the web UI and the REST API with waitress."""

from __future__ import annotations

import logging
import signal

import click

from updraft.cli.db import store_command


@click.command("web")
@click.option("--host", default=None, help="Address to bind (default: [web] host, 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default: [web] port, 8080).")
@click.option("--threads", type=int, default=32, show_default=True,
              help="Worker threads of the WSGI server.")
@store_command
def web(host: str | None, port: int | None, threads: int) -> None:
    """Run the web server: the UI, the REST API under /api/v1 and /metrics."""
    import waitress

    from updraft.config import conf
    from web.app import create_app

    logging.basicConfig(level=logging.INFO,
                        format="[%(asctime)s] %(levelname)s %(name)s: %(message)s")
    host = host or conf.get("web", "host")
    port = port if port is not None else conf.getint("web", "port")
    from web.heartbeat import WebHeartbeat

    def stop(signum, _frame):
        logging.getLogger(__name__).info("Signal %d: stopping the web server", signum)
        raise SystemExit(0)

    # Before the socket listens: a stop that comes as soon as the port is open must find
    # the handler in place (the default action would close nothing).
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    app = create_app()
    server = waitress.create_server(app, host=host, port=port, threads=threads,
                                    ident="updraft")
    click.echo(f"Updraft web on http://{host}:{port}/ (API: /api/v1, metrics: /metrics)")
    heartbeat = None
    try:
        heartbeat = WebHeartbeat(f"http://{host}:{port}/").start()
        server.run()
    finally:
        server.close()
        if heartbeat is not None:
            heartbeat.stop()
