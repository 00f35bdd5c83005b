"""The model store: scoring models kept in object storage at `models/{name}/{version}/model.pt` + `model_card.json`.

A model version lives in one folder, `models/{name}/{version}/`, card and weights side by side. It gets there only
through `ModelStore.publish`, which runs the model gate (`predict.model_gate`: the card validates against
`schemas.ModelCard`, declares its domain and validation status, and records model.pt's sha256) and refuses a model
that fails it; the prediction asset runs the same gate as a blocking asset check on every job. `ModelStore.load`
downloads a model through the `Storage` interface, checks model.pt against the sha256 its card records
(ModelIntegrityError on a mismatch) and builds a `LoadedModel` (igait_pipeline.stages.predict). The bundled
reference model (igait_pipeline/reference_model, trained on synthetic walkers) is copied into storage the first
time it is asked for (by a handle that may write models/; a stage's step, which may only read them, verifies and
uses the bundled copy in place instead); any other name/version must have been published there with
`ModelStore.publish`, e.g. a model trained on real data later (files copied there by other means still meet the
gate on every job).

The model in use is recorded in `models/in_use.json` (`ModelStore.in_use`, written by `ModelStore.promote` when
the `screening_model` asset is materialized): name, version, sha256, when and by which run it was promoted, what
it replaced, and the history of every promotion (a rollback is a promotion of what was replaced). No pointer: the
bundled reference model is in use.

`ModelStoreResource` is the Dagster resource: which model the prediction asset uses — the model in use, unless a
name and version are configured explicitly.
"""

import json
import tempfile
from pathlib import Path

from dagster import ConfigurableResource, ResourceDependency

from igait_pipeline.layout import model_prefix
from igait_pipeline.reference_model import BUNDLED_DIR, REFERENCE_NAME, REFERENCE_VERSION
from igait_pipeline.resources.io_manager import StorageResource
from igait_pipeline.stages.predict import LoadedModel, ModelError, load_model, model_gate, sha256_file
from igait_pipeline.storage import Storage
from igait_pipeline.storage.scope import ScopeError

MODEL_FILE = "model.pt"
CARD_FILE = "model_card.json"
IN_USE_KEY = "models/in_use.json"


class ModelNotFoundError(FileNotFoundError):
    """The requested model is not in storage (and is not the bundled reference model)."""


class ModelIntegrityError(ModelError):
    """model.pt does not match the sha256 its card records, or the card does not describe the model asked for."""


def _clean(part: str, what: str) -> str:
    if not part or "/" in part or part in (".", ".."):
        raise ValueError(f"model {what} {part!r} cannot be part of a storage key")
    return part


class ModelStore:
    def __init__(self, storage: Storage, bundled_dir: Path = BUNDLED_DIR):
        self.storage = storage
        self.bundled_dir = Path(bundled_dir)

    # ---------- keys ----------
    @staticmethod
    def keys(name: str, version: str) -> tuple[str, str]:
        prefix = model_prefix(_clean(name, "name"), _clean(version, "version"))
        return prefix + MODEL_FILE, prefix + CARD_FILE

    def bundled_card(self) -> dict:
        return json.loads((self.bundled_dir / CARD_FILE).read_text())

    def is_bundled(self, name: str, version: str) -> bool:
        card = self.bundled_card()
        return (name, version) == (card.get("name"), card.get("version"))

    def versions(self, name: str) -> list[str]:
        prefix = f"models/{_clean(name, 'name')}/"
        return sorted({o.key[len(prefix):].split("/")[0] for o in self.storage.list(prefix)
                       if o.key.endswith("/" + CARD_FILE)})

    # ---------- writing ----------
    def publish(self, directory: str | Path, name: str | None = None, version: str | None = None) -> dict:
        """Promote a model: upload model.pt and model_card.json from a local directory, model first, card last (a
        reader that finds the card finds the model), after the model gate passes; ModelIntegrityError otherwise."""
        d = Path(directory)
        card = json.loads((d / CARD_FILE).read_text())
        name, version = name or card.get("name"), version or card.get("version")
        if (card.get("name"), card.get("version")) != (name, version):
            raise ModelIntegrityError(f"the card in {d} describes {card.get('name')} {card.get('version')}, "
                                      f"not {name} {version}")
        digest = sha256_file(d / MODEL_FILE) if (d / MODEL_FILE).is_file() else None
        problems = model_gate(card, digest)
        if problems:
            raise ModelIntegrityError(f"{d} fails the model gate, not published: " + "; ".join(problems))
        model_key, card_key = self.keys(name, version)
        self.storage.upload(d / MODEL_FILE, model_key)
        self.storage.write_bytes(card_key, (json.dumps(card, indent=1) + "\n").encode())
        return card

    def seed_bundled(self) -> bool:
        """Copy the bundled reference model into storage unless it is there; True if it was copied."""
        card = self.bundled_card()
        model_key, card_key = self.keys(card["name"], card["version"])
        have_model, have_card = self.storage.exists(model_key), self.storage.exists(card_key)
        if have_model and have_card:
            return False
        if have_model != have_card:
            raise ModelIntegrityError(f"storage holds only one of {model_key} and {card_key}; remove it or "
                                      f"publish the model completely")
        self.publish(self.bundled_dir)
        return True

    def _bundled_in_place(self, name: str, version: str) -> bool | None:
        """For the bundled model missing from storage: seed it (True), or, where this handle may not write models/
        (a stage's step), None: the bundled copy is read in place. False: nothing to do."""
        _, card_key = self.keys(name, version)
        if self.storage.exists(card_key) or not self.is_bundled(name, version):
            return False
        try:
            return self.seed_bundled()
        except ScopeError:
            return None

    def gate(self, name: str, version: str) -> tuple[list[str], dict]:
        """Run the model gate on a stored model: (problems, {"card_key", "model_key", "sha256"})."""
        model_key, card_key = self.keys(name, version)
        if self._bundled_in_place(name, version) is None:
            model_key, card_key = (str(self.bundled_dir / MODEL_FILE), str(self.bundled_dir / CARD_FILE))
            digest = sha256_file(self.bundled_dir / MODEL_FILE)
            return model_gate(self.bundled_card(), digest), {"card_key": card_key, "model_key": model_key,
                                                             "sha256": digest}
        info = {"card_key": card_key, "model_key": model_key, "sha256": None}
        if not self.storage.exists(card_key):
            return [f"{card_key} is not in storage"], info
        try:
            card = json.loads(self.storage.read_bytes(card_key))
        except ValueError as e:
            return [f"{card_key} is not JSON: {e}"], info
        if not isinstance(card, dict):
            return [f"{card_key} is not a JSON object"], info
        digest = None
        if self.storage.exists(model_key):
            with tempfile.TemporaryDirectory(prefix="igait-model-") as tmp:
                digest = sha256_file(self.storage.download(model_key, Path(tmp) / MODEL_FILE))
        info["sha256"] = digest
        problems = model_gate(card, digest)
        if (card.get("name"), card.get("version")) != (name, version):
            problems.append(f"{card_key} describes {card.get('name')} {card.get('version')}, not {name} {version}")
        return problems, info

    # ---------- the model in use ----------
    def in_use(self) -> dict:
        """The model in use: the record `promote` wrote, or the bundled reference model (`"promoted": None`)."""
        if self.storage.exists(IN_USE_KEY):
            return json.loads(self.storage.read_bytes(IN_USE_KEY))
        card = self.bundled_card()
        return {"name": card["name"], "version": card["version"], "sha256": card["sha256"], "promoted": None,
                "replaced": None, "history": []}

    def promote(self, name: str, version: str, by: str, at: str) -> dict:
        """Make name/version the model in use (it must pass the model gate as stored); record what it replaced.
        The pointer is one object written whole: readers see the old model or the new one."""
        problems, info = self.gate(name, version)
        if problems:
            raise ModelIntegrityError(f"model {name} {version} fails the model gate, not promoted: "
                                      + "; ".join(problems))
        before = self.in_use()
        replaced = {k: before.get(k) for k in ("name", "version", "sha256")}
        entry = {"name": name, "version": version, "sha256": info["sha256"], "promoted": {"at": at, "by": by}}
        record = {**entry, "replaced": replaced, "history": [*before.get("history", []), {**entry,
                                                                                       "replaced": replaced}]}
        self.storage.write_bytes(IN_USE_KEY, (json.dumps(record, indent=1) + "\n").encode())
        return record

    # ---------- reading ----------
    def load(self, name: str = REFERENCE_NAME, version: str = REFERENCE_VERSION) -> LoadedModel:
        """Download, verify and load a model. Seeds the bundled reference model if it is the one asked for."""
        model_key, card_key = self.keys(name, version)
        seeded = self._bundled_in_place(name, version)
        if seeded is None:
            card, local = self.bundled_card(), self.bundled_dir / MODEL_FILE
            digest = sha256_file(local)
            if card.get("sha256") != digest:
                raise ModelIntegrityError(f"the bundled {local}: sha256 {digest} does not match its card")
            model = load_model(local, card, sha256=digest)
            model.notes.append(f"the bundled copy {local} (not in storage; this step may not store it)")
            return model
        if not self.storage.exists(card_key) or not self.storage.exists(model_key):
            have = self.versions(name)
            raise ModelNotFoundError(f"model {name} {version} is not in storage (looked for {card_key} and "
                                     f"{model_key}); versions of {name} in storage: {', '.join(have) or 'none'}")
        card = json.loads(self.storage.read_bytes(card_key))
        if (card.get("name"), card.get("version")) != (name, version):
            raise ModelIntegrityError(f"{card_key} describes {card.get('name')} {card.get('version')}, "
                                      f"not {name} {version}")
        with tempfile.TemporaryDirectory(prefix="igait-model-") as tmp:
            local = self.storage.download(model_key, Path(tmp) / MODEL_FILE)
            digest = sha256_file(local)
            if card.get("sha256") and card["sha256"] != digest:
                raise ModelIntegrityError(f"{model_key}: sha256 {digest} does not match the {card['sha256']} "
                                          f"recorded in {card_key}; the model file was changed or corrupted")
            model = load_model(local, card, sha256=digest)
        model.notes.append(f"loaded from {self.storage.url(model_key)}" + (" (seeded from the bundled copy)"
                                                                             if seeded else ""))
        return model


class ModelStoreResource(ConfigurableResource):
    """Which scoring model the prediction asset uses, loaded from the model store in `storage`: the model in use
    (`models/in_use.json`, set by promoting a candidate: the screening_model asset), or the one named here."""

    storage: ResourceDependency[StorageResource]
    model_name: str = ""
    """Empty: the model in use. Set both to pin a model (e.g. to compare two models on one job)."""
    model_version: str = ""

    def store(self) -> ModelStore:
        return ModelStore(self.storage.get())

    def chosen(self) -> tuple[str, str]:
        if self.model_name and self.model_version:
            return self.model_name, self.model_version
        rec = self.store().in_use()
        return rec["name"], rec["version"]

    def load(self) -> LoadedModel:
        return self.store().load(*self.chosen())

    def gate(self) -> tuple[list[str], dict]:
        """The model gate on the model in use, as stored: (problems, what was checked)."""
        return self.store().gate(*self.chosen())
