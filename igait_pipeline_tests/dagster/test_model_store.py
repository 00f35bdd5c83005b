"""Model store on real local storage: seeding the bundled model, sha256 checks, a separately published model."""
import json

import numpy as np
import pytest
import torch
from dagster import build_resources

from igait_pipeline.reference_model import BUNDLED_DIR, REFERENCE_NAME, REFERENCE_VERSION, train
from igait_pipeline.resources.io_manager import StorageResource
from igait_pipeline.resources.model_store import (
    ModelIntegrityError,
    ModelNotFoundError,
    ModelStore,
    ModelStoreResource,
)
from igait_pipeline.storage import LocalStorage
from igait_pipeline.schemas import Prediction
from igait_pipeline.stages import cycles, features, predict, synthetic
from igait_pipeline.stages.predict import MLP, ModelError

PREFIX = f"models/{REFERENCE_NAME}/{REFERENCE_VERSION}/"


@pytest.fixture
def storage(tmp_path):
    return LocalStorage(tmp_path / "store")


@pytest.fixture(scope="module")
def featureset():
    w = synthetic.make_walker(30_003, label=1)
    c = cycles.detect_cycles(w.side, w.front, "m1")
    return features.compute_features(w.side, w.front, c, w.metadata)


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


def _small_model(tmp_path, names, card_extra=None, seed=0):
    """A real (tiny) trained-looking model over a subset of the pipeline's features, as a later model may be."""
    torch.manual_seed(seed)
    net = MLP([len(names), 4, 1])
    ck = train.checkpoint(net, np.zeros(len(names)), np.ones(len(names)), names, 0.0)
    d = tmp_path / "new_model"
    d.mkdir(exist_ok=True)
    torch.save(ck, d / "model.pt")
    card = {"name": "igait-clinical-mlp", "version": "1.0.0", "clinically_validated": False,
            "trained_on": "test fixture weights", "feature_names": names, **(card_extra or {})}
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
    assert model.feature_names == names and model.sha256 == published["sha256"] and model.sha256_verified
    pred = predict.predict(featureset, model, "m1")
    Prediction.model_validate_json(pred.model_dump_json())
    assert pred.model.name == "igait-clinical-mlp" and pred.model.sha256 == published["sha256"]
    # The score is the network applied to the named inputs, z-scored with the stored (here 0/1) scaler.
    x = np.array([featureset.values[features.FEATURE_NAMES.index(n)] for n in names])
    x = np.where(np.isfinite(x), x, 0.0)
    with torch.no_grad():
        expected = torch.sigmoid(model.net(torch.as_tensor(x, dtype=torch.float32)[None]))[0].item()
    assert pred.score == pytest.approx(expected, abs=1e-6)


def test_card_without_sha_is_hashed_and_reported(tmp_path, storage):
    d = _small_model(tmp_path, ["cadence_spm", "age_years"])
    storage.upload(d / "model.pt", "models/igait-clinical-mlp/1.0.0/model.pt")
    storage.upload(d / "model_card.json", "models/igait-clinical-mlp/1.0.0/model_card.json")
    model = ModelStore(storage).load("igait-clinical-mlp", "1.0.0")
    assert not model.sha256_verified and model.sha256 == predict.sha256_file(d / "model.pt")
    assert "records no sha256" in model.notes[0]


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
    d2 = _small_model(tmp_path, ["cadence_spm", "shoe_size"], {"version": "2.0.0"})
    ModelStore(storage).publish(d2)
    with pytest.raises(ModelError, match="shoe_size"):
        predict.predict(featureset, ModelStore(storage).load("igait-clinical-mlp", "2.0.0"), "m1")
