"""Per-thread class attributes for the authoring contexts (``with DAG():``, task groups).

Workers parse DAG files and build mapped operators in several threads at once (Dask worker
threads); a context stack shared by the whole process would let one thread's DAG swallow
another's tasks. ``PerThreadAttributes`` is a metaclass whose listed attributes read and
write a value private to the calling thread.
"""

from __future__ import annotations

import threading
from typing import Any


class PerThreadAttributes(type):
    """Metaclass: the names in ``__per_thread__`` (name -> factory) are per-thread."""

    def __new__(mcs, name, bases, namespace, **kwargs):
        cls = super().__new__(mcs, name, bases, namespace, **kwargs)
        cls._thread_values = threading.local()
        return cls

    def __getattribute__(cls, name: str) -> Any:
        factories = type.__getattribute__(cls, "__dict__").get("__per_thread__")
        if factories and name in factories:
            local = type.__getattribute__(cls, "_thread_values")
            if not hasattr(local, name):
                setattr(local, name, factories[name]())
            return getattr(local, name)
        return type.__getattribute__(cls, name)

    def __setattr__(cls, name: str, value: Any) -> None:
        factories = type.__getattribute__(cls, "__dict__").get("__per_thread__")
        if factories and name in factories:
            setattr(type.__getattribute__(cls, "_thread_values"), name, value)
            return
        type.__setattr__(cls, name, value)
