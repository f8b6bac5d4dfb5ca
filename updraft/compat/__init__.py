"""Run Airflow DAG files unchanged: ``import airflow`` served by Updraft's own classes.

The DagBag calls :func:`install_if_enabled` before importing DAG files. The hook is on when
``[core] airflow_compat`` is true (the default) and the real ``airflow`` package is not
importable; :func:`install` / :func:`uninstall` switch it by hand (tests). What is served, and
what is reported as not supported, is one table: :mod:`updraft.compat.airflow_map`.
"""

from __future__ import annotations

import sys
import threading

__all__ = ["install", "install_if_enabled", "is_installed", "real_airflow_available",
           "uninstall"]

_lock = threading.Lock()
_real_airflow: bool | None = None


def _finder():
    for entry in sys.meta_path:
        if type(entry).__name__ == "AirflowCompatFinder" and \
                type(entry).__module__ == "updraft.compat.importer":
            return entry
    return None


def is_installed() -> bool:
    """Whether ``import airflow`` is currently served by Updraft."""
    return _finder() is not None


def real_airflow_available() -> bool:
    """Whether the real Apache Airflow package is importable (then the hook stays off)."""
    global _real_airflow
    if _real_airflow is None:
        from importlib.machinery import PathFinder

        _real_airflow = PathFinder.find_spec("airflow") is not None
    return _real_airflow


def install() -> None:
    """Serve ``airflow`` and its submodules from Updraft (idempotent)."""
    from updraft.compat.importer import AirflowCompatFinder

    with _lock:
        if _finder() is None:
            sys.meta_path.insert(0, AirflowCompatFinder())


def uninstall() -> None:
    """Stop serving ``airflow``, and forget the ``airflow`` modules served so far."""
    with _lock:
        finder = _finder()
        if finder is not None:
            sys.meta_path.remove(finder)
        for name, module in list(sys.modules.items()):
            if (name == "airflow" or name.startswith("airflow.")) and \
                    getattr(module, "__updraft_compat__", False):
                del sys.modules[name]


def install_if_enabled() -> bool:
    """Install the hook if ``[core] airflow_compat`` is on and Airflow is not installed
    (uninstall it if the setting was turned off); return whether it is installed."""
    from updraft.config import conf

    if not conf.getboolean("core", "airflow_compat"):
        if is_installed():
            uninstall()
        return False
    if is_installed():
        return True
    if real_airflow_available():
        return False
    install()
    return True
