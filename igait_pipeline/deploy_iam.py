"""The bucket's IAM bindings and each stage's identity, generated from the stage table (no Dagster import).

    igait deploy iam --project P --bucket B [--prefix igait] [--namespace igait] > iam.sh && bash iam.sh

What it writes comes from `layout.ACCESS` (itself derived from `layout.STAGES`) and the identity names of
`placement.yaml`, nothing typed twice:
- one Google service account per pipeline stage (`igait-converted-video` ... `igait-results-archive`) and one for
  the uploads path (`igait-uploads`: the web back end's identity); the control plane keeps the chart's
  `igait-dagster` -> `igait-pipeline`;
- per stage, a Kubernetes service account of the same name in the namespace, annotated for Workload Identity, and
  the `roles/iam.workloadIdentityUser` binding that lets it act as its Google account (the step pods run under it:
  `placement.Identity`, the `dagster-k8s/config` tag);
- conditional bucket bindings, one per (identity, prefix): `roles/storage.objectViewer` on what it reads,
  `roles/storage.objectAdmin` on what it writes (`roles/storage.objectCreator` for the create-only uploads path:
  without `storage.objects.delete` GCS refuses an overwrite), listing, and the compute logs.

What GCS IAM conditions can say, and how the prefixes are expressed:
- On `resource.name` (`projects/_/buckets/B/objects/NAME` for an object) IAM supports `startsWith`, `endsWith`,
  `extract` and `==`/`!=`; not `matches` (no regular expressions). A fixed prefix (`models/`) is a `startsWith`.
- A prefix with a job segment (`jobs/{job}/stage_4/`) is an `extract`: `extract('.../jobs/{job}/stage_4/')` returns
  what lies between `jobs/` and the first `/stage_4/` after it ('' if there is none), so it is compared with
  `extract('.../jobs/{job}/')` (up to the first `/`): equal and non-empty means exactly one segment followed by
  `stage_4/`; `jobs/a_1/stage_3/x/stage_4/y` yields `a_1/stage_3/x` != `a_1` and is refused. A `startsWith` on
  `.../jobs/` anchors the template (extract finds its text anywhere).
- Listing (`storage.objects.list`) is checked on the bucket, whose name has no object part, so an object-name
  condition never grants it. It is granted by the request's list prefix instead,
  `api.getAttribute('storage.googleapis.com/objectListPrefix', '')`, with `startsWith`: a stage may list names
  under `jobs/` (the names of every job, not their contents); the job segment cannot be checked there.
- IAM cannot know a step's job: the per-job limit (a step touches only its own job) is the code's
  (`igait_pipeline.storage.scope`); IAM keeps a stage out of every other stage's folder of every job.
- Limits this respects (checked when generating): at most 12 logical operators in one condition, at most 20
  bindings of one role to one member that differ only by condition.
"""
from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass

from igait_pipeline.layout import ACCESS, JOB, Access
from igait_pipeline.placement import Placement, load_placement

VIEWER, ADMIN, CREATOR = "roles/storage.objectViewer", "roles/storage.objectAdmin", "roles/storage.objectCreator"
MAX_LOGICAL_OPERATORS = 12
MAX_BINDINGS_PER_ROLE_AND_MEMBER = 20
_SAFE = re.compile(r"[A-Za-z0-9<>_.:-]+")  # project, bucket, names: nothing that needs quoting in CEL or shell


class IamError(ValueError):
    pass


@dataclass(frozen=True)
class Settings:
    project: str
    bucket: str
    prefix: str = "igait"  # the storage root under the bucket: IGAIT_STORAGE_ROOT=gs://BUCKET/PREFIX
    namespace: str = "igait"
    compute_log_prefix: str = "dagster-compute-logs"  # helm values computeLogManager...prefix
    control_ksa: str = "igait-dagster"  # helm values serviceAccount.name
    control_gsa: str = "igait-pipeline"  # helm values serviceAccount annotation

    def __post_init__(self):
        for what in ("project", "bucket", "namespace", "control_ksa", "control_gsa"):
            if not _SAFE.fullmatch(getattr(self, what)):
                raise IamError(f"{what} {getattr(self, what)!r}: letters, digits, '-', '_', '.' only")
        for what in ("prefix", "compute_log_prefix"):
            value = getattr(self, what)
            if value and not all(_SAFE.fullmatch(p) for p in value.split("/")):
                raise IamError(f"{what} {value!r} is not a plain object-name prefix")

    @property
    def objects(self) -> str:
        """The resource name of the storage root's objects: `projects/_/buckets/B/objects/igait/`."""
        return f"projects/_/buckets/{self.bucket}/objects/{self.root}"

    @property
    def root(self) -> str:
        return f"{self.prefix.strip('/')}/" if self.prefix.strip("/") else ""

    def email(self, account_id: str) -> str:
        return f"{account_id}@{self.project}.iam.gserviceaccount.com"


@dataclass(frozen=True)
class Binding:
    identity: str  # a key of layout.ACCESS
    member: str
    role: str
    grants: str  # read | write | create | list | logs
    prefix: str  # the access prefix it grants (relative to the storage root; for list: a list prefix)
    title: str
    expression: str


def account_id(identity: str, settings: Settings, placement: Placement) -> str:
    """The Google service account ID of an identity of layout.ACCESS."""
    return settings.control_gsa if identity == "control" else placement.identity.name(ACCESS[identity])


def object_condition(settings: Settings, template: str) -> str:
    """The CEL condition that holds for exactly the objects below template (see the module doc)."""
    if JOB not in template:
        return f"resource.name.startsWith('{settings.objects}{template}')"
    head, _, tail = template.partition(JOB)
    base = f"{settings.objects}{head}"
    one = f"resource.name.extract('{base}{{job}}{tail}')"
    return (f"resource.name.startsWith('{base}') && {one} != '' && "
            f"{one} == resource.name.extract('{base}{{job}}/')")


def list_condition(prefixes: list[str]) -> str:
    return " || ".join(f"api.getAttribute('storage.googleapis.com/objectListPrefix', '').startsWith('{p}')"
                       for p in prefixes)


def _list_prefixes(access: Access, settings: Settings) -> list[str]:
    """What an identity lists under: the literal part of each readable prefix (`jobs/` for `jobs/{job}/...`)."""
    return list(dict.fromkeys(settings.root + t.partition(JOB)[0] for t in access.readable))


def bindings(settings: Settings, placement: Placement | None = None) -> list[Binding]:
    """Every conditional bucket binding, identity by identity, in the order of layout.ACCESS."""
    placement = placement or load_placement()
    out: list[Binding] = []
    for name, access in ACCESS.items():
        member = f"serviceAccount:{settings.email(account_id(name, settings, placement))}"

        def add(role: str, grants: str, prefix: str, expression: str) -> None:
            title = f"igait {name} {grants} {prefix}"[:100]
            out.append(Binding(name, member, role, grants, prefix, title, expression))

        for t in access.reads:
            if t not in access.writes or access.create_only:  # objectAdmin reads what it writes; objectCreator not
                add(VIEWER, "read", t, object_condition(settings, t))
        for t in access.writes:
            add(CREATOR if access.create_only else ADMIN, "create" if access.create_only else "write", t,
                object_condition(settings, t))
        prefixes = _list_prefixes(access, settings)
        add(VIEWER, "list", " ".join(prefixes), list_condition(prefixes))
        if access.stage is not None or name == "control":  # pods of Dagster steps and servers write their logs
            logs = settings.compute_log_prefix.strip("/") + "/"
            out.append(Binding(name, member, ADMIN, "logs", logs, f"igait {name} logs {logs}",
                               f"resource.name.startsWith('projects/_/buckets/{settings.bucket}/objects/{logs}') || "
                               + list_condition([logs])))
    _check_limits(out)
    return out


def _check_limits(out: list[Binding]) -> None:
    per: dict[tuple[str, str], int] = {}
    for b in out:
        ops = len(re.findall(r"&&|\|\|", b.expression))
        if ops > MAX_LOGICAL_OPERATORS:
            raise IamError(f"{b.title}: {ops} logical operators, IAM allows {MAX_LOGICAL_OPERATORS}")
        per[(b.member, b.role)] = per.get((b.member, b.role), 0) + 1
    over = {k: n for k, n in per.items() if n > MAX_BINDINGS_PER_ROLE_AND_MEMBER}
    if over:
        raise IamError(f"more conditional bindings of one role to one member than IAM allows: {over}")


def workload_identities(settings: Settings, placement: Placement | None = None) -> dict[str, str]:
    """Kubernetes service account -> Google service account e-mail, for every stage (the step pods)."""
    placement = placement or load_placement()
    return {placement.identity.name(a): settings.email(placement.identity.name(a))
            for a in ACCESS.values() if a.stage is not None}


def script(settings: Settings, placement: Placement | None = None) -> str:
    """A bash script (gcloud, kubectl) that creates the identities and applies the bindings; re-runnable."""
    placement = placement or load_placement()
    q = shlex.quote
    bucket = q(f"gs://{settings.bucket}")
    lines = [
        "#!/usr/bin/env bash",
        "# Generated by `igait deploy iam "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(settings).items()) + "`",
        "# from the stage table (igait_pipeline/layout.py: STAGES -> ACCESS) and the identity names in",
        "# igait_pipeline/placement.yaml. Do not edit: change the stage table and generate it again.",
        "# Needs: gcloud (roles/iam.serviceAccountAdmin, roles/storage.admin on the bucket), kubectl on the cluster.",
        "set -euo pipefail",
        f"PROJECT={q(settings.project)}",
        f"NAMESPACE={q(settings.namespace)}",
        'tmp=$(mktemp -d); trap \'rm -rf "$tmp"\' EXIT',
        "",
        "gsa() {  # account ID, display name: create the Google service account unless it exists",
        '  gcloud iam service-accounts describe "$1@$PROJECT.iam.gserviceaccount.com" --project "$PROJECT" '
        '>/dev/null 2>&1 \\',
        '    || gcloud iam service-accounts create "$1" --project "$PROJECT" --display-name "$2"',
        "}",
        "",
        "# 1. Identities: one Google service account per stage and for the uploads path.",
    ]
    for name, access in ACCESS.items():
        if name != "control":
            lines.append(f"gsa {q(account_id(name, settings, placement))} {q('iGait ' + access.label)}")
    lines += [
        "", "# 2. Workload Identity: each stage's step pods run as the Kubernetes service account of the same",
        "#    name (placement.yaml identity), which may act as that Google service account only.",
        "ksa() {  # Kubernetes service account, Google service account e-mail",
        '  kubectl -n "$NAMESPACE" create serviceaccount "$1" --dry-run=client -o yaml | kubectl apply -f -',
        '  kubectl -n "$NAMESPACE" annotate serviceaccount "$1" --overwrite "iam.gke.io/gcp-service-account=$2"',
        '  gcloud iam service-accounts add-iam-policy-binding "$2" --project "$PROJECT" '
        '--role roles/iam.workloadIdentityUser \\',
        '    --member "serviceAccount:$PROJECT.svc.id.goog[$NAMESPACE/$1]" >/dev/null',
        "}",
    ]
    lines += [f"ksa {q(ksa)} {q(email)}" for ksa, email in workload_identities(settings, placement).items()]
    lines += ["", "# 3. Bucket bindings, one per identity and prefix, each with its IAM condition (JSON on stdin).",
              "bind() {  # member, role; the condition as JSON on standard input",
              '  cat > "$tmp/condition.json"',
              f'  gcloud storage buckets add-iam-policy-binding {bucket} --member="$1" --role="$2" '
              '--condition-from-file="$tmp/condition.json" >/dev/null',
              "}"]
    for b in bindings(settings, placement):
        cond = json.dumps({"title": b.title, "description": f"{b.identity}: {b.grants} {b.prefix}",
                           "expression": b.expression})
        lines += [f"bind {q(b.member)} {b.role} <<'JSON'", cond, "JSON"]
    control = q(f"serviceAccount:{settings.email(settings.control_gsa)}")
    lines += ["", "# 4. Then the control plane's old unconditional objectAdmin on the whole bucket goes (if present).",
              f"gcloud storage buckets remove-iam-policy-binding {bucket} --member={control} "
              f"--role={ADMIN} --condition=None >/dev/null 2>&1 || true"]
    lines += ["", "echo 'iGait identities and bucket bindings applied.'", ""]
    return "\n".join(lines)
