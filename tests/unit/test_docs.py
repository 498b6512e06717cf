"""The settings and metrics tables generated from the code, and README.md kept in step."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics import MetricWrapperBase

from stream_wfm.ops.docs import (
    METRICS_MARKERS,
    MISSING,
    SETTINGS_MARKERS,
    DocsError,
    main,
    metrics_table,
    render_readme,
    settings_table,
    undocumented_settings,
    update_readme,
)
from stream_wfm.ops.histogram import LoopHistogram
from stream_wfm.ops.metrics import Metrics
from stream_wfm.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"
REGENERATE = "python -m stream_wfm.ops.docs"


def table_rows(table: str) -> list[list[str]]:
    """The body rows of a markdown table, as lists of cells."""
    lines = table.splitlines()
    assert lines[1].startswith("|---"), "second line is the header separator"
    return [[cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]] for line in lines[2:]]


def code_spans(text: str) -> list[str]:
    return re.findall(r"`([^`]+)`", text)


# --- settings ------------------------------------------------------------------------------


def env_name(field_name: str) -> str:
    return f"STREAM_WFM_{field_name.upper()}" + ("__<PROPERTY>" if field_name == "kafka" else "")


def settings_rows() -> dict[str, list[str]]:
    rows = table_rows(settings_table())
    by_var = {code_spans(row[0])[0]: row for row in rows}
    assert len(by_var) == len(rows), "one row per variable"
    return by_var


def test_every_setting_has_a_row() -> None:
    rows = settings_rows()
    assert set(rows) == {env_name(name) for name in Settings.model_fields}
    assert len(rows) == len(Settings.model_fields)


@pytest.mark.parametrize(
    ("variable", "default", "values"),
    [
        ("STREAM_WFM_BOOTSTRAP_SERVERS", "unset", MISSING),
        ("STREAM_WFM_GROUP_ID", "`stream-wfm`", "not empty"),
        ("STREAM_WFM_RETRY_BACKOFF", "`10s,1m,10m,1h`", MISSING),
        ("STREAM_WFM_HTTP_PORT", "`9108`", "0 to 65535"),
        ("STREAM_WFM_SHUTDOWN_TIMEOUT", "`30`", "more than 0, at most 3600"),
        ("STREAM_WFM_MAX_BUFFERED_EVENTS", "`20000`", "at least 100"),
        ("STREAM_WFM_ALLOW_PRIVATE_DESTINATIONS", "`false`", MISSING),
        ("STREAM_WFM_LOG_FORMAT", "`json`", "one of `json`, `text`"),
        ("STREAM_WFM_CONSOLE_PASSWORD", "unset", MISSING),
        ("STREAM_WFM_KAFKA__<PROPERTY>", "none", MISSING),
    ],
)
def test_setting_defaults_and_values(variable: str, default: str, values: str) -> None:
    _, shown_default, shown_values, _ = settings_rows()[variable]
    assert shown_default == default
    assert shown_values == values


def test_setting_descriptions_come_from_the_model() -> None:
    rows = settings_rows()
    for name, field in Settings.model_fields.items():
        row = rows[env_name(name)]
        expected = field.description or MISSING
        assert row[3] == expected.replace("<", "&lt;").replace(">", "&gt;")
    undocumented = undocumented_settings()
    assert undocumented == [n for n, f in Settings.model_fields.items() if not f.description]
    print("settings without a description:", ", ".join(undocumented) or "none")


def test_angle_brackets_escaped_outside_code_only() -> None:
    row = settings_rows()["STREAM_WFM_KAFKA__<PROPERTY>"]
    assert row[0] == "`STREAM_WFM_KAFKA__<PROPERTY>`"
    assert "<" not in row[3].replace("`STREAM_WFM_KAFKA__<PROPERTY>`", "")


# --- metrics ---------------------------------------------------------------------------------


def exported_names(metrics: Metrics) -> set[str]:
    """Every sample name the service exports, after each metric got one observation."""
    for metric in vars(metrics).values():
        if isinstance(metric, LoopHistogram):
            metric.labels(*["x"] * len(metric.labelnames)).observe(0.1)
            continue
        if not isinstance(metric, MetricWrapperBase):
            continue
        labelnames: tuple[str, ...] = getattr(metric, "_labelnames", ())
        child = metric.labels(*["x"] * len(labelnames)) if labelnames else metric
        if isinstance(child, Counter):
            child.inc()
        elif isinstance(child, Gauge):
            child.set(1)
        elif isinstance(child, Histogram):
            child.observe(0.1)
    text = generate_latest(metrics.registry).decode()
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1] != "#"}


def metrics_rows() -> dict[str, list[str]]:
    rows = table_rows(metrics_table())
    return {code_spans(row[0])[0]: row for row in rows}


def test_every_metric_family_has_a_row() -> None:
    registry = CollectorRegistry()
    Metrics(registry)
    families = [family.name for family in registry.collect()]
    rows = metrics_rows()
    assert len(rows) == len(families)
    for family in families:
        assert any(name == family or name.startswith(f"{family}_") for name in rows), family


def test_metric_names_in_the_table_are_the_exported_ones() -> None:
    exported = exported_names(Metrics(CollectorRegistry()))
    for name, row in metrics_rows().items():
        assert name in exported, f"{name} is not a sample name the service exports"
        for suffix in code_spans(row[0])[1:]:  # `_sum`, `_count` of histograms
            base = name.removesuffix("_bucket")
            assert f"{base}{suffix}" in exported


@pytest.mark.parametrize(
    ("name", "kind", "labels"),
    [
        ("stream_wfm_build_info", "info", "`version`"),
        ("stream_wfm_events_consumed_total", "counter", "`topic`"),
        ("stream_wfm_deliveries_total", "counter", "`kind`, `outcome`, `status_class`"),
        ("stream_wfm_delivery_duration_seconds_bucket", "histogram", "`kind`, `le`"),
        ("stream_wfm_consumer_lag", "gauge", "`topic`, `partition`"),
        ("stream_wfm_assigned_partitions", "gauge", "`topic`"),
        ("stream_wfm_ready", "gauge", MISSING),
    ],
)
def test_metric_type_and_labels(name: str, kind: str, labels: str) -> None:
    row = metrics_rows()[name]
    assert row[1] == kind
    assert row[2] == labels
    assert row[3], "help text"


def test_no_account_id_label() -> None:
    assert "account_id" not in metrics_table()


# --- README ----------------------------------------------------------------------------------

SAMPLE = f"""# Title

Intro | with a pipe.

{SETTINGS_MARKERS[0]}
old settings
{SETTINGS_MARKERS[1]}

Between.

{METRICS_MARKERS[0]}
{METRICS_MARKERS[1]}

End.
"""


def test_update_readme_replaces_only_between_the_markers(tmp_path: Path) -> None:
    path = tmp_path / "README.md"
    path.write_text(SAMPLE)
    assert update_readme(path) is True
    text = path.read_text()
    assert text.startswith("# Title\n\nIntro | with a pipe.\n\n" + SETTINGS_MARKERS[0] + "\n")
    assert f"\n{settings_table()}\n{SETTINGS_MARKERS[1]}\n\nBetween.\n\n" in text
    assert f"{METRICS_MARKERS[0]}\n{metrics_table()}\n{METRICS_MARKERS[1]}\n\nEnd.\n" in text
    assert "old settings" not in text
    assert update_readme(path) is False
    assert path.read_text() == text


@pytest.mark.parametrize(
    "broken",
    [
        SAMPLE.replace(SETTINGS_MARKERS[1], ""),
        SAMPLE.replace(METRICS_MARKERS[0], ""),
        SAMPLE.replace(f"{METRICS_MARKERS[0]}\n{METRICS_MARKERS[1]}", METRICS_MARKERS[1]),
        SAMPLE + METRICS_MARKERS[0],
    ],
)
def test_markers_missing_or_misplaced(broken: str) -> None:
    with pytest.raises(DocsError):
        render_readme(broken)


def test_main_check_and_update(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "README.md"
    path.write_text(SAMPLE)
    assert main(["--check", str(path)]) == 1
    assert REGENERATE in capsys.readouterr().err
    assert path.read_text() == SAMPLE, "--check changes nothing"
    assert main([str(path)]) == 0
    assert main(["--check", str(path)]) == 0
    path.write_text("no markers\n")
    assert main(["--check", str(path)]) == 2
    assert "marker" in capsys.readouterr().err
    assert main(["--check", str(tmp_path / "absent.md")]) == 2


def test_runs_as_a_module(tmp_path: Path) -> None:
    path = tmp_path / "README.md"
    path.write_text(SAMPLE)
    done = subprocess.run(
        [sys.executable, "-m", "stream_wfm.ops.docs", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    # Not compared with settings_table(): the subprocess imports the code afresh.
    text = path.read_text()
    assert "| `STREAM_WFM_BOOTSTRAP_SERVERS` | unset |" in text
    assert "| `stream_wfm_deliveries_total` | counter |" in text


def test_readme_tables_are_up_to_date() -> None:
    text = README.read_text(encoding="utf-8")
    try:
        fresh = render_readme(text)
    except DocsError as exc:
        pytest.fail(
            f"README.md cannot hold the generated tables ({exc}): add the markers "
            f"{SETTINGS_MARKERS} and {METRICS_MARKERS}, then run {REGENERATE}"
        )
    if fresh != text:
        pytest.fail(f"README.md's settings/metrics tables are stale: run {REGENERATE}")
