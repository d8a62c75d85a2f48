"""mlops.Model inside Ray Data: an actor pool over the demo images gives exactly the
predictions of a direct call, written as Parquet."""

from pathlib import Path

import pyarrow.parquet as pq
import pytest

import mlops
from mlops.ray_data import predict_manifest


@pytest.mark.timeout(300)
def test_ray_data_actor_pool_predicts_what_a_direct_call_does(small_model, demo, tmp_path):
    import ray

    package = tmp_path / "model"
    small_model.save(package)
    manifest = mlops.Manifest.read(demo / "tuesday_test.jsonl")
    manifest = mlops.Manifest(manifest.samples[::4])
    out = tmp_path / "predictions"
    try:
        predict_manifest(str(package), str(demo / "tuesday"), manifest, str(out), actors=2, batch_size=16)
    finally:
        ray.shutdown()
    table = pq.read_table(out).to_pandas().sort_values("image_path")
    assert len(table) == len(manifest.samples)
    direct = small_model.predict_paths([demo / "tuesday" / s.image_path for s in manifest.samples])
    expected = {s.image_path: p.target for s, p in zip(manifest.samples, direct)}
    assert all(table["error"] == "")
    assert dict(zip(table["image_path"], table["target"])) == expected
    assert set(table["model_version"]) == {small_model.version}


@pytest.mark.timeout(300)
def test_ray_data_reads_a_folder_of_images_and_predicts_them_like_a_direct_call(small_model, demo, tmp_path):
    import ray

    from mlops.ray_data import predict_images

    package = tmp_path / "model"
    small_model.save(package)
    folder = demo / "tuesday" / "brick"
    files = sorted(folder.glob("*.png"))[:24]
    subset = tmp_path / "images"
    subset.mkdir()
    for f in files:
        (subset / f.name).write_bytes(f.read_bytes())
    out = tmp_path / "predictions"
    try:
        predict_images(str(package), str(subset), str(out), actors=1, batch_size=8)
    finally:
        ray.shutdown()
    table = pq.read_table(out).to_pandas()
    got = {Path(p).name: int(t) for p, t in zip(table["path"], table["target"])}
    direct = small_model.predict_paths([subset / f.name for f in files])
    assert got == {f.name: p.target for f, p in zip(files, direct)}
