"""The service's errors as Airflow sees them: the same classes, raised as Airflow exceptions.

The service core (``airflow_provider_importexport.exceptions``) is plain Python so the emulator
and the manifest model run without Airflow. At the Airflow face (hook calls, operator and sensor
methods) each error is re-raised as its *Airflow twin*: a subclass of the core class and of
``AirflowFailException`` (non-retryable errors: the task fails without retries) or
``AirflowException`` (the rest: Airflow's retries apply). ``except JobNotFoundError`` keeps
working, and so does ``except AirflowFailException``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

from airflow.sdk.exceptions import AirflowException, AirflowFailException

from airflow_provider_importexport.exceptions import ImportExportError, NonRetryableError, restore_error

_F = TypeVar("_F", bound=Callable[..., Any])


_TWINS: dict[type[ImportExportError], type[ImportExportError]] = {}


def airflow_class(cls: type[ImportExportError]) -> type[ImportExportError]:
    """The twin of a core error class: same name, same ``code``, plus the Airflow base (made once)."""
    if issubclass(cls, AirflowException):
        return cls
    if cls not in _TWINS:
        _TWINS[cls] = _make_twin(cls)
    return _TWINS[cls]


def _make_twin(cls: type[ImportExportError]) -> type[ImportExportError]:
    airflow_base = AirflowFailException if issubclass(cls, NonRetryableError) else AirflowException
    namespace = {
        "__module__": cls.__module__,
        "__qualname__": cls.__qualname__,
        "__doc__": cls.__doc__,
        "__reduce__": _reduce_twin,
    }
    return cast("type[ImportExportError]", type(cls.__name__, (cls, airflow_base), namespace))


def as_airflow_error(error: ImportExportError) -> ImportExportError:
    """The same error (message, code, job id, problems, cause, traceback) as its Airflow twin."""
    twin_class = airflow_class(type(error))
    if type(error) is twin_class:
        return error
    twin = twin_class.__new__(twin_class)
    twin.args = error.args
    twin.__dict__.update(error.__dict__)
    twin.__cause__ = error.__cause__
    twin.__context__ = error.__context__
    twin.__suppress_context__ = error.__suppress_context__
    return twin.with_traceback(error.__traceback__)


def fails_fast(method: _F) -> _F:
    """Raise the provider's errors from an operator or sensor method as their Airflow twins."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except ImportExportError as error:
            twin = as_airflow_error(error)
            if twin is error:
                raise
            raise twin from error.__cause__

    return cast("_F", wrapper)


def _reduce_twin(self: ImportExportError) -> tuple[Any, ...]:
    # A twin class is made at run time, so pickle refers to its core class (the first base).
    return (_restore_twin, (type(self).__mro__[1], self.args, self.__dict__))


def _restore_twin(core_class: type[ImportExportError], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    return as_airflow_error(restore_error(core_class, args, state))
