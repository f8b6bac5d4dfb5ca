"""``@asset`` and ``@asset.multi``: a function that materialises assets becomes a one-task DAG.

``@asset(schedule=...)`` on ``def orders(self, context, raw_orders): ...`` defines the asset
``orders`` and a DAG ``orders`` whose task ``orders`` has it as its outlet. Parameters name
what the function receives: ``self`` (the asset), ``context``, ``outlet_events``, and any other
parameter without a default is an inlet asset referred to by name (``Asset.ref(name=...)``),
passed as that asset. ``@asset.multi(outlets=[a, b], schedule=...)`` has several outlets and
its DAG is named after the function. As in Airflow 3.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Collection, Iterator, Mapping
from typing import Any

from updraft.assets import Asset, AssetAll, BaseAsset
from updraft.operators.python import PythonOperator

_NOT_INLETS = ("self", "context", "outlet_events")


def _check_arguments(func: Callable) -> None:
    for name, param in inspect.signature(func).parameters.items():
        if param.kind == inspect.Parameter.VAR_POSITIONAL:
            raise TypeError(f"wildcard '*{name}' is not supported in @asset")
        if param.kind == inspect.Parameter.VAR_KEYWORD:
            raise TypeError(f"wildcard '**{name}' is not supported in @asset")
        if param.kind == inspect.Parameter.POSITIONAL_ONLY and param.default is param.empty:
            raise TypeError(f"positional-only argument '{name}' without a default is not "
                            "supported in @asset")


class AssetMainOperator(PythonOperator):
    """The task of an ``@asset`` DAG: calls the function with its asset, context and inlets."""

    def __init__(self, *, definition_name: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._definition_name = definition_name

    @classmethod
    def from_definition(cls, definition: Any) -> AssetMainOperator:
        function = definition._function
        _check_arguments(function)
        return cls(
            task_id=function.__name__,
            inlets=[Asset.ref(name=name) for name, param in
                    inspect.signature(function).parameters.items()
                    if name not in _NOT_INLETS and param.default is param.empty],
            outlets=list(definition.iter_outlets()),
            python_callable=function,
            definition_name=definition.name,
        )

    def determine_kwargs(self, context: Mapping[str, Any]) -> dict[str, Any]:
        from updraft.task_services import task_services

        services = task_services(context)

        def fetch(name: str) -> Asset:
            found = services.get_asset(name=name)
            if found is None:
                raise KeyError(f"asset {name!r} is not known to the store (no DAG defines it)")
            return Asset(name=found["name"], uri=found["uri"], group=found.get("group"),
                         extra=found.get("extra") or {})

        values: dict[str, Any] = {}
        for key, param in inspect.signature(self.python_callable).parameters.items():
            if param.default is not param.empty:
                values[key] = param.default
            elif key == "self":
                values[key] = fetch(self._definition_name)
            elif key == "context":
                values[key] = context
            elif key == "outlet_events":
                values[key] = context["outlet_events"]
            else:
                values[key] = fetch(key)
        return values


def _instantiate_task(definition: Any) -> None:
    from updraft.decorators import TaskDecorator

    function = definition._function
    if isinstance(function, TaskDecorator):
        if "outlets" in function.kwargs:
            raise TypeError("@task decorator with 'outlets' argument is not supported in @asset")
        function.kwargs["outlets"] = list(definition.iter_outlets())
        function()
    else:
        AssetMainOperator.from_definition(definition)


class _DagFactory:
    """The DAG arguments ``@asset`` and ``@asset.multi`` take."""

    def __init__(self, *, schedule: Any, is_paused_upon_creation: bool | None = None,
                 dag_id: str | None = None, dag_display_name: str | None = None,
                 description: str | None = None, params: dict | None = None,
                 on_success_callback: Any = None, on_failure_callback: Any = None,
                 access_control: dict | None = None, owner_links: dict | None = None,
                 tags: Collection[str] = (), asset_batch_size: int = 1) -> None:
        self.dag_kwargs = dict(
            schedule=schedule, is_paused_upon_creation=is_paused_upon_creation,
            dag_display_name=dag_display_name, description=description, params=params,
            on_success_callback=on_success_callback, on_failure_callback=on_failure_callback,
            access_control=access_control, owner_links=owner_links or {}, tags=list(tags),
            asset_batch_size=asset_batch_size)
        self.dag_id = dag_id

    def create_dag(self, *, default_dag_id: str, fileloc: str | None):
        from updraft.dag import DAG

        dag_id = self.dag_id or default_dag_id
        options = dict(self.dag_kwargs)
        options["dag_display_name"] = options["dag_display_name"] or dag_id
        return DAG(dag_id, catchup=False, full_filepath=fileloc, **options)


class AssetDefinition(Asset):
    """The asset an ``@asset`` function defines; building it builds its DAG."""

    def __init__(self, *, name: str, uri: str, group: str, extra: dict, watchers: list,
                 function: Callable, source: asset) -> None:
        super().__init__(name=name, uri=uri, group=group, extra=extra, watchers=watchers)
        self._function = function
        self._source = source
        with source.create_dag(default_dag_id=self.name, fileloc=_fileloc(function)):
            _instantiate_task(self)

    def iter_outlets(self) -> Iterator[BaseAsset]:
        yield Asset(name=self.name, uri=self.uri, group=self.group, extra=self.extra,
                    watchers=self.watchers)


class MultiAssetDefinition(AssetAll):
    """What ``@asset.multi`` returns: all its outlets (usable in schedules)."""

    def __init__(self, *, function: Callable, source: Any, name: str) -> None:
        super().__init__(*source.outlets)
        self.name = name
        self._function = function
        self._source = source
        with source.create_dag(default_dag_id=function.__name__, fileloc=_fileloc(function)):
            _instantiate_task(self)

    def iter_outlets(self) -> Iterator[BaseAsset]:
        yield from self.objects


def _fileloc(function: Any) -> str | None:
    target = getattr(function, "function", function)
    try:
        return inspect.getsourcefile(target)
    except TypeError:
        return None


class asset(_DagFactory):  # noqa: N801  (Airflow's name)
    """``@asset(schedule=..., uri=..., name=..., group=..., extra=...)``."""

    def __init__(self, *, name: str | None = None, uri: Any = None, group: str = "asset",
                 extra: dict | None = None, watchers: list | None = None, **dag_kwargs: Any):
        super().__init__(**dag_kwargs)
        self.name = name
        self.uri = uri
        self.group = group
        self.extra = dict(extra or {})
        self.watchers = list(watchers or [])

    class multi(_DagFactory):  # noqa: N801
        """``@asset.multi(outlets=[...], schedule=...)``: one task emitting several assets."""

        def __init__(self, *, outlets: Collection[BaseAsset], **dag_kwargs: Any) -> None:
            super().__init__(**dag_kwargs)
            self.outlets = list(outlets)

        def __call__(self, function: Callable) -> MultiAssetDefinition:
            name = getattr(function, "__name__", "")
            if name != getattr(function, "__qualname__", name):
                raise ValueError("nested function not supported")
            if not self.outlets:
                raise ValueError("no outlets provided")
            return MultiAssetDefinition(function=function, source=self, name=name)

    def __call__(self, function: Callable) -> AssetDefinition:
        fname = getattr(function, "__name__", "")
        if fname != getattr(function, "__qualname__", fname):
            raise ValueError("nested function not supported")
        name = self.name or fname
        return AssetDefinition(name=name, uri=name if self.uri is None else str(self.uri),
                               group=self.group, extra=self.extra, watchers=self.watchers,
                               function=function, source=self)


__all__ = ["AssetDefinition", "AssetMainOperator", "MultiAssetDefinition", "asset"]
