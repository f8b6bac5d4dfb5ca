"""DAG and task params: defaults, JSON Schema validation, and the run-time params dict.

``Param(5, type="integer", minimum=1)`` declares a param; a run's ``conf`` overrides the
defaults and the result is validated against each schema before the run may start.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, MutableMapping
from typing import Any

from updraft.exceptions import ParamValidationError


class _NoValue:
    def __repr__(self) -> str:
        return "NOTSET"

    def __bool__(self) -> bool:
        return False


NO_VALUE: Any = _NoValue()


class Param:
    """A param with a default value, a JSON Schema and a description."""

    CLASS_IDENTIFIER = "__class"

    def __init__(self, default: Any = NO_VALUE, description: str | None = None, **schema: Any):
        self.value = default
        self.description = description
        self.schema = schema
        if default is not NO_VALUE and default is not None:
            self._check_json(default)

    def __repr__(self) -> str:
        return f"Param({self.value!r}, schema={self.schema!r})"

    @staticmethod
    def _check_json(value: Any) -> None:
        try:
            json.dumps(value, default=_json_dates)
        except (TypeError, ValueError) as exc:
            raise ParamValidationError(f"param value {value!r} is not JSON-serializable: "
                                       f"{exc}") from None

    def resolve(self, value: Any = NO_VALUE, suppress_exception: bool = False,
                name: str = "") -> Any:
        """Return ``value`` (or the default) after validating it against the schema."""
        import jsonschema
        from jsonschema import FormatChecker

        final = self.value if value is NO_VALUE else value
        label = f"param {name!r}" if name else "param"
        if final is NO_VALUE:
            if suppress_exception:
                return None
            raise ParamValidationError(f"{label} has no value and no default; it is required")
        try:
            jsonschema.validate(final, self.schema, format_checker=FormatChecker())
        except jsonschema.ValidationError as exc:
            if suppress_exception:
                return None
            raise ParamValidationError(f"invalid value {final!r} for {label}: "
                                       f"{exc.message}") from None
        return final

    def has_value(self) -> bool:
        return self.value is not NO_VALUE

    def dump(self) -> dict:
        """The JSON form stored with the serialized DAG (value None when there is none)."""
        return {"value": None if self.value is NO_VALUE else self.value,
                "has_value": self.value is not NO_VALUE,
                "description": self.description, "schema": self.schema}

    @classmethod
    def load(cls, data: dict) -> "Param":
        value = data.get("value") if data.get("has_value", True) else NO_VALUE
        return cls(value, description=data.get("description"), **(data.get("schema") or {}))


def _json_dates(value: Any) -> Any:
    import datetime as _dt

    if isinstance(value, (_dt.date, _dt.datetime, _dt.time)):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON-serializable")


class ParamsDict(MutableMapping):
    """A dict of params whose items are Param objects; reading gives their values."""

    def __init__(self, values: Mapping[str, Any] | None = None, suppress_exception: bool = False):
        self._dict: dict[str, Param] = {}
        self.suppress_exception = suppress_exception
        for key, value in (values or {}).items():
            self[key] = value

    def __setitem__(self, key: str, value: Any) -> None:
        if isinstance(value, Param):
            self._dict[key] = value
        elif key in self._dict:
            self._dict[key].value = value
        else:
            self._dict[key] = Param(value)

    def __getitem__(self, key: str) -> Any:
        param = self._dict[key]
        return None if param.value is NO_VALUE else param.value

    def __delitem__(self, key: str) -> None:
        del self._dict[key]

    def __iter__(self):
        return iter(self._dict)

    def __len__(self) -> int:
        return len(self._dict)

    def __repr__(self) -> str:
        return repr(self.dump())

    def __copy__(self) -> "ParamsDict":
        return ParamsDict({k: copy.copy(v) for k, v in self._dict.items()})

    def __deepcopy__(self, memo) -> "ParamsDict":
        return ParamsDict({k: copy.deepcopy(v, memo) for k, v in self._dict.items()})

    def get_param(self, key: str) -> Param:
        return self._dict[key]

    def items_params(self):
        return self._dict.items()

    def update(self, other=(), **kwargs) -> None:  # type: ignore[override]
        if isinstance(other, ParamsDict):
            for key, param in other._dict.items():
                self._dict[key] = copy.deepcopy(param)
        else:
            for key, value in dict(other, **kwargs).items():
                self[key] = value

    def dump(self) -> dict[str, Any]:
        """Plain values, as tasks see them."""
        return {k: (None if p.value is NO_VALUE else p.value) for k, p in self._dict.items()}

    def validate_defaults(self, dag_id: str) -> None:
        """Check defaults that are set against their schemas (missing ones are checked at run)."""
        for key, param in self._dict.items():
            if param.has_value() and param.schema:
                try:
                    param.resolve(name=key)
                except ParamValidationError as exc:
                    from updraft.exceptions import DagDefinitionError

                    raise DagDefinitionError(f"DAG {dag_id!r}: default of {exc}") from None

    def resolve(self, conf: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Values for a run: conf overrides defaults; every value is validated; raise on error."""
        conf = dict(conf or {})
        result: dict[str, Any] = {}
        errors: list[str] = []
        for key, param in self._dict.items():
            try:
                result[key] = param.resolve(conf.pop(key, NO_VALUE), name=key)
            except ParamValidationError as exc:
                errors.append(str(exc))
        if errors:
            raise ParamValidationError("; ".join(errors))
        # conf keys that are not declared params are passed through, as Airflow does.
        result.update(conf)
        return result

    def serialize(self) -> dict[str, dict]:
        return {k: p.dump() for k, p in self._dict.items()}

    @classmethod
    def deserialize(cls, data: Mapping[str, dict]) -> "ParamsDict":
        return cls({k: Param.load(v) for k, v in data.items()})
