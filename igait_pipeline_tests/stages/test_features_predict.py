"""Stage 6: the feature vector read from cycles.json, the bundled reference model, a prediction that abstains
outside the model's declared domain, the model gate, deterministic training."""
import json
import re

import numpy as np
import pytest
import torch

from igait_pipeline.reference_model import BUNDLED_DIR, REFERENCE_VERSION, synthetic, train
from igait_pipeline.schemas import Cycles, Keypoints, ModelCard, Prediction
from igait_pipeline.stages import cycles, features, predict
from igait_pipeline.stages.features import FEATURE_NAMES, PHASES, SERIES, FeaturesError, compute_features


@pytest.fixture(scope="module")
def walker():
    return synthetic.make_walker(20_001, label=0)


@pytest.fixture(scope="module")
def walker_cycles(walker):
    return cycles.detect_cycles(walker.side, walker.front, "f1")


@pytest.fixture(scope="module")
def featureset(walker, walker_cycles):
    return compute_features(walker_cycles, walker.metadata)


@pytest.fixture(scope="module")
def reference():
    return predict.load_model_dir(BUNDLED_DIR)


def _predict(fs, model, c: Cycles, **kw):
    return predict.predict(fs, model, "f1", flags=c.quality["flags"], stage5_settings=c.settings, **kw)


def test_vector_shape_and_names(featureset):
    assert len(FEATURE_NAMES) == len(set(FEATURE_NAMES)) == len(SERIES) * (len(PHASES) + 1) + 10 + 5
    assert featureset.names == FEATURE_NAMES
    assert featureset.values.shape == (len(FEATURE_NAMES),) and featureset.values.dtype == np.float64
    assert FEATURE_NAMES[0] == "side_hip_flexion_left_000" and FEATURE_NAMES[len(PHASES) - 1] == \
        "side_hip_flexion_left_100"
    assert np.isfinite(featureset.values).all() and not featureset.missing_reasons
    d = featureset.as_dict()
    assert d["age_years"] == featureset.patient["age_years"] and d["cadence_spm"] > 60
    assert all(featureset.curves[s]["alignment"] == "own heel strikes" for s in SERIES)


def test_stage_6_needs_only_cycles_json(walker, walker_cycles, featureset):
    """The features come from the file stage 5 wrote (no keypoints): a JSON round trip gives the same vector."""
    stored = Cycles.model_validate_json(walker_cycles.model_dump_json())
    again = compute_features(stored, walker.metadata)
    assert np.array_equal(again.values, featureset.values)
    old = stored.model_copy(update={"kinematics": {}})
    with pytest.raises(FeaturesError, match="no per-leg joint-angle curves .* re-run stage 5"):
        compute_features(old, walker.metadata)


def test_side_angles_follow_the_simulated_joint_angles(walker, featureset):
    truth = walker.truth["side"]
    t = np.array([f.t for f in walker.side.frames])
    for foot in ("left", "right"):
        hs = truth["heel_strikes"][foot]
        for joint, series in (("hip_flex", f"side_hip_flexion_{foot}"), ("knee_flex", f"side_knee_flexion_{foot}")):
            true = truth["angles"][foot][joint]
            ranges = [np.ptp(true[(t >= a) & (t <= b)]) for a, b in zip(hs, hs[1:]) if b <= t[-1]]
            est = np.array(featureset.curves[series]["mean"])
            assert np.ptp(est) == pytest.approx(np.mean(ranges), abs=6.0), series
            assert est.max() == pytest.approx(np.percentile(true, 99), abs=6.0), series
    # Knee flexion peaks in swing (60-85 % of the cycle), hip extension peaks in late stance (35-65 %).
    assert 60 <= int(np.argmax(featureset.curves["side_knee_flexion_left"]["mean"])) <= 85
    assert 35 <= int(np.argmin(featureset.curves["side_hip_flexion_left"]["mean"])) <= 65


def test_curves_do_not_depend_on_walking_direction():
    p = synthetic.sample_params(np.random.default_rng(3), 0)
    p.stride_cv, p.amp_cv, p.noise = 0.005, 0.0, 0.004  # steady cycles, little jitter: the geometry is tested
    out = []
    for d in (1, -1):
        kp, _ = synthetic.side_recording(p, np.random.default_rng(4), direction=d)
        fr, _ = synthetic.front_recording(p, np.random.default_rng(5))
        out.append(compute_features(cycles.detect_cycles(kp, fr, "f2"), synthetic.make_walker(1).metadata))
    for s in ("side_hip_flexion_left", "side_knee_flexion_right"):
        assert np.abs(np.subtract(out[0].curves[s]["mean"], out[1].curves[s]["mean"])).max() < 4.0, s


def test_prediction_in_domain_says_what_it_is(walker_cycles, featureset, reference):
    pred = _predict(featureset, reference, walker_cycles)
    text = pred.model_dump_json()
    assert Prediction.model_validate_json(text).model_dump_json() == text
    assert pred.in_domain and not pred.out_of_range_inputs and not pred.reasons
    assert pred.classification == ("ASD" if pred.score >= pred.threshold else "NO ASD")
    card = json.loads((BUNDLED_DIR / "model_card.json").read_text())
    assert pred.model.name == card["name"] == "igait-reference-mlp" and pred.model.version == REFERENCE_VERSION
    assert pred.model.sha256 == predict.sha256_file(BUNDLED_DIR / "model.pt") == card["sha256"]
    assert pred.clinically_validated is False is pred.model.clinically_validated
    assert "NOT CLINICALLY VALIDATED" in pred.disclaimer and "synthetic walkers" in pred.disclaimer
    assert pred.settings["stage_5"]["events"]["toe_off_landmark"] == "heel+ankle"
    assert pred.settings["predict"]["abstain_on_missing"] is True and pred.settings["features"]["phase_step"] == 2
    raw = reference.score(featureset)[0]
    assert _predict(featureset, reference, walker_cycles, threshold=raw).classification == "ASD"
    assert _predict(featureset, reference, walker_cycles, threshold=(1 + raw) / 2).classification == "NO ASD"
    with pytest.raises(predict.ModelError):
        _predict(featureset, reference, walker_cycles, threshold=1.5)


def test_an_adult_is_outside_the_domain_and_indeterminate(walker, walker_cycles, reference):
    adult = walker.metadata.model_copy(update={"age": 34.0, "height_cm": 178.0, "weight_kg": 74.0})
    pred = _predict(compute_features(walker_cycles, adult), reference, walker_cycles)
    assert pred.classification == "INDETERMINATE" and not pred.in_domain
    assert "the age is outside the model's domain (3–12 years)" in pred.reasons
    # No patient value in a reason (they reach logs, the event log and SUMMARY.txt); the values are only in
    # out_of_range_inputs.
    assert not [r for r in pred.reasons if re.search(r"(?<![\w.])(34|178|74)(?![\w.])", r)], pred.reasons
    assert {"age_years", "height_cm"} <= {o.name for o in pred.out_of_range_inputs}
    o = next(o for o in pred.out_of_range_inputs if o.name == "age_years")
    assert o.value == 34.0 and o.range[1] < 34.0
    assert 0.0 <= pred.score <= 1.0  # kept, as a number only


def test_a_side_view_in_the_front_slot_is_indeterminate_with_the_real_cause(walker, reference):
    """Issue 9: a side clip put in the front slot moved a score from 0.47 to 1.00; now the job abstains, and says
    why (not `joint angle ... has no usable gait cycle`)."""
    as_front = Keypoints.model_validate({**walker.side.model_dump(), "view": "front"})
    c = cycles.detect_cycles(walker.side, as_front, "f3")
    pred = _predict(compute_features(c, walker.metadata), reference, c)
    assert pred.classification == "INDETERMINATE"
    assert any(r.startswith("quality check front_view_usable failed") and "sideways" in r for r in pred.reasons)
    assert not any("has no usable gait cycle" in r for r in pred.reasons)
    blank = walker.front.model_copy(deep=True)
    for f in blank.frames:
        f.landmarks = None
    c = cycles.detect_cycles(walker.side, blank, "f3")
    pred = _predict(compute_features(c, walker.metadata), reference, c)
    assert pred.classification == "INDETERMINATE"
    assert any("front view unusable: front view: both ankles are visible in only 0" in r for r in pred.reasons)


def test_missing_inputs_make_it_indeterminate_unless_imputation_is_asked_for(walker_cycles, featureset,
                                                                                reference):
    fs = features.FeatureSet(featureset.names, featureset.values.copy(), featureset.curves,
                             dict(featureset.parameters), featureset.patient,
                             {"stance_ratio": "no steady stride with one toe-off in the side view"})
    fs.values[FEATURE_NAMES.index("stance_ratio")] = np.nan
    pred = _predict(fs, reference, walker_cycles)
    assert pred.classification == "INDETERMINATE" and pred.in_domain
    assert any("1 input(s) could not be measured (stance_ratio: no steady stride with one toe-off" in r
               for r in pred.reasons)
    lenient = _predict(fs, reference, walker_cycles, settings=predict.PredictSettings(abstain_on_missing=False))
    assert lenient.classification in ("ASD", "NO ASD")
    assert lenient.features["imputed_with_training_mean"] == ["stance_ratio"]
    z, _ = reference.standardise(fs)
    assert z[reference.feature_names.index("stance_ratio")] == 0.0


def test_bundled_card_passes_the_model_gate_and_matches_the_pipeline():
    card = json.loads((BUNDLED_DIR / "model_card.json").read_text())
    assert predict.model_gate(card, predict.sha256_file(BUNDLED_DIR / "model.pt")) == []
    parsed = ModelCard.model_validate(card)
    assert parsed.feature_names == FEATURE_NAMES, "features changed: retrain with scripts/train_reference_model.py"
    assert parsed.clinically_validated is False and parsed.domain.age_years == (3.0, 12.0)
    assert set(parsed.domain.feature_ranges) == set(FEATURE_NAMES)
    assert "synthetic" in parsed.trained_on and "no data from any real child" in parsed.trained_on
    held = card["metrics"]["held_out_synthetic"]
    assert held["n"] >= 100 and 0.5 < held["roc_auc"] <= 1.0 and held["in_domain_and_complete_share"] >= 0.8
    assert "scripts/train_reference_model.py" in card["training_command"]
    assert (BUNDLED_DIR / "model.pt").stat().st_size < 500_000


def test_the_model_gate_refuses_what_it_must():
    card = json.loads((BUNDLED_DIR / "model_card.json").read_text())
    digest = predict.sha256_file(BUNDLED_DIR / "model.pt")
    no_domain = {k: v for k, v in card.items() if k != "domain"}
    assert any(p.startswith("model card: domain: Field required") for p in predict.model_gate(no_domain, digest))
    unknown = {k: v for k, v in card.items() if k != "clinically_validated"}
    assert any("clinically_validated" in p for p in predict.model_gate(unknown, digest))
    assert any("its card records" in p for p in predict.model_gate(card, "0" * 64))
    assert predict.model_gate(card, None) == ["model.pt is missing"]
    partial = {**card, "domain": {**card["domain"], "feature_ranges": {"age_years": [3, 12]}}}
    assert any("gives no range for 430 input(s)" in p for p in predict.model_gate(partial, digest))


def test_reference_model_separates_fresh_simulated_walkers(reference):
    """Walkers the model never saw (other seeds) from the same simulator: it should rank the classes."""
    y, p = [], []
    for i in range(16):
        w = synthetic.make_walker(50_000 + i, label=i % 2)
        y.append(w.label)
        p.append(reference.score(compute_features(cycles.detect_cycles(w.side, w.front, "f5"), w.metadata))[0])
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
    dom = train.domain(ds.X, FEATURE_NAMES)
    assert train.in_domain_share(ds.X, dom, FEATURE_NAMES) == 1.0
