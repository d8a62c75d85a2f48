"""The shift experiment: train on monday, then on tuesday plus a replay set per strategy."""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Sequence

from mlops import _mlops_rs as _rs
from mlops.data import Manifest, PathLike
from mlops.errors import MlopsFileNotFoundError
from mlops.model import lite0_weights

DEFAULT_STRATEGIES = ("none", "random", "cp_l1", "cp_l2", "cp_cosine", "k_center", "herding", "all")


def chart_font(wheels: PathLike) -> bytes:
    """DejaVu Sans from the matplotlib wheel in the folder ``wheels``: the charts' font, so they
    look the same on every machine."""
    found = sorted(Path(wheels).glob("matplotlib-*.whl"))
    if not found:
        raise MlopsFileNotFoundError(f"{wheels}: no matplotlib-*.whl here (fetch it with `make wheels`)")
    with zipfile.ZipFile(found[0]) as wheel:
        return wheel.read("matplotlib/mpl-data/fonts/ttf/DejaVuSans.ttf")


@dataclass
class ExperimentResult:
    """The experiment's results (``results.json``'s content) and its markdown table."""

    results: Dict[str, Any]
    markdown: str


def shift_experiment(
    monday_root: PathLike,
    monday_train: Manifest,
    monday_test: Manifest,
    tuesday_root: PathLike,
    tuesday_train: Manifest,
    tuesday_test: Manifest,
    classes: Sequence[str],
    *,
    strategies: Sequence[str] = DEFAULT_STRATEGIES,
    budget: int = 220,
    seeds: Sequence[int] = (2022, 2023, 2024),
    backbone: str = "efficientnet_lite0",
    weights: Optional[PathLike] = None,
    out: Optional[PathLike] = None,
    chart_font_wheels: Optional[PathLike] = None,
    progress: Optional[Callable[[Dict[str, Any]], None]] = None,
    **train_config: Any,
) -> ExperimentResult:
    """Runs every strategy once per seed with the same replay budget (defaults: the original's
    220 samples, seeds 2022-2024) and evaluates on monday's, tuesday's and both test sets.

    ``train_config`` takes the core's ``TrainConfig`` fields. With ``out``, ``results.json``,
    ``results.md`` and, given ``chart_font_wheels`` (the folder with the matplotlib wheel), the
    charts are written there. ``progress`` is called with each finished strategy run (a dict);
    Ctrl-C stops the experiment at the next batch and raises KeyboardInterrupt.
    """
    if train_config.get("feature_cache") is not None:
        train_config["feature_cache"] = str(train_config["feature_cache"])
    text, markdown = _rs.shift_experiment(
        (Path(monday_root), Path(tuesday_root)),
        [m.to_jsonl() for m in (monday_train, monday_test, tuesday_train, tuesday_test)],
        list(classes),
        list(strategies),
        budget,
        list(seeds),
        json.dumps(train_config),
        backbone,
        lite0_weights(weights) if weights is not None else None,
        Path(out) if out is not None else None,
        chart_font(chart_font_wheels) if chart_font_wheels is not None else None,
        (lambda text: progress(json.loads(text))) if progress is not None else None,
    )
    return ExperimentResult(json.loads(text), markdown)
