"""Stage 6: cycle-aligned features, the bundled reference model, prediction.json, deterministic training."""
import json

import numpy as np
import pytest
import torch

from igait_pipeline.reference_model import BUNDLED_DIR, train
from igait_pipeline.schemas import Prediction, Stride
from igait_pipeline.stages import cycles, features, predict, synthetic
from igait_pipeline.stages.features import FEATURE_NAMES, N_POINTS, SERIES, FeaturesError, compute_features


@pytest.fixture(scope="module")
def walker():
    return synthetic.make_walker(20_001, label=0)


@pytest.fixture(scope="module")
def featureset(walker):
    c = cycles.detect_cycles(walker.side, walker.front, "f1")
    return compute_features(walker.side, walker.front, c, walker.metadata)


@pytest.fixture(scope="module")
def reference():
    return predict.load_model_dir(BUNDLED_DIR)


def test_vector_shape_and_names(featureset):
    assert len(FEATURE_NAMES) == len(set(FEATURE_NAMES)) == len(SERIES) * (N_POINTS + 1) + 10 + 5
    assert featureset.names == FEATURE_NAMES
    assert featureset.values.shape == (len(FEATURE_NAMES),) and featureset.values.dtype == np.float64
    assert FEATURE_NAMES[0] == "side_hip_flexion_left_000" and FEATURE_NAMES[N_POINTS - 1] == \
        "side_hip_flexion_left_100"
    assert np.isfinite(featureset.values[: len(SERIES) * N_POINTS]).all()
    d = featureset.as_dict()
    assert d["age_years"] == featureset.patient["age_years"] and d["cadence_spm"] > 60
    assert all(featureset.curves[s].alignment == "own heel strikes" for s in SERIES)
    assert all(featureset.curves[s].cycles >= 2 for s in SERIES)


def _true_cycle_range(angle: np.ndarray, t: np.ndarray, start: float, end: float) -> float:
    sel = (t >= start) & (t <= end)
    return float(angle[sel].max() - angle[sel].min())


def test_side_angles_follow_the_simulated_joint_angles(walker, featureset):
    truth = walker.truth["side"]
    t = np.array([f.t for f in walker.side.frames])
    for foot in ("left", "right"):
        hs = truth["heel_strikes"][foot]
        for joint, series in (("hip_flex", f"side_hip_flexion_{foot}"), ("knee_flex", f"side_knee_flexion_{foot}")):
            true = truth["angles"][foot][joint]
            rng = np.mean([_true_cycle_range(true, t, a, b) for a, b in zip(hs, hs[1:])])
            est = featureset.curves[series].mean
            assert est.max() - est.min() == pytest.approx(rng, abs=6.0), series
            assert est.max() == pytest.approx(np.percentile(true, 99), abs=6.0), series
    # Knee flexion peaks in swing (60-85 % of the cycle), hip extension peaks in late stance (35-65 %).
    knee = featureset.curves["side_knee_flexion_left"].mean
    hip = featureset.curves["side_hip_flexion_left"].mean
    assert 0.6 <= features.PHASES[int(np.argmax(knee))] <= 0.85
    assert 0.35 <= features.PHASES[int(np.argmin(hip))] <= 0.65


def test_curves_do_not_depend_on_walking_direction():
    p = synthetic.sample_params(np.random.default_rng(3), 0)
    p.stride_cv, p.amp_cv, p.noise = 0.005, 0.0, 0.004  # steady cycles, little jitter: the geometry is tested
    out = []
    for d in (1, -1):
        kp, _ = synthetic.side_recording(p, np.random.default_rng(4), direction=d)
        fr, _ = synthetic.front_recording(p, np.random.default_rng(5))
        c = cycles.detect_cycles(kp, fr, "f2")
        meta = synthetic.make_walker(1).metadata
        out.append(compute_features(kp, fr, c, meta))
    for s in ("side_hip_flexion_left", "side_knee_flexion_right"):
        assert np.abs(out[0].curves[s].mean - out[1].curves[s].mean).max() < 4.0, s


def test_unusable_front_view_is_a_clear_error(walker):
    c = cycles.detect_cycles(walker.side, walker.front, "f3")
    blank = walker.front.model_copy(deep=True)
    for f in blank.frames:
        f.landmarks = None
    with pytest.raises(FeaturesError, match="front view: no frames with both ankles visible"):
        compute_features(walker.side, blank, c, walker.metadata)
    with pytest.raises(FeaturesError, match="both the side and the front"):
        compute_features(walker.side, None, c, walker.metadata)


def test_series_without_own_cycles_fall_back_then_fail_clearly(walker):
    c = cycles.detect_cycles(walker.side, walker.front, "f4")
    # Only left strides: the right leg's series are cut at the left heel strikes, shifted half a cycle.
    left_only = c.model_copy(update={"strides": [s for s in c.strides if s.foot == "left"]})
    fs = compute_features(walker.side, walker.front, left_only, walker.metadata)
    assert fs.curves["side_knee_flexion_right"].alignment.startswith("other foot")
    assert fs.curves["side_knee_flexion_left"].alignment == "own heel strikes"
    assert any(w.startswith("side_knee_flexion_right: cycles taken from the other foot") for w in fs.warnings)
    own = compute_features(walker.side, walker.front, c, walker.metadata).curves["side_knee_flexion_right"]
    assert np.abs(fs.curves["side_knee_flexion_right"].mean - own.mean).mean() < 8.0
    # Strides where the side view has no frames and no stride period to fall back on: a clear error.
    nowhere = c.model_copy(update={
        "strides": [Stride(foot="left", start=100.0, end=101.0, duration=1.0)],
        "parameters": {**c.parameters, "stride_time_mean_s": None}})
    with pytest.raises(FeaturesError, match="side_hip_flexion_left has no usable gait cycle"):
        compute_features(walker.side, walker.front, nowhere, walker.metadata)


def test_prediction_validates_and_says_what_it_is(walker, featureset, reference):
    pred = predict.predict(featureset, reference, "f1")
    again = Prediction.model_validate_json(pred.model_dump_json())
    assert again == pred
    assert 0.0 <= pred.score <= 1.0
    assert pred.classification == ("ASD" if pred.score >= 0.5 else "NO ASD")
    card = json.loads((BUNDLED_DIR / "model_card.json").read_text())
    assert pred.model.name == card["name"] == "igait-reference-mlp" and pred.model.version == "0.1.0"
    assert pred.model.sha256 == predict.sha256_file(BUNDLED_DIR / "model.pt") == card["sha256"]
    assert pred.model.clinically_validated is False and "synthetic" in pred.model.trained_on
    assert "NOT CLINICALLY VALIDATED" in pred.disclaimer and "synthetic walkers" in pred.disclaimer
    assert set(pred.features["angle_curves_deg"]) == set(SERIES)
    assert len(pred.features["angle_curves_deg"]["side_knee_flexion_left"]["mean"]) == N_POINTS
    # The threshold decides the class (score >= threshold is "ASD").
    raw = reference.score(featureset)[0]
    assert 0.0 < raw < 1.0
    assert predict.predict(featureset, reference, "f1", threshold=raw).classification == "ASD"
    assert predict.predict(featureset, reference, "f1", threshold=(1 + raw) / 2).classification == "NO ASD"
    with pytest.raises(predict.ModelError):
        predict.predict(featureset, reference, "f1", threshold=1.5)


def test_missing_values_are_imputed_and_listed(featureset, reference):
    fs = features.FeatureSet(featureset.names, featureset.values.copy(), featureset.curves,
                             dict(featureset.parameters), featureset.patient)
    fs.values[FEATURE_NAMES.index("stance_ratio")] = np.nan
    pred = predict.predict(fs, reference, "f1")
    assert pred.features["imputed_with_training_mean"] == ["stance_ratio"]
    assert "stance_ratio" in pred.features["missing"]
    z, _ = reference.standardise(fs)
    assert z[reference.feature_names.index("stance_ratio")] == 0.0


def test_bundled_card_matches_the_pipeline():
    card = json.loads((BUNDLED_DIR / "model_card.json").read_text())
    assert card["feature_names"] == FEATURE_NAMES, "features changed: retrain with scripts/train_reference_model.py"
    assert card["clinically_validated"] is False
    assert "synthetic" in card["trained_on"] and "no data from any real child" in card["trained_on"]
    held = card["metrics"]["held_out_synthetic"]
    assert held["n"] >= 100 and 0.5 < held["roc_auc"] <= 1.0
    assert "scripts/train_reference_model.py" in card["training_command"]
    assert (BUNDLED_DIR / "model.pt").stat().st_size < 500_000


def test_reference_model_separates_fresh_simulated_walkers(reference):
    """Walkers the model never saw (other seeds) from the same simulator: it should rank the classes."""
    y, p = [], []
    for i in range(16):
        w = synthetic.make_walker(50_000 + i, label=i % 2)
        c = cycles.detect_cycles(w.side, w.front, "f5")
        y.append(w.label)
        p.append(reference.score(compute_features(w.side, w.front, c, w.metadata))[0])
    assert train.roc_auc(np.array(y), np.array(p)) >= 0.75


def test_training_is_deterministic():
    ds = train.build_dataset(16, seed=7, workers=1)
    assert not ds.failed and ds.X.shape == (16, len(FEATURE_NAMES))
    again, _ = train.walker_features(7 * 1_000_003 + 5, 1)
    assert np.array_equal(again, ds.X[5], equal_nan=True)
    mean, std = train.scaler(ds.X)
    Z = train.standardise(ds.X, mean, std)
    a = train.train_mlp(Z, ds.y, seed=0, epochs=15).state_dict()
    b = train.train_mlp(Z, ds.y, seed=0, epochs=15).state_dict()
    c = train.train_mlp(Z, ds.y, seed=1, epochs=15).state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
