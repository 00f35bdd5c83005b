"""The research layer as assets (unpartitioned; they read the per-job outputs): thin wrappers over
igait_pipeline.research.

    gait_cycles[job] ─┐
    upload[job] ──────┼─ gait_feature_table ── candidate_model ──(blocking checks)── screening_model ── prediction[job]
    clinical_labels ──┘

* `clinical_labels`: the team's label file `research/labels.csv` in storage, an observable source asset whose
  data version is the file's sha256 (the daemon observes it every few minutes: a changed file is a new version).
* `gait_feature_table`: one row per finished job, `research/gait_feature_table.parquet` (units and descriptions
  in the schema, shown in the UI as the asset's column schema); incremental (rows of unchanged jobs reused).
* `candidate_model`: trains (or, with `import_dir`, imports) a model into `models/{name}/{version}/` and reports
  its cross-validated (or external) metrics; four blocking asset checks gate it.
* `screening_model`: the model in use; materializing it promotes a candidate whose checks passed (or rolls back
  to what a promotion replaced). Its data version is the weights' sha256, so every prediction made with another
  model shows as stale in the UI: a backfill of prediction + results_archive re-scores them (`igait rescore`).
"""

import base64
import datetime as dt
import json
import shutil
import tempfile
from pathlib import Path

from dagster import (
    AssetCheckKey,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    Config,
    DataVersion,
    Failure,
    MaterializeResult,
    MetadataValue,
    ObserveResult,
    TableColumn,
    TableSchema,
    asset,
    observable_source_asset,
)

from igait_pipeline.layout import CYCLES, SCREENING_MODEL, UPLOAD, job_key
from igait_pipeline.partitions import job_partitions
from igait_pipeline.research import labels as labels_mod
from igait_pipeline.research import table as table_mod
from igait_pipeline.research import training
from igait_pipeline.resources.io_manager import StorageResource
from igait_pipeline.resources.model_store import CARD_FILE, MODEL_FILE, ModelIntegrityError, ModelStoreResource
from igait_pipeline.stages.predict import ModelError, load_model_dir, model_gate, sha256_file

RESEARCH_GROUP = "research"
LABELS_KEY = "research/labels.csv"
DEFAULT_MODEL_NAME = "igait-screening"
CHECKS = ("card_complete", "participants_per_class", "auc_lower_bound", "participant_in_one_fold")


def _known_jobs(context) -> set[str]:
    return set(context.instance.get_dynamic_partitions(job_partitions.name))


def _read_labels(context, storage) -> tuple[bytes, object]:
    if not storage.exists(LABELS_KEY):
        return b"", None
    data = storage.read_bytes(LABELS_KEY)
    try:
        return data, labels_mod.parse_labels(data, _known_jobs(context), name=LABELS_KEY)
    except labels_mod.LabelFileError as e:
        raise Failure(description=f"label file refused, nothing read: {e}", allow_retries=False) from None


@observable_source_asset(
    name="clinical_labels", group_name=RESEARCH_GROUP, auto_observe_interval_minutes=5,
    description=f"The research team's labels: `{LABELS_KEY}` in storage (job_id,label,source,date; label ASD or "
                "NO ASD). Observed every 5 minutes by the daemon (and on demand): its data version is the file's "
                "sha256, so a changed file is a new version and the feature table downstream shows stale. An "
                "unknown job, a job labelled twice or an unknown label refuses the whole file, naming the line.",
)
def clinical_labels(context, storage: StorageResource) -> ObserveResult:
    data, parsed = _read_labels(context, storage.get())
    if parsed is None:
        return ObserveResult(data_version=DataVersion("absent"), metadata={"rows": 0, "present": False})
    return ObserveResult(data_version=DataVersion(labels_mod.digest(data)), metadata={
        "rows": len(parsed), "participants": int(parsed["participant"].nunique()),
        "label_balance": MetadataValue.json({k: int(v) for k, v in parsed["label"].value_counts().items()}),
        "sources": MetadataValue.json(sorted(parsed["source"].unique())), "present": True})


def _md_table(df, columns: list[str], rows: int = 5) -> str:
    head = df[columns].head(rows)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for rec in head.itertuples(index=False):
        lines.append("| " + " | ".join("" if v != v else (f"{v:.4g}" if isinstance(v, float) else str(v))
                                       for v in rec) + " |")
    return "\n".join(lines)


@asset(
    group_name=RESEARCH_GROUP, kinds={"pandas", "parquet"}, deps=[CYCLES.asset, UPLOAD.asset, clinical_labels.key],
    description="One row per finished job (stage 5 done): the feature vector stage 6 scores (joint-angle curves "
                "over the gait cycle, cycle SD, gait parameters, age/sex/height/weight), per parameter the strides "
                "it used (n__…, 0 when not measured), stage 5's quality flags, the view used, and the label where "
                "the label file has one — never e-mail or other metadata, never a prediction. Written to "
                f"`{table_mod.TABLE_KEY}` (open with pandas.read_parquet; each column's unit and description are in "
                "the Parquet schema and in this asset's column schema). Incremental: rows of jobs whose "
                "cycles.json and metadata.json are unchanged are reused.",
)
def gait_feature_table(context: AssetExecutionContext, storage: StorageResource) -> MaterializeResult:
    st = storage.get()
    _, labels = _read_labels(context, st)
    previous = table_mod.from_parquet(st.read_bytes(table_mod.TABLE_KEY)) if st.exists(table_mod.TABLE_KEY) \
        else None
    jobs = table_mod.finished_jobs(st)
    context.log.info(f"feature table: {len(jobs)} finished jobs in storage")

    def read(job_id: str, what: str) -> bytes:
        return st.read_bytes(job_key(job_id, 5, "cycles.json") if what == "cycles" else
                             job_key(job_id, 0, "metadata.json"))

    rows, stats = table_mod.build_rows(jobs, read, previous,
                                       progress=lambda i, n: context.log.info(f"feature table: row {i} of {n}"))
    for job_id, why in stats["skipped"].items():
        context.log.warning(f"job {job_id}: left out of the feature table: {why}")
    if labels is not None:
        unlabelled_finished = set(labels["job_id"]) - set(rows["job_id"] if len(rows) else [])
        for job_id in sorted(unlabelled_finished):
            context.log.warning(f"job {job_id}: labelled but not in the table (stage 5 not done, or left out)")
        rows = table_mod.with_labels(rows, labels)
    data = table_mod.to_parquet(rows)
    st.write_bytes(table_mod.TABLE_KEY, data)
    summ = table_mod.summary(rows)
    preview_cols = [c for c in ["job_id", "participant", "label", "view_used", "steady_strides", "cadence_spm",
                                "stride_time_mean_s", "n__stride_time_mean_s", "age_years"] if c in rows.columns]
    return MaterializeResult(metadata={
        "rows": summ["rows"], "participants": summ["participants"], "labelled_rows": summ["labelled_rows"],
        "label_balance": MetadataValue.json(summ["label_balance"]),
        "missing_share": MetadataValue.json(summ["missing_share"]),
        "most_missing": MetadataValue.json(summ["most_missing"]),
        "rows_reused": stats["reused"], "rows_computed": stats["computed"], "jobs_left_out": len(stats["skipped"]),
        "columns": len(rows.columns), "path": MetadataValue.path(st.url(table_mod.TABLE_KEY)),
        "preview": MetadataValue.md(_md_table(rows, preview_cols) if len(rows) else "(no finished job)"),
        "dagster/column_schema": _column_schema(data)})


def _column_schema(parquet: bytes) -> TableSchema:
    """The Parquet file's own schema (type, unit, description per column) as Dagster's column schema."""
    cols = []
    for f in table_mod.parquet_schema(parquet):
        meta = {k.decode(): v.decode() for k, v in (f.metadata or {}).items()}
        unit = f" [{meta['unit']}]" if meta.get("unit") else ""
        cols.append(TableColumn(name=f.name, type=str(f.type), description=f"{meta.get('description', '')}{unit}"))
    return TableSchema(columns=cols)


class CandidateConfig(Config):
    """How the candidate is trained (or imported) and the gate it must pass (recorded in its card)."""

    name: str = DEFAULT_MODEL_NAME
    import_dir: str = ""
    """A local directory with model.pt and model_card.json of a model trained elsewhere (TorchScript, or a torch
    checkpoint of the igait formats): imported instead of trained, and validated on the labelled rows."""
    folds: int = 5
    C: float = 0.05
    threshold: float = 0.5
    bootstrap: int = 1000
    seed: int = 0
    min_participants_per_class: int = 10
    """The gate: labelled participants needed in each class."""
    min_auc_lower_bound: float = 0.6
    """The gate: the lower end of the AUC's 95 % bootstrap interval must reach this."""


def _png_md(png: bytes, alt: str) -> MetadataValue:
    return MetadataValue.md(f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})")


def _gate(card: dict, digest: str | None, table, folds, metrics: dict, config: CandidateConfig,
          version: str) -> list[AssetCheckResult]:
    rows = training.labelled(table)
    per_class = training.participants_per_class(rows) if len(rows) else {}
    leaks = training.participants_in_two_folds(folds) if folds is not None else []
    problems = model_gate(card, digest)
    for key in ("training", "metrics", "domain", "feature_names"):
        if not card.get(key):
            problems.append(f"the card has no {key}")
    lo = (metrics.get("roc_auc_ci95") or [None])[0]
    short = {k: v for k, v in per_class.items() if v < config.min_participants_per_class}
    missing = [c for c in labels_mod.LABELS if c not in per_class]
    common = {"model_version": version}
    return [
        AssetCheckResult(check_name="card_complete", passed=not problems, severity=AssetCheckSeverity.ERROR,
                         metadata={**common, "problems": MetadataValue.json(problems)}),
        AssetCheckResult(check_name="participants_per_class", passed=not short and not missing,
                         severity=AssetCheckSeverity.ERROR,
                         description=None if not short and not missing else
                         f"labelled participants per class {per_class}: each class needs at least "
                         f"{config.min_participants_per_class}",
                         metadata={**common, "per_class": MetadataValue.json(per_class),
                                   "minimum": config.min_participants_per_class}),
        AssetCheckResult(check_name="auc_lower_bound", passed=lo is not None and lo == lo
                         and lo >= config.min_auc_lower_bound, severity=AssetCheckSeverity.ERROR,
                         metadata={**common, "roc_auc": metrics.get("roc_auc"),
                                   "roc_auc_ci95": MetadataValue.json(metrics.get("roc_auc_ci95")),
                                   "minimum_lower_bound": config.min_auc_lower_bound}),
        AssetCheckResult(check_name="participant_in_one_fold", passed=folds is not None and not leaks,
                         severity=AssetCheckSeverity.ERROR,
                         description=None if folds is not None and not leaks else
                         (f"participants in two folds (trained and tested on): {', '.join(leaks[:10])}" if leaks
                          else "no fold assignment recorded"),
                         metadata={**common, "participants_in_two_folds": MetadataValue.json(leaks)}),
    ]


@asset(
    group_name=RESEARCH_GROUP, kinds={"scikitlearn", "pytorch"}, deps=[gait_feature_table],
    check_specs=[AssetCheckSpec(name, asset="candidate_model", blocking=True, description=desc) for name, desc in (
        ("card_complete", "The card validates (schemas.ModelCard), records model.pt's sha256, its training data, "
                          "metrics, domain and features."),
        ("participants_per_class", "At least min_participants_per_class labelled participants in each class."),
        ("auc_lower_bound", "The lower end of the cross-validated (or external) AUC's 95 % bootstrap interval "
                            "reaches min_auc_lower_bound."),
        ("participant_in_one_fold", "Every participant's jobs are in one cross-validation fold (no child both "
                                    "trained and tested on)."))],
    description="A candidate screening model trained on the labelled rows of gait_feature_table: an L2 logistic "
                "regression (scikit-learn) on the cycle-aligned features, cross-validated grouped by participant "
                "beside the reference network; ROC AUC with a bootstrap interval, sensitivity/specificity at the "
                "threshold, Brier score, confusion matrix, ROC plot. Written to models/{name}/{version}/ with a "
                "card recording the training data (count, label source, hash of the job IDs), features, domain "
                "and metrics. With import_dir: a model trained elsewhere, validated on the labelled rows instead. "
                "Promotion (screening_model) needs all four blocking checks to pass.",
)
def candidate_model(context: AssetExecutionContext, config: CandidateConfig, storage: StorageResource,
                    model_store: ModelStoreResource):
    st = storage.get()
    if not st.exists(table_mod.TABLE_KEY):
        raise Failure(description="no feature table: materialize gait_feature_table first", allow_retries=False)
    table = table_mod.from_parquet(st.read_bytes(table_mod.TABLE_KEY))
    settings = training.TrainSettings(folds=config.folds, C=config.C, threshold=config.threshold,
                                      bootstrap=config.bootstrap, seed=config.seed)
    gate = {"min_participants_per_class": config.min_participants_per_class,
            "min_auc_lower_bound": config.min_auc_lower_bound}
    with tempfile.TemporaryDirectory(prefix="igait-candidate-") as tmp:
        out = Path(tmp) / "model"
        try:
            if config.import_dir:
                card, folds, metrics, png = _import(config, table, settings, out)
            else:
                cand = training.train_candidate(table, config.name, settings)
                cand.card["gate"] = gate
                cand.write(out)
                card, folds, png = cand.card, cand.folds, cand.roc_png
                metrics = card["metrics"]["cross_validated"]
        except (training.TrainingError, ModelError) as e:
            raise Failure(description=f"candidate model: {e}", allow_retries=False) from None
        digest = sha256_file(out / MODEL_FILE)
        version = card["version"]
        try:
            model_store.store().publish(out)
        except ModelIntegrityError as e:
            context.log.error(str(e))  # not stored: the card_complete check below fails with the same problems
        context.log.info(f"candidate {card['name']} {version}: AUC {metrics.get('roc_auc')} "
                         f"{metrics.get('roc_auc_ci95')}")
        checks = _gate(card, digest, table, folds, metrics, config, version)
    meta = {"model_name": card["name"], "model_version": version, "sha256": digest,
            "roc_auc": metrics.get("roc_auc"), "roc_auc_ci95": MetadataValue.json(metrics.get("roc_auc_ci95")),
            "sensitivity": metrics.get("sensitivity"), "specificity": metrics.get("specificity"),
            "brier": metrics.get("brier"), "confusion": MetadataValue.json(metrics.get("confusion")),
            "participants_per_class": MetadataValue.json(card.get("training", {}).get("participants_per_class")),
            "trained_on": card.get("trained_on", ""), "metrics": MetadataValue.json(card.get("metrics", {}))}
    if png:
        meta["roc"] = _png_md(png, "ROC curve")
    return MaterializeResult(metadata=meta, data_version=DataVersion(digest), check_results=checks)


def _import(config: CandidateConfig, table, settings, out: Path):
    """A model trained elsewhere: copied, loaded (its format), scored on the labelled rows (external validation:
    its folds are none; the participant_in_one_fold check passes only if its card says it never saw them)."""
    src = Path(config.import_dir)
    for name in (MODEL_FILE, CARD_FILE):
        if not (src / name).is_file():
            raise training.TrainingError(f"{src} has no {name}")
    out.mkdir(parents=True)
    shutil.copyfile(src / MODEL_FILE, out / MODEL_FILE)
    card = json.loads((src / CARD_FILE).read_text())
    model = load_model_dir(src)
    metrics = training.evaluate_loaded(model, table, settings)
    rows = training.labelled(table)
    card.setdefault("metrics", {})["external_validation"] = {
        **metrics, "validation": f"scored on the {len(rows)} labelled jobs of the feature table, none of which it "
                                 f"was trained on (imported model)"}
    folds = rows[["job_id", "participant"]].assign(fold=0)  # one test set: every participant in it once
    (out / CARD_FILE).write_text(json.dumps(card, indent=1) + "\n")
    return card, folds, metrics, b""


class PromoteConfig(Config):
    """Which model becomes the one in use."""

    name: str = DEFAULT_MODEL_NAME
    version: str = ""
    """The candidate version to promote; empty: the latest candidate_model materialization."""


def _candidate_checks_passed(instance, version: str) -> tuple[bool, list[str]]:
    """Did every blocking check of candidate_model pass for this version (its latest evaluation)?"""
    problems = []
    for name in CHECKS:
        history = instance.event_log_storage.get_asset_check_execution_history(
            AssetCheckKey(AssetKey("candidate_model"), name), limit=200)
        evaluation = None
        for rec in history:  # newest first
            ev = rec.event.dagster_event.event_specific_data if rec.event and rec.event.dagster_event else None
            if ev is not None and getattr(ev, "metadata", {}).get("model_version") is not None and \
                    ev.metadata["model_version"].value == version:
                evaluation = ev
                break
        if evaluation is None:
            problems.append(f"{name}: never evaluated for {version}")
        elif not evaluation.passed:
            problems.append(f"{name}: failed ({evaluation.description or 'see the check'})")
    return not problems, problems


def _latest_candidate(instance) -> str | None:
    rec = instance.get_latest_materialization_event(AssetKey("candidate_model"))
    mv = rec.asset_materialization.metadata.get("model_version") if rec and rec.asset_materialization else None
    return mv.value if mv is not None else None


@asset(
    name=SCREENING_MODEL, group_name=RESEARCH_GROUP, kinds={"pytorch"}, deps=[candidate_model],
    description="The model in use (models/in_use.json): materializing it promotes a candidate (config version; "
                "empty: the latest candidate) only if every blocking check of candidate_model passed for that "
                "version, and records what it replaced (rollback: promote that version again; `igait model "
                "rollback`). Data version: the weights' sha256 — after a promotion every prediction made with "
                "another model is stale; backfill prediction + results_archive to re-score (`igait rescore`).",
)
def screening_model(context: AssetExecutionContext, config: PromoteConfig,
                    model_store: ModelStoreResource) -> MaterializeResult:
    store = model_store.store()
    version = config.version or _latest_candidate(context.instance)
    if not version:
        raise Failure(description="no candidate to promote: materialize candidate_model first", allow_retries=False)
    bundled = store.bundled_card()
    if (config.name, version) != (bundled["name"], bundled["version"]):
        ok, problems = _candidate_checks_passed(context.instance, version)
        if not ok:
            raise Failure(description=f"model {config.name} {version} is not promoted: its checks did not all "
                                      f"pass: {'; '.join(problems)}", allow_retries=False)
    try:
        record = store.promote(config.name, version, by=f"run {context.run_id}",
                               at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    except ModelIntegrityError as e:
        raise Failure(description=str(e), allow_retries=False) from None
    replaced = record["replaced"]
    context.log.info(f"model in use: {config.name} {version} (replaced {replaced['name']} {replaced['version']})")
    return MaterializeResult(data_version=DataVersion(record["sha256"]), metadata={
        "model": f"{config.name} {version}", "sha256": record["sha256"],
        "replaced": f"{replaced['name']} {replaced['version']}", "promotions": len(record["history"])})


RESEARCH_ASSETS = [clinical_labels, gait_feature_table, candidate_model, screening_model]
