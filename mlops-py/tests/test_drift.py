"""mlops.drift: the four tests from Python, their errors, and features from a model."""

import numpy as np
import pytest

import mlops
from mlops import drift


def gaussian(rows: int, dim: int, seed: int, shift: float = 0.0) -> np.ndarray:
    data = np.random.default_rng(seed).normal(size=(rows, dim)).astype(np.float32)
    data[:, :4] += shift
    return data


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("method", ["mmd", "ks", "classifier"])
def test_a_shift_alarms_and_the_same_distribution_mostly_does_not(method):
    reference = gaussian(400, 32, 1)
    detector = drift.Detector(reference, method=method)
    quiet = [detector.check(gaussian(40, 32, 100 + k)).drift for k in range(30)]
    assert sum(quiet) <= 5, f"{sum(quiet)} of 30 same-distribution windows alarmed"
    shifted = detector.check(gaussian(40, 32, 7, shift=1.5))
    assert shifted.drift and shifted.p_value < shifted.threshold == 0.05
    assert shifted.method == method and shifted.window_rows == 40


def test_detect_is_deterministic_and_seeded():
    reference, window = gaussian(200, 8, 1), gaussian(20, 8, 2, shift=0.3)
    a = drift.detect(reference, window, method="mmd", seed=5)
    b = drift.detect(reference, window, method="mmd", seed=5)
    c = drift.detect(reference, window, method="mmd", seed=6)
    assert a == b
    assert a.statistic == c.statistic and a.p_value != c.p_value


def test_bbsd_on_softmax_outputs():
    reference = softmax(gaussian(300, 5, 1))
    same = drift.detect(reference, softmax(gaussian(60, 5, 2)), method="bbsd")
    moved = drift.detect(reference, softmax(gaussian(60, 5, 3) + [3.0, 0, 0, 0, 0]), method="bbsd")
    assert not same.drift and moved.drift


def test_labels_compare_within_classes():
    a, b = gaussian(150, 6, 1), gaussian(150, 6, 2) + 4.0
    reference = np.concatenate([a, b])
    labels = np.repeat([0, 1], 150)
    window = gaussian(20, 6, 3)  # class 0 only, as a class-ordered table delivers it
    assert drift.detect(reference, window).drift
    within = drift.detect(reference, window, reference_labels=labels, window_labels=np.zeros(20))
    assert not within.drift


def test_bad_input_gets_clear_errors():
    reference = gaussian(50, 8, 1)
    with pytest.raises(mlops.InvalidParameterError, match="`window`.*width 7"):
        drift.detect(reference, gaussian(10, 7, 2))
    with pytest.raises(mlops.InvalidParameterError, match="1 rows"):
        drift.detect(reference, gaussian(1, 8, 2))
    with pytest.raises(mlops.InvalidParameterError, match="`window`"):
        drift.detect(reference, gaussian(0, 8, 2))
    bad = gaussian(10, 8, 2)
    bad[3, 5] = np.nan
    with pytest.raises(mlops.InvalidParameterError, match="row 3 column 5"):
        drift.detect(reference, bad)
    with pytest.raises(mlops.InvalidParameterError, match="unknown method `nope`"):
        drift.detect(reference, gaussian(10, 8, 2), method="nope")
    with pytest.raises(mlops.InvalidParameterError, match="alpha"):
        drift.detect(reference, gaussian(10, 8, 2), alpha=2.0)
    with pytest.raises(mlops.InvalidParameterError, match="softmax"):
        drift.detect(reference, gaussian(10, 8, 2), method="bbsd")


def test_model_features_feed_the_detector(small_model, demo):
    paths = sorted((demo / "monday" / "brick").glob("*.png"))[:12]
    images = np.stack([mlops.read_image(p) for p in paths])[..., None]
    targets, probabilities, features = small_model.predict_embed(images)
    again_targets, again_probabilities = small_model.predict(images)
    np.testing.assert_array_equal(targets, again_targets)
    np.testing.assert_allclose(probabilities, again_probabilities, atol=1e-6)
    assert features.shape[0] == 12 and features.dtype == np.float32
    np.testing.assert_allclose(features, small_model.embed_paths(paths), atol=1e-4)
    result = drift.detect(features[:6], features[6:], method="mmd")
    assert 0.0 < result.p_value <= 1.0
