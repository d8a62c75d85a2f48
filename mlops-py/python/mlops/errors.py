"""Exceptions raised by :mod:`mlops`, all rooted at :class:`MlopsError`."""

from __future__ import annotations

import functools
from typing import Any, Callable, TypeVar

from mlops._mlops_rs import NativeError

F = TypeVar("F", bound=Callable[..., Any])


class MlopsError(Exception):
    """Base class of every error raised by mlops."""


class MlopsFileNotFoundError(MlopsError, FileNotFoundError):
    """A file or folder does not exist."""


class MlopsPermissionError(MlopsError, PermissionError):
    """A file or folder cannot be read or written."""


class MlopsIOError(MlopsError, OSError):
    """Another operating-system error."""


class InvalidParameterError(MlopsError, ValueError):
    """A parameter is out of range or malformed; the message names it."""


class DecodeError(MlopsError, ValueError):
    """An image could not be decoded; the message names the file."""


class ManifestError(MlopsError, ValueError):
    """A manifest line or row is malformed; the message names it."""


class EmptyDatasetError(MlopsError, ValueError):
    """A data set has no usable classes or images."""


class PackageError(MlopsError):
    """A model package is missing, corrupted or of an unknown format."""


class DatabaseError(MlopsError):
    """A database operation failed (passwords are never shown)."""


class KafkaError(MlopsError):
    """A Kafka operation failed."""


_KINDS = {
    "not_found": MlopsFileNotFoundError,
    "permission": MlopsPermissionError,
    "io": MlopsIOError,
    "invalid_parameter": InvalidParameterError,
    "decode": DecodeError,
    "manifest": ManifestError,
    "empty_dataset": EmptyDatasetError,
    "package": PackageError,
    "database": DatabaseError,
    "kafka": KafkaError,
}


def translate(error: NativeError) -> MlopsError:
    """The :class:`MlopsError` for an error of the native module."""
    kind, message = error.args
    return _KINDS.get(kind, MlopsError)(message)


def native(function: F) -> F:
    """Decorator: errors of the native module become :class:`MlopsError` subclasses."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except NativeError as e:
            raise translate(e) from None

    return wrapper  # type: ignore[return-value]
