"""Offline checks of the deployment artefacts: docker-compose.yml, deploy/Dockerfile,
deploy/prometheus, deploy/grafana and deploy/kubernetes (docs/design.md).

Tools: check-jsonschema, kubernetes-validate, pyyaml (the `dev` extra), `promtool`
(Debian `prometheus`) and `kubectl`. A missing tool skips its tests, or fails them when
the CI environment variable is set.

After editing deploy/prometheus/rules.yml run deploy/prometheus/sync_prometheusrule.py.
"""

from __future__ import annotations

import fnmatch
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from stream_wfm.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = ROOT / "docker-compose.yml"
PROMETHEUS_YML = DEPLOY / "prometheus" / "prometheus.yml"
RULES = DEPLOY / "prometheus" / "rules.yml"
PROMETHEUS_RULE = DEPLOY / "kubernetes" / "prometheusrule.yaml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "stream-wfm.json"
DOCKERFILE = DEPLOY / "Dockerfile"
REPLICAS = ("stream-wfm-1", "stream-wfm-2")
K8S_VERSION = "1.30.0"
BUILTIN_KINDS = {"ServiceAccount", "Deployment", "Service", "PodDisruptionBudget", "ConfigMap"}
INSTALL = {"promtool": "apt-get install prometheus", "kubectl": "install kubectl"}

Doc = dict[str, Any]


def missing(name: str) -> None:
    how = INSTALL.get(name, "pip install -e '.[dev]'")
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


# --- Kubernetes -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rendered() -> dict[str, Doc]:
    output = run(tool("kubectl"), "kustomize", str(DEPLOY / "kubernetes"))
    return {doc["kind"]: doc for doc in yaml.safe_load_all(output) if doc}


def test_kustomize_renders_valid_builtin_resources(rendered: dict[str, Doc]) -> None:
    try:
        import kubernetes_validate  # type: ignore[import-untyped]
    except ImportError:
        missing("kubernetes-validate")
    assert set(rendered) >= BUILTIN_KINDS
    for kind in sorted(BUILTIN_KINDS):  # strict: unknown fields are errors
        kubernetes_validate.validate(rendered[kind], K8S_VERSION, strict=True)


def test_deployment_probes_shutdown_and_security(rendered: dict[str, Doc]) -> None:
    config = rendered["ConfigMap"]["data"]
    assert unknown_settings(set(config)) == []
    spec = rendered["Deployment"]["spec"]
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert spec["replicas"] == 2
    assert (container["image"], container["args"]) == ("stream-wfm:0.1.0", ["run"])
    assert pod["terminationGracePeriodSeconds"] > float(config["STREAM_WFM_SHUTDOWN_TIMEOUT"])
    probes = {p: container[f"{p}Probe"]["httpGet"]["path"] for p in ("readiness", "liveness")}
    assert probes == {"readiness": "/readyz", "liveness": "/healthz"}
    assert container["startupProbe"]["httpGet"]["port"] == "http-metrics"
    assert set(container["resources"]) == {"requests", "limits"}
    refs = [(e.get("configMapRef") or e.get("secretRef")) for e in container["envFrom"]]
    assert refs[0]["name"] == rendered["ConfigMap"]["metadata"]["name"]
    assert refs[1].get("optional") is True, "the Kafka credentials Secret must be optional"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    (port,) = rendered["Service"]["spec"]["ports"]
    assert (port["name"], port["port"]) == ("http-metrics", 9108)
    assert rendered["PodDisruptionBudget"]["spec"]["maxUnavailable"] == 1


def test_custom_resources_key_fields(rendered: dict[str, Doc]) -> None:
    monitor = rendered["ServiceMonitor"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    service_labels = rendered["Service"]["metadata"]["labels"].items()
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service_labels
    assert monitor["spec"]["endpoints"][0]["port"] == "http-metrics"
    assert rendered["PrometheusRule"]["apiVersion"] == "monitoring.coreos.com/v1"
    scaled = rendered["ScaledObject"]
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert scaled["spec"]["scaleTargetRef"]["name"] == rendered["Deployment"]["metadata"]["name"]
    partitions = Settings.model_fields["topic_partitions"].default
    assert (scaled["spec"]["minReplicaCount"], scaled["spec"]["maxReplicaCount"]) == (1, partitions)
    config, topics = rendered["ConfigMap"]["data"], set()
    for trigger in scaled["spec"]["triggers"]:
        meta = trigger["metadata"]
        assert (trigger["type"], int(meta["lagThreshold"]) > 0) == ("kafka", True)
        assert config[meta["bootstrapServersFromEnv"]] == config["STREAM_WFM_BOOTSTRAP_SERVERS"]
        assert config[meta["consumerGroupFromEnv"]] == config["STREAM_WFM_GROUP_ID"]
        topics.add(config[meta["topicFromEnv"]])
    assert topics == {"wfm.agent-events", "wfm.call-events"}


# --- container image --------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    lines = [ln.strip() for ln in text.splitlines()]
    return [tuple(ln.split(None, 1)) for ln in lines if ln and not ln.startswith("#")]  # type: ignore[misc]


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


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
def test_dockerfile_healthcheck_command_works(status: int, healthy: bool) -> None:
    command = json.loads(dict(dockerfile_instructions())["HEALTHCHECK"].split(" CMD ", 1)[1])
    assert command[:2] == ["python", "-c"]

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status if self.path == "/healthz" else 404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = {**os.environ, "STREAM_WFM_HTTP_PORT": str(server.server_port)}
        args = [sys.executable, "-c", command[2]]
        proc = subprocess.run(args, env=env, capture_output=True, timeout=30, check=False)
    finally:
        server.shutdown()
    assert (proc.returncode == 0) is healthy


# --- dashboard and metric names ---------------------------------------------------------


def test_dashboard_structure_and_queries_parse(tmp_path: Path) -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert (dashboard["uid"], dashboard["title"]) == ("stream-wfm", "stream-wfm")
    variables = {v["name"]: v["type"] for v in dashboard["templating"]["list"]}
    assert (variables["datasource"], variables["instance"]) == ("datasource", "query")
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert all(p["datasource"]["uid"] == "${datasource}" for p in panels)
    grafana_vars = {"$__rate_interval": "1m", "$__range": "1h", "$job": ".*", "$instance": ".*"}
    rules = []
    for i, expr in enumerate(t["expr"] for p in panels for t in p["targets"]):
        for variable, value in grafana_vars.items():
            expr = expr.replace(variable, value)
        rules.append({"record": f"dashboard:query_{i}", "expr": expr})
    path = tmp_path / "dashboard-queries.yml"  # promtool parses every query as PromQL
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    run(tool("promtool"), "check", "rules", str(path))


def test_every_metric_in_dashboard_and_rules_is_exported() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from stream_wfm.ops.metrics import Metrics

    registry = CollectorRegistry()
    Metrics(registry)
    exposition = generate_latest(registry).decode()
    # A labelled metric with no children yet prints only its HELP and TYPE lines.
    exported = set(re.findall(r"^# HELP (\S+)", exposition, re.M))
    exported |= set(re.findall(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", exposition, re.M))
    text = DASHBOARD.read_text() + RULES.read_text()
    used = {re.sub(r"_(bucket|sum|count)$", "", m) for m in re.findall(r"stream_wfm_[a-z_]+", text)}
    assert len(used) > 10
    assert sorted(used - exported) == []
