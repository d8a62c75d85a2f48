"""The live half: load manifests into PostgreSQL, stream predictions exactly once, and Kafka."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Sequence, Union

from mlops import _mlops_rs as _rs
from mlops.data import Manifest, PathLike
from mlops.model import Model

Progress = Callable[[Dict[str, Any]], None]


def generate(url: Optional[str], manifests: Sequence[Manifest], *, drop: bool = False) -> int:
    """Creates the ``cargo`` table (dropping it only with ``drop``) and bulk-loads the manifests
    with COPY; returns the rows loaded. ``url=None`` uses the ``PG*`` environment variables.

    Dropping ``cargo`` restarts its ids: predictions and stream positions of the old table stay
    where they are, so use a new database or stream name afterwards."""
    return int(_rs.generate(url, [m.to_jsonl() for m in manifests], drop))


def _callback(progress: Optional[Progress]) -> Optional[Callable[[str], None]]:
    if progress is None:
        return None
    return lambda text: progress(json.loads(text))


def _drift(drift: Union[bool, Dict[str, Any]]) -> Optional[str]:
    if drift is True:
        return "{}"
    if drift is False or drift is None:
        return None
    return json.dumps(drift)


def _registry(champion: Optional[Union[str, PathLike]]) -> Optional[str]:
    if champion is None:
        return None
    return champion if isinstance(champion, str) else str(Path(champion))


def stream(
    model: Model,
    url: Optional[str],
    data_root: PathLike,
    *,
    sink_url: Optional[str] = None,
    batch_size: int = 64,
    name: str = "cargo_prediction",
    until_idle: bool = True,
    progress: Optional[Progress] = None,
    drift: Union[bool, Dict[str, Any]] = True,
    champion: Optional[Union[str, PathLike]] = None,
    champion_seconds: float = 1.0,
    champion_fallback: bool = False,
) -> Dict[str, Any]:
    """Predicts new ``cargo`` rows into ``cargo_prediction`` exactly once; returns the run's
    counters. With ``until_idle`` it stops once caught up, otherwise it follows the table until
    Ctrl-C (KeyboardInterrupt, after the batch in hand is committed). ``progress`` is called
    with the counters after every batch. Rows with missing or unreadable images go to
    ``cargo_prediction_error``.

    ``drift`` watches for a shift (when the model package has a reference sample): ``True``
    uses the defaults (an online CUSUM detector calibrated for 10,000 rows on average between
    false alarms, a check every 25 rows, the accuracy of the latest 100 rows estimated without
    labels), a dict overrides them (``ert``, ``every``, ``allowance``, ``accuracy_window``,
    ``accuracy_score``: ``"negative_entropy"`` or ``"max_probability"``, ``seed``), ``False``
    turns it off. Each check is a ``cargo_drift`` row committed with its batch (with its
    ``estimated_accuracy``); the counters' ``drift_estimated_accuracy`` is the latest estimate.

    ``champion`` (a registry URI, see :class:`mlops.adapt.Registry`) hot-swaps: the pointer is
    looked at between batches (at most every ``champion_seconds``) and the champion predicts
    from the next batch on; every row records the version that made it. A champion that cannot
    be served at start (its package deleted, of another version than the pointer names) stops
    the call with an error unless ``champion_fallback`` lets ``model`` serve instead; later, the
    stream goes on with the model it has, and ``champion`` in the counters (and the
    ``cargo_health`` row) says ``unavailable`` with the reason."""
    text = _rs.stream_predictions(
        model._native,
        url,
        Path(data_root),
        sink_url,
        batch_size,
        name,
        until_idle,
        _callback(progress),
        _drift(drift),
        _registry(champion),
        champion_seconds,
        champion_fallback,
    )
    return json.loads(text)


def kafka_publish(
    url: Optional[str],
    brokers: str,
    *,
    topic: str = "postgres-source-cargo",
    partitions: int = 2,
    until_idle: bool = True,
) -> Dict[str, Any]:
    """Publishes new ``cargo`` rows to ``topic`` in the original's Kafka Connect JSON format
    (creating the topic with ``partitions`` if needed); returns the counters."""
    return json.loads(_rs.kafka_publish(url, brokers, topic, partitions, until_idle))


def kafka_consume(
    model: Model,
    url: Optional[str],
    brokers: str,
    data_root: PathLike,
    *,
    topic: str = "postgres-source-cargo",
    group: str = "mlops-predict",
    batch_size: int = 64,
    idle_seconds: Optional[float] = 10.0,
    session_timeout_seconds: float = 10.0,
    drift: Union[bool, Dict[str, Any]] = True,
    champion: Optional[Union[str, PathLike]] = None,
    champion_seconds: float = 1.0,
    champion_fallback: bool = False,
) -> Dict[str, Any]:
    """Predicts a topic's rows into ``cargo_prediction`` as one consumer of ``group`` (start
    several to split the partitions); writes are idempotent by source id. Stops after
    ``idle_seconds`` without messages (``None``: until Ctrl-C); returns the counters. ``drift``
    as for :func:`stream` (checks go to ``cargo_drift`` as stream ``kafka:<topic>:<group>``),
    ``champion`` too (the swap happens between batches)."""
    text = _rs.kafka_consume(
        model._native,
        url,
        brokers,
        Path(data_root),
        topic,
        group,
        batch_size,
        idle_seconds,
        session_timeout_seconds,
        _drift(drift),
        _registry(champion),
        champion_seconds,
        champion_fallback,
    )
    return json.loads(text)
