"""What the research gate refuses, and a model trained elsewhere entering through it: a bad label file (naming the
row, nothing written), a candidate trained on too few participants, a participant in two folds, a promotion of a
candidate whose checks failed; a TorchScript model from another cohort imported, validated on ours, promoted."""
import io
import json
import subprocess
import sys

import pandas as pd
import pytest

from igait_pipeline import model_commands, research_assets
from igait_pipeline.layout import CYCLES
from igait_pipeline.research import cohort, labels, table, training
from igait_pipeline.resources.model_store import IN_USE_KEY
from igait_pipeline_tests.research.team_model import export_team_model
from igait_pipeline_tests.research.test_research_flow import Env

SMALL = cohort.CohortSettings(participants_per_class=3, jobs_per_participant=1, overlay_width=64)


@pytest.fixture
def env(tmp_path, local_storage, smtp_server):
    from dagster import instance_for_test

    with instance_for_test() as instance:
        yield Env(tmp_path, local_storage, smtp_server, instance)


def _cohort(env, settings=SMALL, with_labels=True):
    jobs = cohort.write_cohort(env.storage, settings)
    env.instance.add_dynamic_partitions("jobs", [j.job_id for j in jobs])
    for j in jobs:
        env.materialize(CYCLES.asset, j.job_id)
    if with_labels:
        env.storage.write_bytes(research_assets.LABELS_KEY, cohort.cohort_labels(jobs, settings))
    return jobs


@pytest.mark.parametrize("row, why", [
    ("simkid-000_1,ASD,clinic,2026-10-01", "line 3 (job simkid-000_1): the job is labelled twice (first on line 2)"),
    ("nobody_4,ASD,clinic,2026-10-01", "line 3 (job nobody_4): no such job in the pipeline"),
    ("simkid-001_1,maybe,clinic,2026-10-01", "line 3 (job simkid-001_1): unknown label 'maybe'; labels are ASD, "
                                             "NO ASD"),
    ("simkid-001_1,NO ASD,,2026-10-01", "line 3 (job simkid-001_1): empty source"),
    ("simkid-001_1,NO ASD,clinic,01/10/2026", "line 3 (job simkid-001_1): date '01/10/2026' is not an ISO date"),
    ("user 1_1,ASD,clinic,2026-10-01", "line 3: job ID 'user 1_1' is malformed"),
])
def test_a_bad_label_file_is_refused_naming_the_row(row, why):
    good = "job_id,label,source,date\nsimkid-000_1,ASD,clinic,2026-10-01\n"
    with pytest.raises(labels.LabelFileError) as e:
        labels.parse_labels((good + row + "\n").encode(), {"simkid-000_1", "simkid-001_1"})
    assert f"research/labels.csv {why}" in str(e.value)


def test_the_feature_table_refuses_a_bad_label_file_and_writes_nothing(env):
    jobs = _cohort(env, with_labels=False)
    rows = [(j.job_id, j.label, "clinic", "2026-10-01") for j in jobs] + [(jobs[0].job_id, "ASD", "x", "2026-10-02")]
    env.storage.write_bytes(research_assets.LABELS_KEY, labels.labels_csv(rows))
    res = env.materialize("gait_feature_table", ok=False)
    (failure,) = [e for e in res.all_events if e.is_step_failure]
    msg = failure.event_specific_data.error.message
    assert f"line {len(jobs) + 2} (job {jobs[0].job_id}): the job is labelled twice" in msg, msg
    assert not env.storage.exists(table.TABLE_KEY)


def test_too_few_participants_is_refused_and_cannot_be_promoted(env):
    _cohort(env)
    env.materialize("clinical_labels")
    env.materialize("gait_feature_table")
    # the default gate (10 participants per class, AUC lower bound 0.6): blocking checks fail the step
    res = env.materialize("candidate_model", ok=False)
    checks = {e.check_name: e for e in res.get_asset_check_evaluations()}
    assert not checks["participants_per_class"].passed
    assert checks["participants_per_class"].description == ("labelled participants per class {'ASD': 3, 'NO ASD': "
                                                            "3}: each class needs at least 10")
    assert checks["card_complete"].passed and checks["participant_in_one_fold"].passed
    version = res.asset_materializations_for_node("candidate_model")[0].metadata["model_version"].value
    with pytest.raises(model_commands.ModelCommandError, match=f"igait-screening {version} is not promoted: its "
                       "checks did not all pass: participants_per_class: failed"):
        model_commands.promote(version, instance=env.instance, defs=env.defs)
    assert not env.storage.exists(IN_USE_KEY)  # the reference model is still in use


def test_a_participant_in_two_folds_is_refused_with_its_name(env):
    _cohort(env)
    env.materialize("gait_feature_table")
    tab = table.from_parquet(env.storage.read_bytes(table.TABLE_KEY))
    tab = table.with_labels(tab, labels.parse_labels(env.storage.read_bytes(research_assets.LABELS_KEY)))
    cand = training.train_candidate(tab, "igait-screening", training.TrainSettings(folds=3, bootstrap=50))
    folds = cand.folds.copy()
    assert training.participants_in_two_folds(folds) == []
    # the same participant's second job tested in another fold: what a split by job (not participant) does
    leak = pd.concat([folds, folds.iloc[[0]].assign(job_id="simkid-000_9", fold=(folds.iloc[0]["fold"] + 1) % 3)])
    config = research_assets.CandidateConfig(min_participants_per_class=3, min_auc_lower_bound=0.0)
    checks = {c.check_name: c for c in research_assets._gate(cand.card, None, tab, leak,
                                                             cand.card["metrics"]["cross_validated"], config, "v")}
    assert not checks["participant_in_one_fold"].passed
    assert checks["participant_in_one_fold"].description == ("participants in two folds (trained and tested on): "
                                                             f"{folds.iloc[0]['participant']}")


def test_a_torchscript_model_from_elsewhere_enters_through_the_gate(env, tmp_path):
    src = export_team_model(tmp_path)  # trained elsewhere: another simulated cohort, exported as TorchScript
    _cohort(env)  # our labelled jobs: the imported model is validated on them (it never saw them)
    env.materialize("clinical_labels")
    env.materialize("gait_feature_table")
    out = model_commands.import_model(src, instance=env.instance, defs=env.defs, name="team-net",
                                      min_participants_per_class=3, min_auc_lower_bound=0.0)
    assert out["model_version"] == "2.1.0" and out["checks"] == {c: True for c in research_assets.CHECKS}
    stored = json.loads(env.storage.read_bytes("models/team-net/2.1.0/model_card.json"))
    ext = stored["metrics"]["external_validation"]
    assert ext["n"] == 6 and ext["participants"] == 6 and 0 <= ext["roc_auc"] <= 1
    promoted = model_commands.promote("2.1.0", "team-net", instance=env.instance, defs=env.defs)
    assert promoted["model"] == "team-net 2.1.0"
    model = env.resources["model_store"].load()  # what prediction now loads: the TorchScript model
    assert (model.name, model.version) == ("team-net", "2.1.0")


def test_pyarrow_imports_in_the_installed_environment():
    """The pin must import beside the pinned numpy (an unpinned pyarrow needed numpy 2 and failed on import)."""
    out = subprocess.run([sys.executable, "-c", "import numpy, pyarrow, pyarrow.parquet; "
                          "print(pyarrow.__version__, numpy.__version__)"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]


def test_the_feature_table_is_parquet_with_types_units_and_descriptions(env):
    jobs = _cohort(env)
    env.materialize("clinical_labels")
    res = env.materialize("gait_feature_table")
    data = env.storage.read_bytes(table.TABLE_KEY)
    assert table.TABLE_KEY.endswith(".parquet") and data[:4] == b"PAR1"
    tab = pd.read_parquet(io.BytesIO(data))  # what a researcher types
    assert sorted(tab["job_id"]) == sorted(j.job_id for j in jobs)
    assert tab["job_id"].dtype == object and tab["y"].dtype == "Int64" and set(tab["y"]) == {0, 1}
    assert tab["n__cadence_spm"].dtype == "int64" and tab["cadence_spm"].dtype == "float64"
    assert all(tab[c].dtype == "boolean" for c in tab.columns if c.startswith("flag__"))
    schema = table.parquet_schema(data)
    unit = {f.name: f.metadata[b"unit"].decode() for f in schema}
    assert unit["cadence_spm"] == "steps/min" and unit["stride_time_mean_s"] == "s"
    assert unit["side_knee_flexion_left_050"] == "degrees" and unit["height_cm"] == "cm"
    assert all(f.metadata[b"description"] for f in schema), [f.name for f in schema if not f.metadata[b"description"]]
    assert json.loads(schema.metadata[b"igait.table"])["format"] == table.TABLE_FORMAT
    # the UI shows the same schema as the asset's columns
    cols = res.asset_materializations_for_node("gait_feature_table")[0].metadata["dagster/column_schema"].value.columns
    assert [c.name for c in cols] == list(tab.columns)
    assert next(c for c in cols if c.name == "cadence_spm").description.endswith("[steps/min]")
    # incremental: the second build reads the Parquet file back and reuses every row
    again = env.materialize("gait_feature_table").asset_materializations_for_node("gait_feature_table")[0].metadata
    assert again["rows_reused"].value == len(jobs) and again["rows_computed"].value == 0
