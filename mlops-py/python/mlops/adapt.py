"""The closed loop: adapt the serving model to shifted data with replay, promote it only when
it is better, and let running streams hot-swap to it.

    registry = mlops.adapt.Registry("models/registry")      # folder, file://, s3://, memory://
    registry.init(monday_model)                              # the first champion
    result = mlops.adapt.adapt(registry.champion_model(), new=(tuesday_root, tuesday_rows),
                               old=(monday_root, monday_train), old_holdout=monday_test)
    decision = registry.promote(result)        # both models scored again on its held-out rows
    mlops.stream(model, url, data_root, champion=registry.uri)  # swaps between batches

The pointer is atomic on every store (one create-only object per generation): of two
promoters, one wins and the other is recorded as a rejected challenger.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from mlops import _mlops_rs as _rs
from mlops.data import Manifest, PathLike
from mlops.model import Model

Data = Tuple[PathLike, Manifest]


@dataclass
class Adaptation:
    """An adapted model (not yet saved or promoted) and its lineage: parent version (and
    champion generation, for a model from a registry), strategy, budget, seed, row counts, data
    hashes, and both models' accuracies on the held-out old (``old``), new (``new``) and all
    (``union``) rows; ``held_out``: those rows (``old_root``, ``old``, ``new_root``, ``new``),
    which :meth:`Registry.promote` scores both models on again."""

    model: Model
    lineage: Dict[str, Any]
    skipped: List[List[str]]
    held_out: Dict[str, Any]


def adapt(
    model: Model,
    new: Data,
    old: Data,
    *,
    old_holdout: Optional[Manifest] = None,
    strategy: str = "k_center",
    budget: int = 220,
    holdout: float = 0.2,
    source: Optional[str] = None,
    progress: Optional[Callable[[Dict[str, Any]], None]] = None,
    **train: Any,
) -> Adaptation:
    """Trains ``model``'s head further on the ``new`` labelled rows (a ``(root, Manifest)``)
    plus ``budget`` replay rows chosen by ``strategy`` from ``old``, and scores both models on
    held-out rows: ``holdout`` of the new rows, and ``old_holdout`` (relative to ``old``'s root)
    or ``holdout`` of the old rows. ``train`` takes ``TrainConfig`` fields (``epochs``,
    ``seed``, ``feature_cache``, ...). Deterministic for a seed."""
    if train.get("feature_cache") is not None:
        train["feature_cache"] = str(train["feature_cache"])
    config = {"strategy": strategy, "budget": {"count": budget}, "holdout": holdout, "train": train}
    (new_root, new_rows), (old_root, old_rows) = new, old
    native, lineage, skipped, held_out = _rs.adapt(
        model._native,
        Path(new_root),
        new_rows.to_jsonl(),
        Path(old_root),
        old_rows.to_jsonl(),
        old_holdout.to_jsonl() if old_holdout is not None else None,
        json.dumps(config),
        source,
        (lambda text: progress(json.loads(text))) if progress is not None else None,
        getattr(model, "_champion_generation", None),
    )
    return Adaptation(Model(native), json.loads(lineage), json.loads(skipped), json.loads(held_out))


class Registry:
    """Models and the champion pointer at a URI: packages under ``models/<version>``, one
    ``champion/<generation>.json`` per promotion, decisions under ``decisions/``."""

    def __init__(self, uri: Union[str, PathLike]) -> None:
        self.uri = (uri if isinstance(uri, str) else str(Path(uri))).rstrip("/")

    def model_uri(self, version: str) -> str:
        """Where a package of ``version`` is kept."""
        return f"{self.uri}/models/{version}"

    def champion(self) -> Optional[Dict[str, Any]]:
        """The current champion (``generation``, ``package``, ``version``, ``previous``,
        ``reason``, ``promoted_at``), or None before the first."""
        return json.loads(_rs.registry_champion(self.uri))

    def champion_uri(self) -> Optional[str]:
        """The champion's package URI."""
        champion = self.champion()
        if champion is None:
            return None
        package = champion["package"]
        return f"{self.uri}/{package}" if package.startswith("models/") else package

    def champion_model(self, backend: str = "flex") -> Model:
        """The champion, loaded; :func:`adapt` records its generation in the lineage, so the
        challenger is judged stale once the pointer moves on."""
        champion = self.champion()
        if champion is None:
            raise LookupError(f"{self.uri} has no champion yet")
        package = champion["package"]
        uri = f"{self.uri}/{package}" if package.startswith("models/") else package
        model = Model.load(uri, backend=backend)
        model._champion_generation = champion["generation"]
        return model

    def history(self) -> List[Dict[str, Any]]:
        """Every champion, oldest first."""
        return json.loads(_rs.registry_history(self.uri)[0])

    def decisions(self) -> List[Dict[str, Any]]:
        """Every decision about a challenger (promoted or not, with the reason), by time."""
        return json.loads(_rs.registry_history(self.uri)[1])

    def init(self, model: Union[Model, str]) -> Dict[str, Any]:
        """Makes ``model`` (a Model, or a package URI, copied to ``models/<version>`` when it
        lies outside the registry) the first champion; an error if there is one."""
        return json.loads(_rs.registry_init(self.uri, self._saved(model)))

    def promote(
        self,
        model: Union[Adaptation, Model, str],
        *,
        margin: float = 0.02,
        min_gain: float = 0.0,
        held_out: Optional[Dict[str, Any]] = None,
    ) -> Dict[str, Any]:
        """Promotes an adapted model if it beats the champion on the held-out old + new rows by
        more than ``min_gain`` and loses at most ``margin`` on the old ones; returns the
        decision (``promoted``, ``reason``, ``generation``, scores, ``rescored``).

        ``model`` is an :class:`Adaptation` (both models are then scored again on its held-out
        rows before the pointer moves), a Model (saved under ``models/<version>`` first) or a
        package URI. For a Model or a URI the lineage's stored scores are trusted unless
        ``held_out`` (``old_root``, ``old``, ``new_root``, ``new``: an Adaptation's
        ``held_out``) is given: give it for packages from elsewhere (a shared bucket)."""
        if isinstance(model, Adaptation):
            held_out = model.held_out if held_out is None else held_out
            model = model.model
        policy = json.dumps({"margin": margin, "min_gain": min_gain})
        rows = json.dumps(held_out) if held_out is not None else None
        return json.loads(_rs.promote(self.uri, self._saved(model), policy, rows))

    def _saved(self, model: Union[Model, str]) -> str:
        if isinstance(model, Model):
            uri = self.model_uri(model.version)
            model.save(uri)
            return uri
        return model
