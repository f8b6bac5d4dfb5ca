"""Exceptions that DAG authors raise or catch, with Airflow's meaning (and, via compat, names)."""

from __future__ import annotations

import os
import re
import sys


class UpdraftException(Exception):
    """Base of Updraft's own errors."""

    status_code = 500


class UpdraftNotFoundException(UpdraftException):
    """Something asked for (a DAG, a connection, a variable, a run) does not exist."""

    status_code = 404


class UpdraftBadRequest(UpdraftException):
    """A request whose content is wrong."""

    status_code = 400


class UpdraftConfigException(UpdraftException):
    """Configuration that cannot work."""


class UpdraftSkipException(UpdraftException):
    """Raise inside a task to mark it skipped."""


class UpdraftFailException(UpdraftException):
    """Raise inside a task to fail it at once, without retrying."""


class UpdraftSensorTimeout(UpdraftException):
    """A sensor did not succeed within its timeout."""


class UpdraftTaskTimeout(UpdraftException):
    """A try ran past its execution_timeout."""


class UpdraftTaskTerminated(BaseException):
    """The try's process was told to stop (SIGTERM): a timeout, a cancel, a mark, a shutdown.

    A BaseException, as Airflow's ``AirflowTaskTerminated``, so that task code catching
    ``Exception`` does not swallow the stop.
    """


class UpdraftRescheduleException(UpdraftException):
    """A sensor in reschedule mode asks to be poked again at ``reschedule_date``."""

    def __init__(self, reschedule_date):
        super().__init__(reschedule_date)
        self.reschedule_date = reschedule_date


class TaskDeferred(BaseException):
    """Raised by ``BaseOperator.defer``: the try gives up its slot until ``trigger`` fires,
    then a new run of the same try resumes in ``method_name(context, event=...)``.

    A BaseException, as in Airflow, so that a task's own ``except Exception`` does not
    swallow it."""

    def __init__(self, *, trigger, method_name: str | None, kwargs: dict | None = None,
                 timeout=None) -> None:
        super().__init__()
        self.trigger = trigger
        self.method_name = method_name
        self.kwargs = kwargs
        self.timeout = timeout
        if timeout is not None and not hasattr(timeout, "total_seconds"):
            raise ValueError("timeout must be a timedelta or None")

    def __repr__(self) -> str:
        return f"<TaskDeferred trigger={self.trigger} method={self.method_name}>"


#: The reason a deferral that timed out fails its task with (Airflow's wording).
DEFERRAL_TIMEOUT_ERROR = "Trigger/execution timeout"


class TaskDeferralError(UpdraftException):
    """A deferred task's trigger failed: the resumed try fails with its reason."""


class TaskDeferralTimeout(TaskDeferralError):
    """A deferred task's trigger did not fire within the deferral's timeout."""


class DagDefinitionError(UpdraftException, ValueError):
    """A DAG file that builds an invalid DAG."""


class DagCycleException(DagDefinitionError):
    """The dependencies of a DAG form a cycle."""


class DuplicateTaskIdFound(DagDefinitionError):
    """Two tasks of one DAG have the same id."""


class TaskAlreadyInTaskGroup(DagDefinitionError):
    """A task was put in two task groups."""


class InvalidIdentifier(DagDefinitionError):
    """A dag id, task id or group id with characters Updraft does not allow."""


class ParamValidationError(UpdraftException, ValueError):
    """A param value that does not match its schema."""

    status_code = 400


class DagNotFound(UpdraftNotFoundException):
    """No DAG with that id."""


class DagRunNotFound(UpdraftNotFoundException):
    """No run with that id."""


class TaskNotFound(UpdraftNotFoundException):
    """No task with that id."""


class UpdraftConflict(UpdraftException):
    """A change refused because the state it was based on changed meanwhile (HTTP 409)."""


class DagRunAlreadyExists(UpdraftBadRequest):
    """A run with that run id (or logical date) exists already."""


class XComForMappedNotFound(UpdraftNotFoundException):
    """A mapped task pulled as a whole has no XCom for one of its indexes."""


class UnmappableXComTypePushed(UpdraftException):
    """A task that feeds ``expand`` returned something that is neither a list nor a dict."""


class NotSupportedByUpdraft(UpdraftException):
    """An Airflow feature Updraft does not have; never ignored silently.

    The message ends with ``, in <file>:<line>``: the line of user code (the DAG file) that
    asked for the feature, found by walking the stack when the location is not given.
    """

    def __init__(self, message: str = "", *args) -> None:
        if message and not _LOCATED.search(message):
            location = user_code_location()
            if location:
                message = f"{message}, in {location}"
        super().__init__(message, *args)


_LOCATED = re.compile(r", in \S.*:\d+$")
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def user_code_location(skip_frames: int = 1) -> str | None:
    """``file:line`` of the innermost frame outside Updraft and importlib (the DAG file)."""
    frame = sys._getframe(skip_frames)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not (filename.startswith((_PACKAGE_DIR, "<frozen")) or
                os.sep + "importlib" + os.sep in filename):
            return f"{filename}:{frame.f_lineno}"
        frame = frame.f_back
    return None


class RemovedInUpdraftWarning(DeprecationWarning):
    """Something that works now and will go away."""
