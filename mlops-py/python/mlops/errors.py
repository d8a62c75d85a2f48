"""Exceptions raised by :mod:`mlops`, all rooted at :class:`MlopsError`.

They are made by the Rust extension and raised there directly; this module only names them.
Those that are also a built-in kind have both bases: a missing model folder is a
``FileNotFoundError``, a bad parameter a ``ValueError``.
"""

from mlops._mlops_rs import (
    ConflictError,
    DatabaseError,
    DecodeError,
    EmptyDatasetError,
    InvalidParameterError,
    KafkaError,
    ManifestError,
    MlopsError,
    MlopsFileNotFoundError,
    MlopsIOError,
    MlopsPermissionError,
    PackageError,
)

__all__ = [
    "MlopsError",
    "MlopsFileNotFoundError",
    "MlopsPermissionError",
    "MlopsIOError",
    "InvalidParameterError",
    "DecodeError",
    "ManifestError",
    "EmptyDatasetError",
    "PackageError",
    "DatabaseError",
    "KafkaError",
    "ConflictError",
]
