"""Validates infra/ offline (k8s manifests, SAM template, Containerfiles) and proves each check can fail.

Renders every overlay with `kubectl kustomize`, validates built-in kinds with
`kubernetes-validate --strict` and the KEDA and Prometheus Operator kinds
against their CRD schemas (cloudcoil's generated pydantic models, strict, no
unknown field), lints all YAML with yamllint, checks the alert expressions
with `promtool check rules` and their behaviour with `promtool test rules`,
scans Kubernetes, CloudFormation and the Containerfiles with checkov (zero
failed checks; skips are justified in the files), and checks the rules that
tie the pieces together (termination grace, shutdown grace, handler timeout,
KEDA queueLength vs --max-in-flight, trigger wiring, pod security, probes,
metric names against a real /metrics scrape). Then it runs each check again
on a deliberately broken copy and fails if the copy passes.

The defaults the rules fall back on (shutdown grace, handler timeout,
max in flight) are read from the binary itself (`sqsrt defaults`, JSON),
and the container's settings are validated by it (`sqsrt worker
--check-config`): sqsrt's own rules are never copied here.

Usage: python infra/check.py [--metrics-file scrape.txt] [--binary PATH]
       python infra/check.py --crate DIR   # a crate made by scripts/new-handler.sh:
           its deploy/k8s overlay, deploy/template.yaml and deploy/Containerfile*,
           with the same checks
"""

import argparse
import copy
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "infra" / "k8s"
SAM = ROOT / "infra" / "aws" / "template.yaml"
DASHBOARD = ROOT / "infra" / "observability" / "dashboard.json"
ALERT_TESTS = ROOT / "infra" / "observability" / "alerts.test.yaml"
CONTAINER = ROOT / "infra" / "container"
# The validators live in this interpreter's venv (scripts/lib.sh install_infra_tools).
BIN = Path(sys.executable).parent

# Custom resources and the models generated from their CRDs' OpenAPI schemas.
CRD_MODELS = {
    ("keda.sh/v1alpha1", "ScaledObject"): "cloudcoil.models.keda.v1alpha1",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "cloudcoil.models.keda.v1alpha1",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "cloudcoil.models.prometheus_operator.v1",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "cloudcoil.models.prometheus_operator.v1",
}
# The aws-sqs-queue trigger's metadata is a free-form map in the CRD; these
# are the keys KEDA's scaler reads (a typo would be silently ignored).
SQS_TRIGGER_KEYS = {"queueURL", "queueURLFromEnv", "queueLength", "activationQueueLength", "awsRegion",
                    "awsEndpoint", "identityOwner", "scaleOnInFlight", "scaleOnDelayed", "awsRoleArn"}
# Worker settings' defaults by variable, read from the binary (`sqsrt defaults`).
DEFAULTS: dict[str, str] = {}
# The binary whose settings rules the checks apply (`--check-config`).
BINARY = ""


def load_defaults(binary: str) -> None:
    global BINARY
    BINARY = binary
    out = subprocess.run([binary, "defaults"], check=True, capture_output=True, text=True)
    for flag in json.loads(out.stdout)["worker"].values():
        if flag["env"] and flag["default"] is not None:
            DEFAULTS[flag["env"]] = flag["default"]
    for name in ("SQSRT_SHUTDOWN_GRACE_SECS", "SQSRT_HANDLER_TIMEOUT_SECS", "SQSRT_MAX_IN_FLIGHT"):
        if name not in DEFAULTS:
            sys.exit(f"`{binary} defaults` gave no default for {name}")


# Metrics the alerts and dashboard may use that other exporters provide.
EXTERNAL_METRICS = {"kube_pod_status_ready", "kube_pod_info", "kube_deployment_status_replicas",
                    "keda_scaler_metrics_value"}


class CfnLoader(yaml.SafeLoader):
    """Reads CloudFormation's short-form tags (!Ref, !Sub, ...) as plain dicts."""


def _cfn_tag(loader, tag_suffix, node):
    name = "Ref" if tag_suffix == "Ref" else f"Fn::{tag_suffix}"
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


CfnLoader.add_multi_constructor("!", _cfn_tag)


def cfn_lint(path: Path) -> list[str]:
    out = subprocess.run([BIN / "cfn-lint", str(path)], capture_output=True, text=True)
    return [out.stdout.strip() or out.stderr.strip()] if out.returncode else []


def sam_rules(template: dict) -> list[str]:
    p = []
    params, res = template["Parameters"], template["Resources"]
    timeout = params["FunctionTimeoutSecs"]["Default"]
    visibility = params["QueueVisibilityTimeoutSecs"]["Default"]
    if visibility < 6 * timeout:
        p.append(f"queue visibility {visibility}s < 6 x function timeout {timeout}s")
    fn = res["Function"]
    props = fn["Properties"]
    if fn.get("Metadata", {}).get("BuildMethod") != "rust-cargolambda":
        p.append("function must build with rust-cargolambda")
    if props.get("Runtime") != "provided.al2023" or props.get("Architectures") != ["arm64"]:
        p.append("function must be provided.al2023 on arm64")
    mapping = res["QueueMapping"]["Properties"]
    if mapping.get("FunctionName") != {"Ref": "Function"} \
            or mapping.get("EventSourceArn") not in ({"Fn::GetAtt": "Queue.Arn"}, {"Fn::GetAtt": ["Queue", "Arn"]}):
        p.append("the event source mapping must connect Queue to Function")
    if "ReportBatchItemFailures" not in mapping.get("FunctionResponseTypes", []):
        p.append("the event source mapping must report batch item failures")
    for key in ("BatchSize", "MaximumBatchingWindowInSeconds", "ScalingConfig", "ProvisionedPollerConfig", "MetricsConfig"):
        if key not in mapping:
            p.append(f"the event source mapping lacks {key}")
    if params.get("ProvisionedMinimumPollers", {}).get("Default") != 0 \
            or params.get("EventSourceMappingMetrics", {}).get("Default") != "off":
        p.append("provisioned mode and the mapping's metrics must be off by default")
    for name in ("Queue", "DeadLetterQueue"):
        if not res[name]["Properties"].get("SqsManagedSseEnabled") and "KmsMasterKeyId" not in res[name]["Properties"]:
            p.append(f"{name} must be encrypted at rest")
    keda = res["KedaRole"]["Properties"]["Policies"]
    actions = [s["Action"] for pol in keda for s in pol["PolicyDocument"]["Statement"]]
    if actions != ["sqs:GetQueueAttributes"]:
        p.append(f"KEDA's role must allow only sqs:GetQueueAttributes, has {actions}")
    return p


def render(overlay: Path) -> list[dict]:
    out = subprocess.run([BIN / "kubectl", "kustomize", str(overlay)], check=True, capture_output=True, text=True)
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def kubernetes_validate(docs: list[dict]) -> list[str]:
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump_all(docs, f)
    out = subprocess.run([BIN / "kubernetes-validate", "--strict", f.name], capture_output=True, text=True)
    problems = [l for l in (out.stdout + out.stderr).splitlines() if l.startswith("ERROR")]
    if out.returncode != 0 and not problems:
        problems.append(f"kubernetes-validate exited {out.returncode}: {out.stdout}{out.stderr}")
    return problems


def yamllint(path: Path) -> list[str]:
    out = subprocess.run([BIN / "yamllint", "-s", "-c", str(ROOT / ".yamllint.yaml"), str(path)],
                         capture_output=True, text=True)
    return [out.stdout.strip()] if out.returncode else []


def dropped_fields(given, parsed, path="") -> list[str]:
    """Paths present in `given` but absent after a round trip through a model."""
    out = []
    if isinstance(given, dict):
        for key, value in given.items():
            if not isinstance(parsed, dict) or key not in parsed:
                out.append(f"{path}.{key}")
            else:
                out += dropped_fields(value, parsed[key], f"{path}.{key}")
    elif isinstance(given, list) and isinstance(parsed, list):
        for i, (a, b) in enumerate(zip(given, parsed)):
            out += dropped_fields(a, b, f"{path}[{i}]")
    return out


def crd_validate(docs: list[dict]) -> list[str]:
    """Custom resources against their CRD schemas: types, required fields, no unknown field."""
    import pydantic

    p = []
    for doc in docs:
        key = (doc["apiVersion"], doc["kind"])
        if "." not in doc["apiVersion"].split("/")[0] or doc["apiVersion"].endswith(".k8s.io/v1"):
            continue  # built-in group: kubernetes-validate's job
        if key not in CRD_MODELS:
            p.append(f"{doc['kind']} ({doc['apiVersion']}): no schema to validate it against")
            continue
        model = getattr(importlib.import_module(CRD_MODELS[key]), doc["kind"])
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        try:
            parsed = model.model_validate_json(json.dumps(doc), strict=True)
        except pydantic.ValidationError as e:
            p += [f"{name}: {'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors()]
            continue
        dumped = parsed.model_dump(mode="json", by_alias=True, exclude_unset=True)
        p += [f"{name}: unknown field {field}" for field in dropped_fields(doc, dumped)]
    return p


def promtool(docs: list[dict]) -> list[str]:
    """`promtool check rules` on the alert rules and `promtool test rules` on their unit tests."""
    groups = one(docs, "PrometheusRule")["spec"]["groups"]
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
        shutil.copy(ALERT_TESTS, Path(tmp) / "alerts.test.yaml")
        p = []
        for args in (["check", "rules", "rules.yaml"], ["test", "rules", "alerts.test.yaml"]):
            out = subprocess.run(["promtool", *args], cwd=tmp, capture_output=True, text=True)
            if out.returncode:
                p.append(f"promtool {' '.join(args[:2])}: {(out.stdout + out.stderr).strip()}")
        return p


def checkov(path: Path, framework: str) -> tuple[list[str], dict]:
    """checkov over a file or directory: (failed checks, {passed, failed, skipped})."""
    target = ["-d" if path.is_dir() else "-f", str(path)]
    out = subprocess.run([BIN / "checkov", *target, "--framework", framework, "--skip-download",
                          "--quiet", "--output", "json"], capture_output=True, text=True)
    try:
        reports = json.loads(out.stdout)
    except json.JSONDecodeError:
        return [f"checkov {framework} {path.name} exited {out.returncode}: {out.stdout[-300:]}{out.stderr[-300:]}"], {}
    reports = reports if isinstance(reports, list) else [reports]
    failed = [f"{c['check_id']} {c['resource']}" for r in reports if "results" in r
              for c in r["results"]["failed_checks"]]
    summary = {k: sum(r["summary"][k] for r in reports if "summary" in r) for k in ("passed", "failed", "skipped")}
    if not summary["passed"]:
        failed.append(f"checkov {framework} {path.name} ran no check (exit {out.returncode})")
    return failed, summary


def checkov_containerfiles(container_dir: Path) -> tuple[list[str], dict]:
    """checkov recognises Dockerfiles by name: scan copies named Dockerfile.*."""
    with tempfile.TemporaryDirectory() as tmp:
        for f in container_dir.glob("Containerfile*"):
            shutil.copy(f, Path(tmp) / f.name.replace("Containerfile", "Dockerfile"))
        return checkov(Path(tmp), "dockerfile")


def checkov_rendered(docs: list[dict]) -> tuple[list[str], dict]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rendered.yaml"
        path.write_text(yaml.safe_dump_all(docs))
        return checkov(path, "kubernetes")


def one(docs, kind):
    found = [d for d in docs if d["kind"] == kind]
    if len(found) != 1:
        raise AssertionError(f"expected one {kind}, found {len(found)}")
    return found[0]


def env_of(container) -> dict:
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def consistency(docs: list[dict], metric_names: set[str] | None) -> list[str]:
    """The rules that tie the rendered pieces together, one function per concern."""
    return (settings_rules(docs) + timing_rules(docs) + pod_security_rules(docs) + keda_rules(docs)
            + wiring_rules(docs) + alert_metric_rules(docs, metric_names))


def container_of(docs: list[dict]) -> tuple[dict, dict]:
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    return pod, c


def settings_rules(docs: list[dict]) -> list[str]:
    """The container's SQSRT_* settings, validated by the binary itself
    (`sqsrt worker --check-config`): the rules live in one place, the binary."""
    _, c = container_of(docs)
    env = {k: v for k, v in env_of(c).items() if k.startswith("SQSRT_") and v is not None}
    out = subprocess.run([BINARY, "worker", "--check-config"], capture_output=True, text=True,
                         env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env})
    if out.returncode != 0:
        return [f"the container's settings: {out.stderr.strip() or out.stdout.strip()}"]
    return []


def timing_rules(docs: list[dict]) -> list[str]:
    """Kubernetes' grace against sqsrt's drain, and the drain against the handlers."""
    p = []
    pod, c = container_of(docs)
    env = env_of(c)
    grace = int(env.get("SQSRT_SHUTDOWN_GRACE_SECS", DEFAULTS["SQSRT_SHUTDOWN_GRACE_SECS"]))
    timeout = int(env.get("SQSRT_HANDLER_TIMEOUT_SECS", DEFAULTS["SQSRT_HANDLER_TIMEOUT_SECS"]))
    if pod.get("terminationGracePeriodSeconds", 30) < grace + 5:
        p.append(f"terminationGracePeriodSeconds {pod.get('terminationGracePeriodSeconds', 30)} < shutdown grace {grace} + 5")
    if grace < timeout:
        p.append(f"shutdown grace {grace} < handler timeout {timeout}")
    visibility = env.get("SQSRT_VISIBILITY_TIMEOUT_SECS")
    if visibility is not None and int(visibility) < timeout:
        p.append(f"visibility timeout {visibility}s < handler timeout {timeout}s")
    return p


def pod_security_rules(docs: list[dict]) -> list[str]:
    """Restricted Pod Security, probes on sqsrt's endpoints, resources."""
    p = []
    pod, c = container_of(docs)
    psc, csc = pod.get("securityContext", {}), c.get("securityContext", {})
    if not (psc.get("runAsNonRoot") and psc.get("seccompProfile", {}).get("type") == "RuntimeDefault"):
        p.append("pod must run as non-root with seccomp RuntimeDefault")
    if csc.get("allowPrivilegeEscalation") is not False or csc.get("readOnlyRootFilesystem") is not True \
            or csc.get("capabilities", {}).get("drop") != ["ALL"]:
        p.append("container must drop ALL capabilities, forbid privilege escalation, use a read-only root fs")
    if c.get("livenessProbe", {}).get("httpGet", {}).get("path") != "/healthz" \
            or c.get("readinessProbe", {}).get("httpGet", {}).get("path") != "/readyz":
        p.append("probes must be /healthz (liveness) and /readyz (readiness)")
    if not c.get("resources", {}).get("requests") or not c.get("resources", {}).get("limits"):
        p.append("container needs resource requests and limits")
    return p


def keda_rules(docs: list[dict]) -> list[str]:
    """The ScaledObject scales this Deployment from zero on this queue, at --max-in-flight per pod."""
    p = []
    dep = one(docs, "Deployment")
    _, c = container_of(docs)
    env = env_of(c)
    max_in_flight = int(env.get("SQSRT_MAX_IN_FLIGHT", DEFAULTS["SQSRT_MAX_IN_FLIGHT"]))
    if "replicas" in dep["spec"]:
        p.append("Deployment sets replicas; KEDA owns the count")
    so = one(docs, "ScaledObject")["spec"]
    ta = one(docs, "TriggerAuthentication")
    if so["scaleTargetRef"]["name"] != dep["metadata"]["name"]:
        p.append("ScaledObject does not target the Deployment")
    if so.get("minReplicaCount") != 0:
        p.append("minReplicaCount must be 0 (scale from zero)")
    (trigger,) = so["triggers"]
    meta = trigger["metadata"]
    if trigger["type"] != "aws-sqs-queue":
        p.append("trigger must be aws-sqs-queue")
    if int(meta["queueLength"]) != max_in_flight:
        p.append(f"KEDA queueLength {meta['queueLength']} != SQSRT_MAX_IN_FLIGHT {max_in_flight}")
    if meta.get("queueURL") != env.get("SQSRT_QUEUE_URL"):
        p.append("KEDA queueURL differs from SQSRT_QUEUE_URL")
    if trigger.get("authenticationRef", {}).get("name") != ta["metadata"]["name"] \
            or ta["spec"].get("podIdentity", {}).get("provider") != "aws":
        p.append("trigger must authenticate with the TriggerAuthentication using podIdentity aws")
    for key in ("activationQueueLength", "scaleOnInFlight", "awsRegion"):
        if key not in meta:
            p.append(f"trigger metadata lacks {key}")
    for key in sorted(set(meta) - SQS_TRIGGER_KEYS):
        p.append(f"trigger metadata key {key} is not one the aws-sqs-queue scaler reads")
    for key in ("maxReplicaCount", "pollingInterval", "cooldownPeriod"):
        if key not in so:
            p.append(f"ScaledObject lacks {key}")
    return p


def wiring_rules(docs: list[dict]) -> list[str]:
    """Service, ServiceMonitor and ServiceAccount (IRSA) point at each other."""
    p = []
    pod, _ = container_of(docs)
    svc = one(docs, "Service")
    port_names = {pt["name"] for pt in svc["spec"]["ports"]}
    monitor = one(docs, "ServiceMonitor")["spec"]
    for ep in monitor["endpoints"]:
        if ep["port"] not in port_names:
            p.append(f"ServiceMonitor port {ep['port']} not in the Service")
    wanted_labels = monitor.get("selector", {}).get("matchLabels", {})
    if not wanted_labels or any(svc["metadata"].get("labels", {}).get(k) != v for k, v in wanted_labels.items()):
        p.append("ServiceMonitor selector does not select the metrics Service")
    sa = one(docs, "ServiceAccount")
    if pod.get("serviceAccountName") != sa["metadata"]["name"] \
            or "eks.amazonaws.com/role-arn" not in sa["metadata"].get("annotations", {}):
        p.append("Deployment must use the ServiceAccount carrying the IRSA role annotation")
    return p


def alert_metric_rules(docs: list[dict], metric_names: set[str] | None) -> list[str]:
    """Alert expressions use only metrics the worker (or a known exporter) exports."""
    p = []
    if metric_names is None:
        return p
    for group in one(docs, "PrometheusRule")["spec"]["groups"]:
        for rule in group["rules"]:
            for name in set(re.findall(r"\b(?:sqsrt|kube|keda)_[a-z_]+", rule["expr"])):
                if name not in metric_names and name not in EXTERNAL_METRICS:
                    p.append(f"alert {rule['alert']} uses {name}, which neither the worker nor a known exporter exports")
    return p


def dashboard_rules(dashboard: dict, metric_names: set[str] | None) -> list[str]:
    p = []
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    wanted = {"sqsrt_messages_processed_total", "sqsrt_messages_in_flight", "sqsrt_handler_duration_seconds_bucket",
              "sqsrt_sqs_errors_total", "sqsrt_dlq_sends_total", "kube_deployment_status_replicas"}
    used = {name for e in exprs for name in re.findall(r"\b(?:sqsrt|kube|keda)_[a-z_]+", e)}
    for missing in sorted(wanted - used):
        p.append(f"dashboard has no panel on {missing}")
    if metric_names is not None:
        for name in sorted(n for n in used if n.startswith("sqsrt_") and n not in metric_names):
            p.append(f"dashboard uses {name}, which the worker does not export")
    return p


def exported_metrics(scrape: str) -> set[str]:
    names = set()
    for line in scrape.splitlines():
        if line.startswith("# TYPE "):
            name, kind = line.split()[2:4]
            names.add(name + "_total" if kind == "counter" else name)
            if kind == "histogram":
                names.update({name + "_bucket", name + "_sum", name + "_count"})
    return names


def check_sam(sam: Path, report: dict) -> list[str]:
    """yamllint, cfn-lint, the SAM rules and checkov on a SAM template."""
    problems = yamllint(sam)
    lint = cfn_lint(sam)
    report["cfn-lint"] = "0 errors, 0 warnings" if not lint else f"{len(lint)} finding(s)"
    problems += [f"sam: {x}" for x in lint]
    problems += [f"sam: {x}" for x in sam_rules(yaml.load(sam.read_text(), Loader=CfnLoader))]
    failed, report["checkov cloudformation"] = checkov(sam, "cloudformation")
    problems += [f"sam: checkov {x}" for x in failed]
    return problems


def check_overlay(overlay: Path, metric_names, report: dict) -> list[str]:
    """Renders one kustomization and runs every Kubernetes check on it."""
    docs = render(overlay)
    problems = [f"{overlay.name}: {x}" for x in kubernetes_validate(docs)]
    problems += [f"{overlay.name}: {x}" for x in crd_validate(docs)]
    problems += [f"{overlay.name}: {x}" for x in consistency(docs, metric_names)]
    problems += [f"{overlay.name}: {x}" for x in promtool(docs)]
    failed, report[f"checkov kubernetes ({overlay.name})"] = checkov_rendered(docs)
    problems += [f"{overlay.name}: checkov {x}" for x in failed]
    return problems


def check_crate(crate: Path, report: dict) -> list[str]:
    """A scaffolded crate's deploy/ files: its overlay (rendered with sqsrt's
    base), its SAM template and its Containerfiles."""
    deploy = crate / "deploy"
    problems = yamllint(deploy / "k8s") + check_sam(deploy / "template.yaml", report)
    failed, report["checkov dockerfile"] = checkov_containerfiles(deploy)
    problems += [f"container: checkov {x}" for x in failed]
    problems += check_overlay(deploy / "k8s", None, report)
    return problems


def check_all(k8s_dir: Path, sam: Path, container: Path, metric_names, report: dict) -> list[str]:
    """Every check on the shipped files; `report` collects checkov's and cfn-lint's counts."""
    problems = yamllint(k8s_dir) + yamllint(ALERT_TESTS) + check_sam(sam, report)
    failed, report["checkov dockerfile"] = checkov_containerfiles(container)
    problems += [f"container: checkov {x}" for x in failed]
    # The scan users run first: every framework over the files as written.
    failed, report["checkov -d infra (default scan)"] = checkov(ROOT / "infra", "all")
    problems += [f"infra: checkov {x}" for x in failed]
    problems += [f"dashboard: {x}" for x in dashboard_rules(json.loads(DASHBOARD.read_text()), metric_names)]
    for overlay in [k8s_dir / "base", *sorted((k8s_dir / "overlays").iterdir())]:
        problems += check_overlay(overlay, metric_names, report)
    return problems


def broken_copies_fail(metric_names) -> list[str]:
    """Each validator must reject a deliberately broken copy."""
    failures = []
    base_docs = render(K8S / "base")

    def mutated(kind, change):
        docs = copy.deepcopy(base_docs)
        change(one(docs, kind))
        return docs

    def grace(d):
        d["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 10

    def queue_length(d):
        d["spec"]["triggers"][0]["metadata"]["queueLength"] = "16"

    def unknown_field(d):
        d["spec"]["template"]["spec"]["containers"][0]["livenessProbes"] = {}

    def privileged(d):
        d["spec"]["template"]["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True

    def heartbeat(d):
        for e in d["spec"]["template"]["spec"]["containers"][0]["env"]:
            if e["name"] == "SQSRT_HEARTBEAT_SECS":
                e["value"] = "60"

    def trigger_typo(d):
        d["spec"]["triggers"][0]["metadata"]["queueUrl"] = d["spec"]["triggers"][0]["metadata"].pop("queueURL")

    def crd_unknown_field(d):
        d["spec"]["minReplicas"] = 0

    def crd_wrong_type(d):
        d["spec"]["pollingInterval"] = "15"

    def no_selector(d):
        del d["spec"]["selector"]

    def alert_syntax(d):
        d["spec"]["groups"][0]["rules"][0]["expr"] = "sum(rate(sqsrt_dlq_sends_total[5m]) > 0"

    def alert_threshold(d):
        rule = d["spec"]["groups"][0]["rules"][0]
        rule["expr"] = rule["expr"].replace("> 0.1", "> 0.5")

    for name, kind, change in [("termination grace", "Deployment", grace), ("queueLength", "ScaledObject", queue_length),
                               ("privilege escalation", "Deployment", privileged),
                               ("heartbeat not below visibility", "Deployment", heartbeat),
                               ("trigger key typo", "ScaledObject", trigger_typo),
                               ("ServiceMonitor without selector", "ServiceMonitor", no_selector)]:
        if not consistency(mutated(kind, change), metric_names):
            failures.append(f"consistency check passed a broken copy ({name})")
    for name, kind, change in [("unknown field", "ScaledObject", crd_unknown_field),
                               ("string for an integer", "ScaledObject", crd_wrong_type),
                               ("missing required selector", "ServiceMonitor", no_selector)]:
        if not crd_validate(mutated(kind, change)):
            failures.append(f"CRD schema validation passed a broken copy ({name})")
    for name, change in [("syntax error", alert_syntax), ("threshold its unit test pins", alert_threshold)]:
        if not promtool(mutated("PrometheusRule", change)):
            failures.append(f"promtool passed a broken alert rule ({name})")
    if not checkov_rendered(mutated("Deployment", privileged))[0]:
        failures.append("checkov passed a container allowing privilege escalation")
    if not kubernetes_validate(mutated("Deployment", unknown_field)):
        failures.append("kubernetes-validate passed a Deployment with an unknown field")
    if metric_names is not None:
        def bad_metric(d):
            d["spec"]["groups"][0]["rules"][0]["expr"] = "sum(rate(sqsrt_no_such_metric_total[5m])) > 0"
        if not consistency(mutated("PrometheusRule", bad_metric), metric_names):
            failures.append("metric name check passed an alert on an unknown metric")
    if metric_names is not None:
        dashboard = json.loads(DASHBOARD.read_text())
        dashboard["panels"][0]["targets"][0]["expr"] = "sum(rate(sqsrt_messages_handled_total[5m]))"
        if not dashboard_rules(dashboard, metric_names):
            failures.append("dashboard check passed a panel on an unknown metric")
    template = yaml.load(SAM.read_text(), Loader=CfnLoader)
    short = copy.deepcopy(template)
    short["Parameters"]["QueueVisibilityTimeoutSecs"]["Default"] = 60
    if not sam_rules(short):
        failures.append("SAM rules passed a visibility below 6 x the function timeout")
    provisioned = copy.deepcopy(template)
    provisioned["Parameters"]["ProvisionedMinimumPollers"]["Default"] = 2
    if not sam_rules(provisioned):
        failures.append("SAM rules passed provisioned pollers on by default")
    with tempfile.TemporaryDirectory() as tmp:
        bad_sam = Path(tmp) / "template.yaml"
        bad_sam.write_text(SAM.read_text().replace("MemorySize: 256", "MemorySize: 20"))
        if not cfn_lint(bad_sam):
            failures.append("cfn-lint passed a 20 MB function")
        bad_sam.write_text(SAM.read_text().replace("FunctionResponseTypes: [ReportBatchItemFailures]",
                                                   "FunctionResponseTypes: [ReportBatchItemFailure]"))
        if not cfn_lint(bad_sam):
            failures.append("cfn-lint passed an unknown FunctionResponseTypes value on the mapping")
        bad_sam.write_text(SAM.read_text().replace("- id: CKV_AWS_117", "- id: CKV_AWS_999"))
        if not checkov(bad_sam, "cloudformation")[0]:
            failures.append("checkov passed a function outside a VPC without a justified skip")
    with tempfile.TemporaryDirectory() as tmp:
        for f in CONTAINER.glob("Containerfile*"):
            (Path(tmp) / f.name).write_text(re.sub(r"(?m)^USER .*$", "", f.read_text()))
        if not checkov_containerfiles(Path(tmp))[0]:
            failures.append("checkov passed Containerfiles running as root")
    with tempfile.TemporaryDirectory() as tmp:
        broken = Path(tmp) / "k8s"
        shutil.copytree(K8S, broken)
        path = broken / "base" / "service.yaml"
        path.write_text(path.read_text().replace("  type: ClusterIP", "   type: ClusterIP"))
        if not yamllint(broken):
            failures.append("yamllint passed badly indented YAML")
    return failures


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--metrics-file", help="a real /metrics scrape of the worker")
    parser.add_argument("--crate", type=Path, help="check a scaffolded crate's deploy/ files instead")
    parser.add_argument("--binary", default=None,
                        help="the sqsrt binary (or a crate's) whose `defaults` the rules use "
                             "(default: $SQSRT_BIN, else $CARGO_TARGET_DIR/dist/<arch>/sqsrt)")
    args = parser.parse_args()
    binary = args.binary or os.environ.get("SQSRT_BIN") or str(
        Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache/sqsrt/target")) / "dist" / os.uname().machine / "sqsrt")
    load_defaults(binary)
    if args.crate:
        report = {}
        problems = check_crate(args.crate.resolve(), report)
        for p in problems:
            print("FAIL", p)
        for name, result in report.items():
            text = result if isinstance(result, str) else ", ".join(f"{v} {k}" for k, v in result.items())
            print(f"| {name} | {text} |")
        print(f"crate {args.crate}: {len(problems)} problem(s)" if problems else
              f"crate {args.crate}: overlay, SAM template and Containerfiles pass every check")
        sys.exit(1 if problems else 0)
    metric_names = exported_metrics(Path(args.metrics_file).read_text()) if args.metrics_file else None
    if metric_names is not None and not metric_names:
        sys.exit("the metrics scrape holds no metric")
    report = {}
    problems = check_all(K8S, SAM, CONTAINER, metric_names, report)
    problems += broken_copies_fail(metric_names)
    for p in problems:
        print("FAIL", p)
    print("| scan | result |\n|---|---|")
    for name, result in report.items():
        text = result if isinstance(result, str) else ", ".join(f"{v} {k}" for k, v in result.items())
        print(f"| {name} | {text} |")
    checks = ("yamllint, kubectl kustomize, kubernetes-validate --strict, CRD schemas (KEDA, Prometheus Operator), "
              "promtool check/test rules, checkov, cfn-lint, consistency, dashboard") + (
        f", alert metrics vs a scrape of {len(metric_names)} names" if metric_names else "")
    print(f"infra: {checks}; broken copies rejected" if not problems else f"{len(problems)} problem(s)")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
