"""The shift experiment: train on monday, then on a shifted day plus a replay set per strategy,
budget and seed, with confidence intervals and paired tests against random."""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

from mlops import _mlops_rs as _rs
from mlops.data import Manifest, PathLike
from mlops.errors import MlopsFileNotFoundError
from mlops.model import lite0_weights

DEFAULT_STRATEGIES = (
    "none", "random", "random_balanced", "reservoir", "cp_l1", "cp_l2", "cp_cosine", "k_center", "herding",
    "closest_to_center", "uncertainty", "all",
)
DEFAULT_BUDGETS = (0, 22, 55, 110, 220, 440)
DEFAULT_SEEDS = (2022, 2023, 2024, 2025, 2026)


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
    tuesday_root: Optional[PathLike] = None,
    tuesday_train: Optional[Manifest] = None,
    tuesday_test: Optional[Manifest] = None,
    classes: Optional[Sequence[str]] = None,
    *,
    shifts: Sequence[Tuple[str, PathLike, Manifest, Manifest]] = (),
    tuesday_name: str = "tuesday",
    strategies: Sequence[str] = DEFAULT_STRATEGIES,
    budgets: Sequence[int] = DEFAULT_BUDGETS,
    seeds: Sequence[int] = DEFAULT_SEEDS,
    backbone: str = "efficientnet_lite0",
    weights: Optional[PathLike] = None,
    out: Optional[PathLike] = None,
    chart_font_wheels: Optional[PathLike] = None,
    progress: Optional[Callable[[Dict[str, Any]], None]] = None,
    **train_config: Any,
) -> ExperimentResult:
    """Trains a monday model, then for every shifted day, strategy, replay budget and seed a copy
    adapted on that day plus the replay set; evaluates on monday's, the day's and both test sets.

    The shifted days are ``tuesday_*`` (named ``tuesday_name``) and/or ``shifts``, a sequence of
    ``(name, image_root, train_manifest, test_manifest)``. ``classes`` defaults to the class
    folders of the manifests' image paths. ``budgets`` are replay sizes (0 is ``none``; ``none``
    and ``all`` run once per seed). ``train_config`` takes the core's ``TrainConfig`` fields; its
    ``mode`` is honoured: ``"frozen_backbone"`` (linear head, default), ``"partial_fine_tune"``
    (the last ``tail_blocks`` units of EfficientNet-Lite0 and the head, on cached activations) or
    ``"fine_tune"`` (every unit after the stem).

    Results hold every run and, per (shift, strategy, budget) cell, means with 95% intervals over
    seeds and two-sided paired t-tests against ``random`` at the same budget, Holm-corrected.
    With ``out``, ``results.json``, ``results.md`` and, given ``chart_font_wheels`` (the folder
    with the matplotlib wheel), the charts are written there. ``progress`` is called with each
    finished run (a dict); Ctrl-C stops the experiment at the next batch and raises
    KeyboardInterrupt.
    """
    days = []
    if tuesday_root is not None:
        if tuesday_train is None or tuesday_test is None:
            raise ValueError("tuesday_root needs tuesday_train and tuesday_test")
        days.append((tuesday_name, tuesday_root, tuesday_train, tuesday_test))
    days.extend(shifts)
    if train_config.get("feature_cache") is not None:
        train_config["feature_cache"] = str(train_config["feature_cache"])
    text, markdown = _rs.shift_experiment(
        Path(monday_root),
        [monday_train.to_jsonl(), monday_test.to_jsonl()],
        [(str(name), Path(root), train.to_jsonl(), test.to_jsonl()) for name, root, train, test in days],
        list(classes) if classes is not None else None,
        list(strategies),
        [int(b) for b in budgets],
        list(seeds),
        json.dumps(train_config),
        backbone,
        lite0_weights(weights) if weights is not None else None,
        Path(out) if out is not None else None,
        chart_font(chart_font_wheels) if chart_font_wheels is not None else None,
        (lambda text: progress(json.loads(text))) if progress is not None else None,
    )
    return ExperimentResult(json.loads(text), markdown)
