"""Long-running calls from Python: progress callbacks, Ctrl-C, Kafka, fork safety, and the
shift experiment."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
import warnings

import numpy as np
import pytest

import mlops
from conftest import CLASSES, fresh_db, query_value

# Every test here waits on threads, signals or servers: none may hang the suite.
pytestmark = pytest.mark.timeout(300)


@pytest.fixture(autouse=True)
def python_default_sigint_handler():
    """Ctrl-C as a user's interpreter has it: in the full suite a library imported by another
    test module replaced Python's SIGINT handler with one that does not raise, and the Ctrl-C
    tests below then saw no KeyboardInterrupt (found in a clean-clone run)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.timeout(120)
def test_stream_reports_progress_and_stops_on_ctrl_c(small_model, demo):
    url = fresh_db("py_ctrl_c")
    test = mlops.Manifest.read(demo / "monday_test.jsonl")
    mlops.generate(url, [test], drop=True)
    seen = []
    stopped = threading.Event()
    sent = []

    def interrupt() -> None:
        # Ctrl-C after 3 s. In one full-suite run (of about ten) the first signal never reached
        # the stream (investigated in the closing note of issue 11): press again every 5 s, as a
        # user would, and report it, so that a lost signal shows without hanging the suite.
        if not stopped.wait(3.0):
            while not stopped.is_set():
                sent.append(time.monotonic())
                os.kill(os.getpid(), signal.SIGINT)
                stopped.wait(5.0)

    presser = threading.Thread(target=interrupt, daemon=True)
    presser.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            # Follows the table forever unless interrupted.
            mlops.stream(small_model, url, demo / "monday", name="ctrl-c", until_idle=False, batch_size=16,
                         progress=seen.append)
    finally:
        stopped.set()
        presser.join()
    if len(sent) > 1:
        warnings.warn(f"the stream stopped only after {len(sent)} SIGINTs", RuntimeWarning)
    assert seen and seen[-1]["rows"] == 200, seen[-1:]
    assert [s["batches"] for s in seen] == list(range(1, len(seen) + 1))


def test_kafka_from_python(small_model, demo):
    url = fresh_db("py_kafka")
    brokers = os.environ.get("MLOPS_TEST_KAFKA_BROKERS")
    assert brokers, "MLOPS_TEST_KAFKA_BROKERS is not set: run through `make test`"
    test = mlops.Manifest.read(demo / "monday_test.jsonl")
    mlops.generate(url, [mlops.Manifest(test.samples[:60])], drop=True)
    published = mlops.kafka_publish(url, brokers, topic="py-topic", partitions=2)
    assert published["rows"] == 60
    consumed = mlops.kafka_consume(small_model, url, brokers, demo / "monday", topic="py-topic", group="py-group",
                                   idle_seconds=8.0, session_timeout_seconds=6.0)
    assert (consumed["messages"], consumed["predicted"]) == (60, 60)


def _predict_in_child(queue, package: str, paths) -> None:
    model = mlops.Model.load(package)
    image = np.zeros((2, 40, 40, 3), dtype=np.uint8)
    targets, _ = model.predict(image)
    queue.put((len(model.predict_paths(paths)), targets.tolist()))


def test_heavy_calls_work_in_a_forked_child(small_model, demo, tmp_path):
    # Use Rayon in the parent first, so its global pool has threads that fork does not copy.
    small_model.predict_paths([demo / "monday" / p for p in mlops.Manifest.read(demo / "monday_test.jsonl").image_paths[:8]])
    small_model.save(tmp_path / "pkg")
    paths = [str(demo / "monday" / p) for p in mlops.Manifest.read(demo / "monday_test.jsonl").image_paths[:8]]
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_predict_in_child, args=(queue, str(tmp_path / "pkg"), paths))
    child.start()
    child.join(timeout=60)
    if child.is_alive():
        child.kill()
        pytest.fail("the forked child hung")
    assert child.exitcode == 0
    count, targets = queue.get(timeout=5)
    assert count == 8 and len(targets) == 2


def test_shift_experiment_from_python(demo, tmp_path):
    runs = []
    read = lambda name: mlops.Manifest.read(demo / name)  # noqa: E731
    subset = lambda m, step: mlops.Manifest(m.samples[::step])  # noqa: E731
    monday_train, monday_test = subset(read("monday_train.jsonl"), 8), subset(read("monday_test.jsonl"), 4)
    result = mlops.shift_experiment(
        demo / "monday", monday_train, monday_test,
        demo / "tuesday", subset(read("tuesday_train.jsonl"), 8), subset(read("tuesday_test.jsonl"), 4),
        shifts=[("monday_again", demo / "monday", monday_train, monday_test)],
        strategies=["none", "uncertainty", "random", "all"], budgets=[0, 10], seeds=[1, 2], backbone="small_cnn",
        epochs=2, batch_size=16, preprocess={"size": 32}, out=tmp_path, progress=runs.append,
    )
    # Classes came from the manifests' folders; every shift, strategy, budget and seed ran.
    assert result.results["classes"] == CLASSES
    assert len(runs) == 2 * 2 * 4
    assert {(r["shift"], r["strategy"], r["budget"]) for r in runs} >= {
        ("tuesday", "uncertainty", 10), ("monday_again", "none", 0), ("tuesday", "all", 100)}
    cell = next(c for c in result.results["cells"]
                if (c["shift"], c["strategy"], c["budget"]) == ("tuesday", "uncertainty", 10))
    both = [r["accuracy"]["both"] for r in runs if (r["shift"], r["strategy"], r["budget"]) == ("tuesday", "uncertainty", 10)]
    assert cell["both"]["n"] == 2 and abs(cell["both"]["mean"] - sum(both) / 2) < 1e-12
    assert cell["versus_random"]["both"]["wins"] + cell["versus_random"]["both"]["losses"] \
        + cell["versus_random"]["both"]["ties"] == 2
    assert "uncertainty" in result.markdown and "### Shift `monday_again`" in result.markdown
    assert (tmp_path / "results.json").exists() and (tmp_path / "results.md").read_text() == result.markdown
    # The training mode is honoured: partial fine-tuning needs EfficientNet-Lite0 and says so.
    with pytest.raises(mlops.MlopsError, match="EfficientNet-Lite0"):
        mlops.shift_experiment(demo / "monday", monday_train, monday_test, demo / "tuesday",
                               subset(read("tuesday_train.jsonl"), 8), subset(read("tuesday_test.jsonl"), 4),
                               backbone="small_cnn", mode="partial_fine_tune", preprocess={"size": 32})


def test_training_reports_epochs_and_stops_on_ctrl_c(demo):
    listing = mlops.list_dataset(demo / "monday")
    train, test = mlops.Manifest(listing.manifest.samples[::2]), mlops.Manifest(listing.manifest.samples[1::10])
    epochs = []
    result = mlops.train(demo / "monday", mlops.Manifest(train.samples[::4]), test, CLASSES, backbone="small_cnn",
                         epochs=3, batch_size=16, mode="fine_tune", preprocess={"size": 32}, progress=epochs.append)
    assert [e["epoch"] for e in epochs] == [1, 2, 3]
    assert epochs == result.history
    # A long run (many epochs at 96 px) interrupted after 2 s.
    timer = threading.Timer(2.0, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    import time
    started = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        mlops.train(demo / "monday", train, test, CLASSES, backbone="small_cnn", epochs=200, batch_size=16,
                    mode="fine_tune", preprocess={"size": 96})
    timer.cancel()
    assert time.perf_counter() - started < 30, "training did not stop soon after Ctrl-C"


def test_corrupt_folder_reports_progress_and_stops_on_ctrl_c(demo, tmp_path):
    calls = []
    lock = threading.Lock()

    def progress(done, total):
        with lock:
            calls.append((done, total))

    small = tmp_path / "small" / "brick"
    small.mkdir(parents=True)
    for name in sorted(os.listdir(demo / "monday" / "brick"))[:20]:
        (small / name).write_bytes((demo / "monday" / "brick" / name).read_bytes())
    report = mlops.corrupt_folder(tmp_path / "small", tmp_path / "small-out", seed=1, progress=progress)
    assert len(report["written"]) == 20
    assert sorted(calls) == [(i, 20) for i in range(1, 21)]

    # All 1000 monday images on one thread, interrupted after 0.3 s: fewer files, each complete.
    timer = threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        mlops.corrupt_folder(demo / "monday", tmp_path / "big-out", seed=1, threads=1)
    timer.cancel()
    written = list((tmp_path / "big-out").rglob("*.png"))
    assert 0 < len(written) < 1000
    for path in written:
        assert mlops.read_image(path).size > 0


def test_shift_experiment_stops_on_ctrl_c(demo):
    read = lambda name: mlops.Manifest.read(demo / name)  # noqa: E731
    timer = threading.Timer(2.0, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    import time
    started = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        mlops.shift_experiment(
            demo / "monday", read("monday_train.jsonl"), read("monday_test.jsonl"),
            demo / "tuesday", read("tuesday_train.jsonl"), read("tuesday_test.jsonl"),
            CLASSES, budgets=[50], seeds=[1, 2, 3], backbone="small_cnn", epochs=500, preprocess={"size": 64},
        )
    timer.cancel()
    assert time.perf_counter() - started < 30, "the experiment did not stop soon after Ctrl-C"


def test_a_frozen_model_keeps_its_reference_and_the_stream_checks_for_drift(demo, tmp_path):
    train = mlops.Manifest.read(demo / "monday_train.jsonl")
    test = mlops.Manifest.read(demo / "monday_test.jsonl")
    model = mlops.train(
        demo / "monday",
        mlops.Manifest(train.samples[::8]),
        test,
        CLASSES,
        backbone="small_cnn",
        epochs=2,
        preprocess={"size": 32},
    ).model
    features, probabilities = model.reference
    assert features.shape[0] == probabilities.shape[0] == len(test)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    model.save(tmp_path / "pkg")
    loaded = mlops.Model.load(tmp_path / "pkg")
    np.testing.assert_array_equal(loaded.reference[0], features)

    url = fresh_db("py_drift")
    mlops.generate(url, [test], drop=True)
    stats = mlops.stream(loaded, url, demo / "monday", name="drift", drift={"every": 10, "ert": 1000})
    # 200 rows: a check every 10 rows, and one where an alarm starts or ends (a false alarm in
    # 200 rows at an ERT of 1000 rows is not rare).
    assert 200 // 10 <= stats["drift_checks"] <= 200 // 10 + 2 * stats["drift_alarms"] + 2, stats
    written = query_value(url, "SELECT count(*) FROM cargo_drift WHERE stream = 'drift' AND method = 'cusum'")
    assert int(written) == stats["drift_checks"]
    # The accuracy estimate (the reference has the test rows' true classes) is in the result
    # and in every check.
    assert 0.0 <= stats["drift_estimated_accuracy"] <= 1.0, stats
    estimated = query_value(url, "SELECT count(estimated_accuracy) FROM cargo_drift WHERE stream = 'drift'")
    assert int(estimated) == stats["drift_checks"]
    with pytest.raises(mlops.InvalidParameterError, match="drift"):
        mlops.stream(loaded, url, demo / "monday", name="bad", drift={"window": "fifty"})
