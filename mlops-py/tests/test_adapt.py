"""The closed loop from Python: adapt with replay, the registry's champion, promotion, the
MLflow alias, and a stream that swaps to the champion (real PostgreSQL and MLflow)."""

from __future__ import annotations

import mlflow
import pytest
from mlflow import MlflowClient

import mlops
import mlops.mlflow
from conftest import fresh_db, query_value


def _data(demo):
    tuesday = mlops.Manifest.read(demo / "tuesday_train.jsonl")
    monday = mlops.Manifest.read(demo / "monday_train.jsonl")
    monday_test = mlops.Manifest.read(demo / "monday_test.jsonl")
    return (
        (demo / "tuesday", mlops.Manifest(tuesday.samples[::4])),
        (demo / "monday", mlops.Manifest(monday.samples[::4])),
        mlops.Manifest(monday_test.samples[::4]),
    )


def test_adapt_promote_and_register_the_champion(small_model, demo, tmp_path, mlflow_server):
    new, old, old_holdout = _data(demo)
    registry = mlops.Registry(tmp_path / "registry")
    assert registry.champion() is None
    first = registry.init(small_model)
    assert first["generation"] == 1 and first["version"] == small_model.version
    with pytest.raises(mlops.InvalidParameterError):
        registry.init(small_model)

    result = mlops.adapt.adapt(
        registry.champion_model(), new, old, old_holdout=old_holdout, budget=40, epochs=5, source="test"
    )
    lineage = result.lineage
    assert lineage["parent_version"] == small_model.version
    assert lineage["parent_generation"] == 1, "a model from the registry knows its generation"
    assert len(result.held_out["new"]["samples"]) == lineage["rows"]["new_holdout"]
    assert lineage["strategy"] == "k_center" and lineage["rows"]["replay"] == 40
    assert lineage["source"] == "test"
    assert result.model.metadata["lineage"] == lineage
    assert result.model.reference is not None
    again = mlops.adapt.adapt(
        registry.champion_model(), new, old, old_holdout=old_holdout, budget=40, epochs=5, source="test"
    )
    assert again.model.version == result.model.version, "same seed, same model"

    # Promoting the adaptation scores both models again on its held-out rows.
    decision = registry.promote(result, margin=1.0)
    assert decision["challenger"] == result.model.version
    assert decision["rescored"] is True
    assert decision["scores"] == pytest.approx(lineage["scores"])
    assert decision["parent_scores"] == pytest.approx(lineage["parent_scores"])
    assert decision["promoted"] == (lineage["scores"]["union"] > lineage["parent_scores"]["union"])
    champion = registry.champion()
    assert champion["version"] == (result.model.version if decision["promoted"] else small_model.version)
    assert [d["challenger"] for d in registry.decisions()] == [result.model.version]
    with pytest.raises(mlops.InvalidParameterError):
        registry.promote(result.model, margin=-1)

    # MLflow: each challenger becomes a version tagged with its decision; the alias follows
    # promotions only (the same model registered as promoted, then as rejected).
    mlflow.set_tracking_uri(mlflow_server)
    mlflow.set_experiment("mlops-adapt")
    client = MlflowClient()
    promoted = dict(decision, promoted=True, reason="test: promoted")
    version = mlops.mlflow.register_decision(promoted, result.model, "cargo-adapted", data_root=demo)
    assert version.tags["mlops.version"] == result.model.version
    assert version.tags["mlops.promoted"] == "true"
    assert version.tags["mlops.parent"] == small_model.version
    assert client.get_model_version_by_alias("cargo-adapted", "champion").version == version.version
    rejected = dict(decision, promoted=False, reason="test: not better")
    other = mlops.mlflow.register_decision(rejected, result.model, "cargo-adapted", data_root=demo)
    assert other.tags["mlops.promoted"] == "false" and other.tags["mlops.reason"] == "test: not better"
    assert other.version != version.version
    assert client.get_model_version_by_alias("cargo-adapted", "champion").version == version.version
    run = client.get_run(other.run_id)
    assert run.data.metrics["challenger_union_accuracy"] == pytest.approx(lineage["scores"]["union"])


def test_a_stream_swaps_to_the_champion(small_model, demo, tmp_path):
    url = fresh_db("py_adapt_swap")
    rows = mlops.Manifest.read(demo / "monday_test.jsonl")
    mlops.generate(url, [rows], drop=True)
    registry = mlops.Registry(f"memory://py-swap-{tmp_path.name}/registry")
    registry.init(small_model)
    first = mlops.stream(small_model, url, demo / "monday", batch_size=50, champion=registry.uri, drift=False)
    assert first["swaps"] == 0 and first["model_version"] == small_model.version
    # Another registry whose champion is an adapted model: a stream started with the old model
    # serves the champion from its first batch.
    new, old, old_holdout = _data(demo)
    adapted = mlops.adapt.adapt(small_model, new, old, old_holdout=old_holdout, budget=20, epochs=2)
    other = mlops.Registry(tmp_path / "other-registry")
    other.init(adapted.model)
    mlops.generate(url, [rows])
    second = mlops.stream(small_model, url, demo / "monday", batch_size=50, champion=other.uri, drift=False)
    assert second["swaps"] == 1 and second["model_version"] == adapted.model.version
    n = len(rows.samples)
    assert query_value(url, "SELECT count(DISTINCT id) FROM cargo_prediction") == str(2 * n)
    by_version = f"SELECT count(*) FROM cargo_prediction WHERE id > {n} AND model_version = '{adapted.model.version}'"
    assert query_value(url, by_version) == str(n)
    assert query_value(url, f"SELECT count(*) FROM cargo_prediction WHERE id <= {n} AND model_version = '{small_model.version}'") == str(n)


def test_a_stream_refuses_a_champion_it_cannot_serve(small_model, demo, tmp_path):
    import shutil

    url = fresh_db("py_adapt_unservable")
    rows = mlops.Manifest.read(demo / "monday_test.jsonl")
    mlops.generate(url, [rows], drop=True)
    new, old, old_holdout = _data(demo)
    adapted = mlops.adapt.adapt(small_model, new, old, old_holdout=old_holdout, budget=20, epochs=2)
    registry = mlops.Registry(tmp_path / "registry")
    registry.init(adapted.model)
    shutil.rmtree(registry.champion_uri())
    # Restarted without the champion's package, a stream does not serve another model instead...
    with pytest.raises(mlops.InvalidParameterError, match=adapted.model.version):
        mlops.stream(small_model, url, demo / "monday", champion=registry.uri, drift=False)
    assert query_value(url, "SELECT count(*) FROM cargo_prediction") == "0"
    # ...unless told to; then it says why, in its counters and in cargo_health.
    stats = mlops.stream(
        small_model, url, demo / "monday", champion=registry.uri, champion_fallback=True, drift=False
    )
    assert stats["model_version"] == small_model.version
    assert stats["champion"]["state"] == "unavailable"
    assert stats["champion"]["version"] == adapted.model.version
    state = query_value(url, "SELECT state FROM cargo_health WHERE job = 'stream' AND name = 'cargo_prediction'")
    assert state == "unavailable"
