"""Write deploy/kubernetes/components/prometheus-operator/prometheusrule.yaml from rules.yml.

Kustomize cannot wrap a plain rules file in a PrometheusRule, so the Kubernetes copy is
generated; tests/deploy/test_deploy_artifacts.py fails when the two differ. Run after
editing rules.yml:

    python deploy/prometheus/sync_prometheusrule.py
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
RULES = HERE / "rules.yml"
TARGET = HERE.parent / "kubernetes" / "components" / "prometheus-operator" / "prometheusrule.yaml"
HEADER = (
    "# Generated from deploy/prometheus/rules.yml by deploy/prometheus/sync_prometheusrule.py.\n"
    "# Do not edit by hand: edit rules.yml and run the script.\n"
)


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the PromQL expressions) as literal blocks."""


def _str(dumper: yaml.SafeDumper, data: str) -> Any:
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, "|" if "\n" in data else None)


_Dumper.add_representer(str, _str)


def render() -> str:
    resource = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "stream-wfm",
            "labels": {
                "app.kubernetes.io/name": "stream-wfm",
                "app.kubernetes.io/part-of": "stream-wfm",
            },
        },
        "spec": {"groups": yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]},
    }
    return HEADER + yaml.dump(resource, Dumper=_Dumper, sort_keys=False, width=100)


if __name__ == "__main__":
    TARGET.write_text(render(), encoding="utf-8")
    print(f"wrote {TARGET}")
