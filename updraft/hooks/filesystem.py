"""FSHook: a folder on the worker's filesystem, named by an ``fs`` connection's extra ``path``."""

from __future__ import annotations

from updraft.hooks.base import BaseHook


class FSHook(BaseHook):
    """The base path of an ``fs`` connection (extra ``{"path": "/data"}``)."""

    conn_name_attr = "fs_conn_id"
    default_conn_name = "fs_default"
    conn_type = "fs"
    hook_name = "File (path)"

    def __init__(self, fs_conn_id: str = default_conn_name, **kwargs) -> None:
        super().__init__(**kwargs)
        self.fs_conn_id = fs_conn_id
        self.basepath = self._base_path(fs_conn_id)

    def _base_path(self, conn_id: str) -> str:
        from updraft.exceptions import UpdraftNotFoundException

        try:
            conn = self.get_connection(conn_id)
        except UpdraftNotFoundException:
            if conn_id != self.default_conn_name:
                raise
            # Airflow creates fs_default with path "/"; behave as if it existed.
            return "/"
        return conn.extra_dejson.get("path", "")

    def get_conn(self) -> None:
        return None

    def get_path(self) -> str:
        """The folder that relative file paths are resolved against."""
        return self.basepath
