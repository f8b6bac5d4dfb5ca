"""``updraft plugins``: every extension this installation registers, where from, and what fails.

It reads the entry-point groups ``updraft.<kind>`` and the plugins folder, loads every
extension (so a broken one shows up here rather than in a running node), and lists them by
kind with their source: the entry point and its distribution, or the plugins-folder file and
plugin. Load errors follow, each naming the extension, where it was registered and the cause.
Exit code 0: everything loads; 1: at least one load error.
"""

from __future__ import annotations

import json

import click

from updraft.cli.options import output_option, print_rows

COLUMNS = ["kind", "name", "target", "source", "status"]


def collect(load: bool = True) -> dict:
    """What ``updraft plugins -o json`` prints: the folder, its plugins, every extension and
    every load error."""
    from updraft.plugins import registry
    from updraft.plugins.folder import plugins_folder

    extensions = []
    for kind in registry.KINDS:
        for name, ext in sorted(registry.extensions(kind).items()):
            status = "registered"
            if load:
                try:
                    registry.load(kind, name)
                    status = "ok"
                except registry.ExtensionError:
                    status = "error"
            extensions.append({"kind": kind, "name": name, "target": ext.target,
                               "source": ext.source, "distribution": ext.distribution,
                               "status": status})
    plugins = [{"name": name, "source": source} for name, source in registry.folder_plugins()]
    errors = [{"kind": e.kind, "name": e.name, "source": e.source, "error": e.error}
              for e in registry.load_errors()]
    return {"plugins_folder": str(plugins_folder()), "plugins": plugins,
            "extensions": extensions, "errors": errors}


@click.command("plugins")
@output_option
@click.option("--no-load", is_flag=True, help="List what is registered without importing it.")
def plugins(output: str, no_load: bool) -> None:
    """List every extension (executors, node commands, timetables, priority-weight
    strategies, macros, listeners, web views, secrets backends, notifiers) with where it
    was registered, and every extension that fails to load."""
    report = collect(load=not no_load)
    if output == "json":
        click.echo(json.dumps(report, indent=2))
    else:
        click.echo(f"Plugins folder: {report['plugins_folder']}"
                   + ("" if report["plugins"] else " (no plugins)"))
        for plugin in report["plugins"]:
            click.echo(f"  plugin {plugin['name']!r}: {plugin['source']}")
        click.echo("")
        print_rows([{c: e[c] for c in COLUMNS} for e in report["extensions"]], output, COLUMNS)
        if report["errors"]:
            click.echo("", err=True)
            click.echo(f"{len(report['errors'])} load error(s):", err=True)
            for error in report["errors"]:
                what = f"{error['kind']} {error['name']!r}" if error["kind"] else \
                    repr(error["name"])
                click.echo(f"  {what} from {error['source']}: {error['error']}", err=True)
    if report["errors"]:
        raise SystemExit(1)
