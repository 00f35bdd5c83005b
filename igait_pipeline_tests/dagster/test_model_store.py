"""Model store on real local storage: seeding the bundled model, sha256 checks, promotion only through the model
gate, a separately published model, and the gate as a blocking asset check on real Dagster materializations."""
import json

import numpy as np
import pytest
import torch
from dagster import AssetKey, build_resources, instance_for_test, materialize

from igait_pipeline import assets
from igait_pipeline.layout import job_key
from igait_pipeline.reference_model import BUNDLED_DIR, REFERENCE_NAME, REFERENCE_VERSION, synthetic, train
from igait_pipeline.resources import build_resources as pipeline_resources
from igait_pipeline.resources.io_manager import StorageResource
from igait_pipeline.resources.model_store import (
    ModelIntegrityError,
    ModelNotFoundError,
    ModelStore,
    ModelStoreResource,
)
from igait_pipeline.schemas import Prediction
from igait_pipeline.stages import cycles, features, predict
from igait_pipeline.stages.network import MLP
from igait_pipeline.stages.predict import ModelError
from igait_pipeline.storage import LocalStorage

PREFIX = f"models/{REFERENCE_NAME}/{REFERENCE_VERSION}/"


@pytest.fixture
def storage(tmp_path):
    return LocalStorage(tmp_path / "store")


@pytest.fixture(scope="module")
def featureset():
    w = synthetic.make_walker(30_003, label=1)
    return features.compute_features(cycles.detect_cycles(w.side, w.front, "m1"), w.metadata)


def test_reference_model_is_seeded_once_and_verified(storage):
    assert not storage.exists(PREFIX + "model.pt")
    model = ModelStore(storage).load()
    assert storage.exists(PREFIX + "model.pt") and storage.exists(PREFIX + "model_card.json")
    assert storage.read_bytes(PREFIX + "model.pt") == (BUNDLED_DIR / "model.pt").read_bytes()
    card = json.loads(storage.read_bytes(PREFIX + "model_card.json"))
    assert model.sha256 == card["sha256"] and model.sha256_verified
    assert (model.name, model.version) == (REFERENCE_NAME, REFERENCE_VERSION)
    assert model.notes[-1].endswith("(seeded from the bundled copy)")
    mtime = (storage.root / PREFIX / "model.pt").stat().st_mtime_ns
    again = ModelStore(storage).load(REFERENCE_NAME, REFERENCE_VERSION)
    assert not again.notes[-1].endswith("(seeded from the bundled copy)")
    assert (storage.root / PREFIX / "model.pt").stat().st_mtime_ns == mtime


def test_changed_model_file_is_refused(storage):
    store = ModelStore(storage)
    store.seed_bundled()
    data = bytearray(storage.read_bytes(PREFIX + "model.pt"))
    data[-100] ^= 0xFF
    storage.write_bytes(PREFIX + "model.pt", bytes(data))
    with pytest.raises(ModelIntegrityError, match="does not match"):
        store.load()


def test_incomplete_model_in_storage_is_not_overwritten(storage):
    storage.write_bytes(PREFIX + "model.pt", b"something else")
    with pytest.raises(ModelIntegrityError, match="only one of"):
        ModelStore(storage).load()
    assert storage.read_bytes(PREFIX + "model.pt") == b"something else"


def test_unknown_model_lists_what_is_there(storage):
    ModelStore(storage).seed_bundled()
    with pytest.raises(ModelNotFoundError, match=f"versions of {REFERENCE_NAME} in storage: {REFERENCE_VERSION}"):
        ModelStore(storage).load(REFERENCE_NAME, "9.9.9")
    with pytest.raises(ValueError, match="cannot be part of a storage key"):
        ModelStore(storage).load("../etc", "1")


def _small_model(tmp_path, names, card_extra=None, seed=0, version="1.0.0"):
    """A real (tiny) trained-looking model over a subset of the pipeline's features, as a later model may be, with
    a card that passes the model gate (unless card_extra says otherwise; None values drop a field)."""
    torch.manual_seed(seed)
    net = MLP([len(names), 4, 1])
    ck = train.checkpoint(net, np.zeros(len(names)), np.ones(len(names)), names, 0.0)
    d = tmp_path / f"new_model_{version}"
    d.mkdir(exist_ok=True)
    torch.save(ck, d / "model.pt")
    card = {"name": "igait-clinical-mlp", "version": version, "clinically_validated": False,
            "sha256": predict.sha256_file(d / "model.pt"), "trained_on": "test fixture weights",
            "intended_use": "tests", "feature_names": names,
            "domain": {"age_years": [3, 12], "rule": "wide open (test)",
                       "feature_ranges": {n: [-1e6, 1e6] for n in names}}}
    card.update(card_extra or {})
    card = {k: v for k, v in card.items() if v is not None}
    (d / "model_card.json").write_text(json.dumps(card))
    return d


def test_published_model_loads_through_the_dagster_resource(tmp_path, featureset):
    root = tmp_path / "store"
    names = features.PARAMETERS + features.PATIENT
    published = ModelStore(LocalStorage(root)).publish(_small_model(tmp_path, names))
    assert len(published["sha256"]) == 64
    res = ModelStoreResource(storage=StorageResource(root=str(root)), model_name="igait-clinical-mlp",
                             model_version="1.0.0")
    with build_resources({"model_store": res}) as r:
        model = r.model_store.load()
        assert r.model_store.gate()[0] == []
    assert model.feature_names == names and model.sha256 == published["sha256"] and model.sha256_verified
    pred = predict.predict(featureset, model, "m1")
    Prediction.model_validate_json(pred.model_dump_json())
    assert pred.model.name == "igait-clinical-mlp" and pred.model.sha256 == published["sha256"]
    assert pred.in_domain and pred.classification in ("ASD", "NO ASD")
    # The score is the network applied to the named inputs, z-scored with the stored (here 0/1) scaler.
    x = np.array([featureset.values[features.FEATURE_NAMES.index(n)] for n in names])
    with torch.no_grad():
        expected = torch.sigmoid(model.net(torch.as_tensor(x, dtype=torch.float32)[None]))[0].item()
    assert pred.score == pytest.approx(expected, abs=1e-6)


def test_promotion_only_through_the_model_gate(tmp_path, storage):
    store = ModelStore(storage)
    for extra, why in (({"sha256": None}, "sha256: Field required"), ({"domain": None}, "domain: Field required"),
                       ({"clinically_validated": None}, "clinically_validated: Field required"),
                       ({"sha256": "0" * 64}, "its card records")):
        with pytest.raises(ModelIntegrityError, match=f"fails the model gate, not published: .*{why}"):
            store.publish(_small_model(tmp_path, ["cadence_spm", "age_years"], extra))
    assert store.versions("igait-clinical-mlp") == []
    # Card and weights side by side in models/{name}/{version}/.
    store.publish(_small_model(tmp_path, ["cadence_spm", "age_years"]))
    assert {o.key for o in storage.list("models/igait-clinical-mlp/")} == {
        "models/igait-clinical-mlp/1.0.0/model.pt", "models/igait-clinical-mlp/1.0.0/model_card.json"}
    # A card put into storage some other way, without its hash, is caught by the gate on the stored copy.
    d = _small_model(tmp_path, ["cadence_spm"], {"sha256": None}, version="1.1.0")
    storage.upload(d / "model.pt", "models/igait-clinical-mlp/1.1.0/model.pt")
    storage.upload(d / "model_card.json", "models/igait-clinical-mlp/1.1.0/model_card.json")
    problems, checked = store.gate("igait-clinical-mlp", "1.1.0")
    assert any("sha256: Field required" in p for p in problems)
    assert checked["sha256"] == predict.sha256_file(d / "model.pt")


def test_wrong_card_sha_or_foreign_file_is_refused(tmp_path, storage, featureset):
    d = _small_model(tmp_path, ["cadence_spm"], {"sha256": "0" * 64})
    with pytest.raises(ModelIntegrityError):
        ModelStore(storage).publish(d)
    # A file that is not a checkpoint, with a card that does record its hash: caught on load.
    (d / "model.pt").write_bytes(b"not a torch file")
    card = json.loads((d / "model_card.json").read_text())
    card["sha256"] = predict.sha256_file(d / "model.pt")
    (d / "model_card.json").write_text(json.dumps(card))
    ModelStore(storage).publish(d)
    with pytest.raises(ModelError, match="not a loadable torch checkpoint"):
        ModelStore(storage).load("igait-clinical-mlp", "1.0.0")
    # A model that needs a feature the pipeline does not produce.
    d2 = _small_model(tmp_path, ["cadence_spm", "shoe_size"], version="2.0.0")
    ModelStore(storage).publish(d2)
    with pytest.raises(ModelError, match="shoe_size"):
        predict.predict(featureset, ModelStore(storage).load("igait-clinical-mlp", "2.0.0"), "m1")


def _job_at_stage_5(storage, job_id: str, video) -> None:
    """A job whose upload and stage 5 files are in storage; stage 5 made by the stage code from a simulated child's
    keypoints (stage 6 reads only cycles.json and the metadata)."""
    w = synthetic.make_walker(30_011, label=0)
    for view in ("front", "side"):
        storage.upload(video, job_key(job_id, 0, f"{view}.mp4"))
    meta = w.metadata.model_dump()
    meta.update(height=f"{meta.pop('height_cm')} cm", weight=f"{meta.pop('weight_kg')} kg")
    storage.write_bytes(job_key(job_id, 0, "metadata.json"), json.dumps(meta).encode())
    gait = cycles.measure_gait(w.side, w.front, job_id)
    storage.write_bytes(job_key(job_id, 5, "cycles.json"), gait.cycles.model_dump_json().encode())
    for name, png in gait.plots().items():
        storage.write_bytes(job_key(job_id, 5, name), png)


def _materialize_prediction(storage, job_id):
    with instance_for_test() as instance:
        instance.add_dynamic_partitions("jobs", [job_id])
        result = materialize([assets.upload, *assets.STAGE_ASSETS], selection=[assets.prediction],
                             partition_key=job_id, instance=instance,
                             resources=pipeline_resources(str(storage.root)), raise_on_error=False)
        checks = result.get_asset_check_evaluations()
        return result, checks


def test_model_gate_is_a_blocking_check_on_prediction(storage, sample_video):
    spec = next(iter(assets.prediction.check_specs))
    assert spec.name == assets.MODEL_GATE and spec.blocking and spec.asset_key == AssetKey("prediction")
    _job_at_stage_5(storage, "gate_1", sample_video)
    result, checks = _materialize_prediction(storage, "gate_1")
    assert result.success and len(checks) == 1 and checks[0].passed
    pred = Prediction.model_validate_json(storage.read_bytes(job_key("gate_1", 6, "prediction.json")))
    assert pred.in_domain and pred.classification in ("ASD", "NO ASD")
    # Stage 6 may only read models/ (layout.ACCESS): it verified and used the bundled copy, and stored nothing.
    assert list(storage.list("models/")) == []
    assert checks[0].metadata["model_key"].value == str(BUNDLED_DIR / "model.pt")
    ModelStore(storage).seed_bundled()  # what a handle that may write models/ (the control plane) does
    result, checks = _materialize_prediction(storage, "gate_1")
    assert result.success and checks[0].passed and checks[0].metadata["model_key"].value == PREFIX + "model.pt"
    # The stored card loses its domain: the check fails (and blocks what follows); the job abstains.
    card_key = PREFIX + "model_card.json"
    card = json.loads(storage.read_bytes(card_key))
    storage.write_bytes(card_key, json.dumps({k: v for k, v in card.items() if k != "domain"}).encode())
    result, checks = _materialize_prediction(storage, "gate_1")
    assert len(checks) == 1 and not checks[0].passed
    assert "domain: Field required" in str(checks[0].metadata["problems"].value)
    pred = Prediction.model_validate_json(storage.read_bytes(job_key("gate_1", 6, "prediction.json")))
    assert pred.classification == "INDETERMINATE" and any("declares no domain" in r for r in pred.reasons)
