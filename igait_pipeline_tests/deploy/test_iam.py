"""One identity per stage: the step pods' service accounts (on the Kubernetes Jobs dagster-k8s builds) and the
bucket IAM bindings generated from the stage table, checked against what the code lets each stage touch.

The bindings' conditions are evaluated here on object names by a small evaluator of the CEL IAM accepts for
`resource.name` (`startsWith`, `extract`, `==`, `!=`, `&&`, `||`) and of the list-prefix attribute, `extract`
implemented as Google documents it (the text between the first occurrence of the template's text before the
placeholder and the first occurrence after it of the text that follows; '' when either is missing). For every
identity and a corpus of names (every stage's folder and staging of two jobs, the models, the research tables,
the compute logs, names that only look like a stage folder), what the bindings grant must equal what
`layout.ACCESS` grants: the same table drives the code's scoped storage, so IAM and code cannot drift apart.
"""
import json
import re
import subprocess

import pytest
import yaml

from igait_pipeline import deploy_iam, placement
from igait_pipeline.layout import ACCESS, PIPELINE_STAGES, STAGES, job_key, within
from igait_pipeline_tests.dagster.test_placement import build_step_jobs, k8s_instance, kubeconfig  # noqa: F401
from igait_pipeline_tests.deploy.test_helm_values import ROOT, load_values

SETTINGS = deploy_iam.Settings(project="proj-1", bucket="igait-data")
EXAMPLE = ROOT / "deploy" / "iam.example.sh"


# --- the step pods --------------------------------------------------------------------------------------------

def test_every_step_pod_runs_as_its_stage_service_account(k8s_instance):  # noqa: F811
    from igait_pipeline import assets

    jobs = build_step_jobs(k8s_instance, asset_defs=[assets.upload, *assets.STAGE_ASSETS])
    ident = placement.load_placement().identity
    seen = {}
    for s in PIPELINE_STAGES:
        for key in s.asset_keys:
            account = jobs[key].spec.template.spec.service_account_name
            assert account == ident.name(ACCESS[f"stage_{s.number}"]) == f"igait-{s.asset.replace('_', '-')}", key
            seen.setdefault(account, set()).add(s.number)
    assert set(jobs) == {k for s in PIPELINE_STAGES for k in s.asset_keys}
    assert all(len(stages) == 1 for stages in seen.values()) and len(seen) == len(PIPELINE_STAGES)
    assert jobs["keypoints_front"].spec.template.spec.service_account_name == "igait-keypoints"
    # placement still in force next to it
    assert jobs["keypoints_side"].spec.template.spec.node_selector == {"cloud.google.com/gke-nodepool": "igait-gpu"}
    # the run worker and everything without a stage stay the chart's account (the control plane)
    assert load_values()["global"]["serviceAccountName"] == SETTINGS.control_ksa


def test_per_stage_identity_can_be_turned_off(k8s_instance, tmp_path, monkeypatch):  # noqa: F811
    data = yaml.safe_load(placement.DEFAULT_PLACEMENT_FILE.read_text())
    data["identity"]["per_stage"] = False
    path = tmp_path / "placement.yaml"
    path.write_text(yaml.safe_dump(data))
    monkeypatch.setenv(placement.PLACEMENT_FILE_ENV, str(path))
    jobs = build_step_jobs(k8s_instance)
    assert {j.spec.template.spec.service_account_name for j in jobs.values()} == {"igait-dagster"}


# --- the bindings ---------------------------------------------------------------------------------------------

def _extract(name: str, template: str) -> str:
    before, _, rest = template.partition("{")
    placeholder, _, after = rest.partition("}")
    assert placeholder and "{" not in after, template
    i = name.find(before)
    if i < 0:
        return ""
    start = i + len(before)
    if not after:
        return name[start:]
    j = name.find(after, start)
    return name[start:j] if j >= 0 else ""


_ATOM = re.compile(
    r"resource\.name\.startsWith\('(?P<sw>[^']*)'\)"
    r"|resource\.name\.extract\('(?P<ne>[^']*)'\) != ''"
    r"|resource\.name\.extract\('(?P<eq1>[^']*)'\) == resource\.name\.extract\('(?P<eq2>[^']*)'\)"
    r"|api\.getAttribute\('storage\.googleapis\.com/objectListPrefix', ''\)\.startsWith\('(?P<lp>[^']*)'\)")


def evaluate(expression: str, name: str = "", list_prefix: str = "") -> bool:
    """The condition for a request on the object resource `name`, or for a listing with `list_prefix`."""
    def atom(text: str) -> bool:
        m = _ATOM.fullmatch(text.strip())
        assert m, f"not an expression this deployment generates: {text!r}"
        if m["sw"] is not None:
            return name.startswith(m["sw"])
        if m["ne"] is not None:
            return _extract(name, m["ne"]) != ""
        if m["eq1"] is not None:
            return _extract(name, m["eq1"]) == _extract(name, m["eq2"])
        return list_prefix.startswith(m["lp"])

    return any(all(atom(a) for a in disj.split(" && ")) for disj in expression.split(" || "))


def _corpus() -> list[str]:
    keys = []
    for job in ("a_1", "b-c_22"):
        for s in STAGES:
            keys += [job_key(job, s.number, f) for f in s.files]
            keys += [job_key(job, s.number, ".manifest.all.json"), f"jobs/{job}/stage_{s.number}/.commit.x/y"]
    keys += ["models/in_use.json", "models/igait-screening/3/model.pt", "research/labels.csv",
             "research/gait_feature_table.csv", "jobs/a_1/stage_3/x/stage_4/front_keypoints.json",
             "jobs/a_1/stage_44/x", "jobs//stage_4/x", "jobs/a_1/x/stage_4/y", "jobsx/a_1/stage_4/y",
             "other/jobs/a_1/stage_4/x", "jobs/a_1/.staging/stage_4.x/y", "jobs/a_1/stage_0.json"]
    return keys


def _granted(bs: list, roles: set[str], name: str) -> bool:
    return any(b.role in roles and evaluate(b.expression, name=name) for b in bs)


READ_ROLES = {deploy_iam.VIEWER, deploy_iam.ADMIN}
WRITE_ROLES = {deploy_iam.ADMIN, deploy_iam.CREATOR}


def test_bindings_cover_exactly_what_each_identity_may_touch():
    bs = deploy_iam.bindings(SETTINGS)
    assert {b.identity for b in bs} == set(ACCESS)
    objects = SETTINGS.objects
    for ident, access in ACCESS.items():
        mine = [b for b in bs if b.identity == ident]
        assert len({b.member for b in mine}) == 1
        # exactly one binding per prefix it reads or writes, nothing else on job data
        assert sorted((b.grants, b.prefix) for b in mine if b.grants in ("read", "write", "create")) == sorted(
            [("read", t) for t in access.reads if t not in access.writes or access.create_only]
            + [("create" if access.create_only else "write", t) for t in access.writes])
        for key in _corpus():
            name = objects + key
            can_read = access.can_read(key, None)
            can_write = access.can_write(key, None)
            assert _granted(mine, READ_ROLES, name) == can_read, (ident, key, "read")
            assert _granted(mine, WRITE_ROLES, name) == can_write, (ident, key, "write")
            may_delete = can_write and not access.create_only
            assert _granted(mine, {deploy_iam.ADMIN}, name) == may_delete, (ident, key, "overwrite/delete")
            # and nothing outside the storage root, whatever the key
            assert not _granted(mine, READ_ROLES | WRITE_ROLES, f"projects/_/buckets/igait-data/objects/{key}")
    # the stages' picture, spelled out once: what stage N may write and read, in any job
    for s in PIPELINE_STAGES:
        mine = [b for b in bs if b.identity == f"stage_{s.number}"]
        for t in STAGES:
            key = objects + job_key("z_9", t.number, t.files[0])
            assert _granted(mine, WRITE_ROLES, key) == (t.number == s.number), (s.number, t.number)
            assert _granted(mine, READ_ROLES, key) == (t.number in (*s.reads, s.number)), (s.number, t.number)
    stage7 = [b for b in bs if b.identity == "stage_7"]
    assert sorted(b.prefix for b in stage7 if b.grants == "read") == [f"jobs/{{job}}/stage_{n}/" for n in range(7)]


def test_listing_and_logs():
    bs = deploy_iam.bindings(SETTINGS)
    for ident in ACCESS:
        (lst,) = [b for b in bs if b.identity == ident and b.grants == "list"]
        assert lst.role == deploy_iam.VIEWER
        assert evaluate(lst.expression, list_prefix="igait/jobs/a_1/stage_3/")
        assert not evaluate(lst.expression, list_prefix="other/")
        assert not evaluate(lst.expression, name=SETTINGS.objects + "jobs/a_1/stage_3/front.mp4")  # names only
    assert evaluate(next(b.expression for b in bs if b.identity == "stage_6" and b.grants == "list"),
                    list_prefix="igait/models/igait-screening/")
    assert not evaluate(next(b.expression for b in bs if b.identity == "stage_5" and b.grants == "list"),
                        list_prefix="igait/models/")
    logs = deploy_iam.Settings(project="p-123456", bucket="b").compute_log_prefix
    values = load_values()["computeLogManager"]["config"]["gcsComputeLogManager"]
    assert values["prefix"] == logs and values["bucket"] == "<BUCKET>"
    assert {b.identity for b in bs if b.grants == "logs"} == {a for a in ACCESS if a != "uploads"}


def test_workload_identity_and_names_agree_with_helm():
    wi = deploy_iam.workload_identities(SETTINGS)
    names = [f"igait-{s.asset.replace('_', '-')}" for s in PIPELINE_STAGES]
    assert wi == {n: f"{n}@proj-1.iam.gserviceaccount.com" for n in names}
    assert all(6 <= len(k) <= 30 for k in wi), "GSA account IDs are 6-30 characters"
    values = load_values()
    assert values["serviceAccount"]["name"] == SETTINGS.control_ksa
    assert values["serviceAccount"]["annotations"]["iam.gke.io/gcp-service-account"] == (
        f"{SETTINGS.control_gsa}@<PROJECT_ID>.iam.gserviceaccount.com")
    for deployment in values["dagster-user-deployments"]["deployments"]:  # both code locations
        assert deployment["env"]["IGAIT_STORAGE_ROOT"] == f"gs://<BUCKET>/{SETTINGS.prefix}", deployment["name"]


def test_the_committed_script_is_the_generated_one():
    example = deploy_iam.script(deploy_iam.Settings(project="<PROJECT_ID>", bucket="<BUCKET>"))
    assert EXAMPLE.read_text() == example, "regenerate: igait deploy iam --project '<PROJECT_ID>' --bucket '<BUCKET>'"
    subprocess.run(["bash", "-n", str(EXAMPLE)], check=True)
    text = deploy_iam.script(SETTINGS)
    n = len(deploy_iam.bindings(SETTINGS))
    assert len(re.findall(r"^bind serviceAccount:", text, re.M)) == n
    assert re.findall(r"^ksa (\S+) (\S+)$", text, re.M) == list(deploy_iam.workload_identities(SETTINGS).items())
    for cond in re.findall(r"<<'JSON'\n(.*)\nJSON$", text, re.M):  # each condition file is JSON
        assert set(json.loads(cond)) == {"title", "description", "expression"}


def test_cli_and_bad_settings(capsys):
    from igait_pipeline.cli import main

    assert main(["deploy", "iam", "--project", "proj-1", "--bucket", "igait-data"]) == 0
    assert capsys.readouterr().out == deploy_iam.script(SETTINGS)
    assert main(["deploy", "iam", "--project", "p'; rm -rf /", "--bucket", "b"]) == 2
    assert "project" in capsys.readouterr().err
    with pytest.raises(deploy_iam.IamError, match="prefix"):
        deploy_iam.Settings(project="p-1", bucket="b", prefix="a b")


def test_the_evaluator_reads_extract_as_documented():
    t = "projects/_/buckets/b/objects/jobs/{job}/stage_4/"
    assert _extract("projects/_/buckets/b/objects/jobs/a_1/stage_4/x", t) == "a_1"
    assert _extract("projects/_/buckets/b/objects/jobs/a_1/stage_3/x/stage_4/y", t) == "a_1/stage_3/x"
    assert _extract("projects/_/buckets/b/objects/models/x", t) == ""
    assert _extract("projects/_/buckets/b/objects/jobs/a_1/x", "projects/_/buckets/b/objects/jobs/{job}/") == "a_1"
    assert within("jobs/{job}/stage_4/", "jobs/a_1/stage_4/x", None)
