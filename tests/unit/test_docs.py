"""The tables generated from the code (settings, metrics, command line), and the
documentation that holds them kept in step with the code."""

from __future__ import annotations

import re
import subprocess
import sys
import typing
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics import MetricWrapperBase

from stream_wfm.doc_tables import (
    CLI_MARKERS,
    HOMES,
    METRICS_MARKERS,
    MISSING,
    SETTINGS_MARKERS,
    TABLES,
    DocsError,
    cli_commands,
    cli_table,
    main,
    markers,
    metrics_table,
    render,
    settings_table,
    undocumented_settings,
    update_file,
)
from stream_wfm.ops.histogram import LoopHistogram
from stream_wfm.ops.metrics import Metrics
from stream_wfm.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
CONTRACT = ROOT / "docs" / "contract.md"
#: The repository's own documentation (what its tests below keep honest).
DOC_FILES = [README, *sorted((ROOT / "docs").glob("*.md")), ROOT / "deploy" / "README.md"]
REGENERATE = "python -m stream_wfm.doc_tables"


def table_rows(table: str) -> list[list[str]]:
    """The body rows of a markdown table, as lists of cells."""
    lines = table.splitlines()
    assert lines[1].startswith("|---"), "second line is the header separator"
    return [[cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]] for line in lines[2:]]


def code_spans(text: str) -> list[str]:
    return re.findall(r"`([^`]+)`", text)


# --- settings ------------------------------------------------------------------------------


#: The settings that are maps, set one key at a time (STREAM_WFM_KAFKA__<PROPERTY>, ...).
MAP_SETTINGS = {
    name
    for name, field in Settings.model_fields.items()
    if typing.get_origin(field.annotation) is dict
}


def env_name(field_name: str) -> str:
    suffix = "__<PROPERTY>" if field_name in MAP_SETTINGS else ""
    return f"STREAM_WFM_{field_name.upper()}{suffix}"


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


# --- command line --------------------------------------------------------------------------


def cli_rows() -> dict[str, list[str]]:
    rows = table_rows(cli_table())
    return {code_spans(row[0])[0]: row for row in rows}


def test_every_command_has_a_row() -> None:
    commands = [command for command, *_ in cli_commands()]
    assert len(commands) == len(set(commands))
    usages = list(cli_rows())
    assert len(usages) == len(commands)
    for command, usage in zip(commands, usages, strict=True):
        assert usage == command or usage.startswith(f"{command} ")
    assert {"stream-wfm run", "stream-wfm demo", "stream-wfm config put"} <= set(commands)


@pytest.mark.parametrize(
    ("usage", "options"),
    [
        ("stream-wfm run", MISSING),
        ("stream-wfm topics create", MISSING),
        ("stream-wfm config put ACCOUNT_ID --file FILE", MISSING),
        ("stream-wfm config get ACCOUNT_ID", "`--show-secrets`"),
        ("stream-wfm config validate --file FILE", MISSING),
        ("stream-wfm demo", "`--keep-running`, `--rate N`, `--verbose`"),
        ("stream-wfm receiver", "`--host HOST`, `--port PORT`"),
    ],
)
def test_command_usage_and_options(usage: str, options: str) -> None:
    row = cli_rows()[usage]
    assert row[1] == options
    assert row[2] not in ("", MISSING), "help text"


def test_choices_are_shown_and_escaped() -> None:
    row = cli_rows()["stream-wfm bench"]
    assert r"`--format json\|urlencoded`" in row[1]


# --- files ---------------------------------------------------------------------------------

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


def test_update_file_replaces_only_between_the_markers(tmp_path: Path) -> None:
    path = tmp_path / "contract.md"
    path.write_text(SAMPLE)
    assert update_file(path) is True
    text = path.read_text()
    assert text.startswith("# Title\n\nIntro | with a pipe.\n\n" + SETTINGS_MARKERS[0] + "\n")
    assert f"\n{settings_table()}\n{SETTINGS_MARKERS[1]}\n\nBetween.\n\n" in text
    assert f"{METRICS_MARKERS[0]}\n{metrics_table()}\n{METRICS_MARKERS[1]}\n\nEnd.\n" in text
    assert "old settings" not in text
    assert CLI_MARKERS[0] not in text, "only the tables whose markers the file holds"
    assert update_file(path) is False
    assert path.read_text() == text


def test_each_table_has_its_own_markers() -> None:
    assert markers("settings") == SETTINGS_MARKERS
    assert len({m for name in TABLES for m in markers(name)}) == 2 * len(TABLES)
    for names in HOMES.values():
        assert set(names) <= set(TABLES)
    homed = [name for names in HOMES.values() for name in names]
    assert sorted(homed) == sorted(TABLES), "every table lives in exactly one file"


@pytest.mark.parametrize(
    "broken",
    [
        SAMPLE.replace(SETTINGS_MARKERS[1], ""),
        SAMPLE.replace(METRICS_MARKERS[0], ""),
        SAMPLE.replace(f"{METRICS_MARKERS[0]}\n{METRICS_MARKERS[1]}", METRICS_MARKERS[1]),
        SAMPLE + METRICS_MARKERS[0],
        "no markers at all\n",
    ],
)
def test_markers_missing_or_misplaced(broken: str) -> None:
    with pytest.raises(DocsError):
        render(broken)


def test_required_tables_must_have_markers() -> None:
    render(SAMPLE, ["settings", "metrics"])
    with pytest.raises(DocsError, match="cli-table:start"):
        render(SAMPLE, ["cli"])


def test_main_check_and_update(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "contract.md"
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


def test_main_without_paths_checks_every_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    for home, names in HOMES.items():
        (tmp_path / home).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / home).write_text("".join(f"{a}\n{b}\n" for a, b in map(markers, names)))
    assert main(["--check"]) == 1
    assert main([]) == 0
    capsys.readouterr()
    assert main(["--check"]) == 0
    assert capsys.readouterr().out.count("up to date") == len(HOMES)
    (tmp_path / "README.md").write_text("the markers are gone\n")
    assert main(["--check"]) == 2


def test_runs_as_a_module(tmp_path: Path) -> None:
    path = tmp_path / "contract.md"
    path.write_text(SAMPLE + f"{CLI_MARKERS[0]}\n{CLI_MARKERS[1]}\n")
    done = subprocess.run(
        [sys.executable, "-m", "stream_wfm.doc_tables", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    # Not compared with the tables of this process: the subprocess imports the code afresh.
    text = path.read_text()
    assert "| `STREAM_WFM_BOOTSTRAP_SERVERS` | unset |" in text
    assert "| `stream_wfm_deliveries_total` | counter |" in text
    assert "| `stream-wfm run` |" in text


@pytest.mark.parametrize(("home", "names"), list(HOMES.items()))
def test_generated_tables_are_up_to_date(home: str, names: tuple[str, ...]) -> None:
    text = (ROOT / home).read_text(encoding="utf-8")
    try:
        fresh = render(text, names)
    except DocsError as exc:
        pytest.fail(f"{home} cannot hold its generated tables {names} ({exc}): run {REGENERATE}")
    if fresh != text:
        pytest.fail(f"{home}: the generated tables are stale: run {REGENERATE}")


# --- the documentation itself ----------------------------------------------------------------


def test_contract_keeps_its_section_numbers() -> None:
    """Code comments cite the contract as ``docs/contract.md §N``: the numbers stay."""
    headings = re.findall(r"^## (\d+)\. (.+)$", CONTRACT.read_text(encoding="utf-8"), re.M)
    numbers = [int(number) for number, _ in headings]
    assert numbers == list(range(1, len(numbers) + 1))
    titles = dict((int(number), title) for number, title in headings)
    assert titles[1] == "Topics"
    assert titles[6].startswith("Retries and dead letters")
    assert titles[9] == "Admin console"
    assert len(numbers) >= 9


def test_contract_names_every_command_and_option() -> None:
    text = CONTRACT.read_text(encoding="utf-8")
    for command, _help, required, optional in cli_commands():
        assert f"`{command}" in text, command
        for argument in [*required, *optional]:
            flag = argument.split(" ")[0]
            if flag.startswith("--"):
                assert re.search(rf"[`\s]{re.escape(flag)}\b", text), f"{command} {flag}"


def test_documented_settings_and_metrics_exist() -> None:
    settings = {f"STREAM_WFM_{name.upper()}" for name in Settings.model_fields}
    metrics = Metrics(CollectorRegistry())
    known = exported_names(metrics) | {family.name for family in metrics.registry.collect()}
    for path in DOC_FILES:
        text = path.read_text(encoding="utf-8")
        for name in set(re.findall(r"\bSTREAM_WFM_[A-Z0-9_]*[A-Z0-9]", text)):
            if not any(name.startswith(f"STREAM_WFM_{m.upper()}__") for m in MAP_SETTINGS):
                assert name in settings, f"{path.name}: {name} is not a setting"
        for name in set(re.findall(r"\bstream_wfm_[a-z0-9_]*[a-z0-9]", text)):
            assert name in known, f"{path.name}: {name} is not a metric"


def test_relative_links_lead_to_files_that_exist() -> None:
    for path in DOC_FILES:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text(encoding="utf-8")):
            if "://" in target or target.startswith("mailto:"):
                continue
            assert (path.parent / target).exists(), f"{path.relative_to(ROOT)} links to {target}"


def test_documentation_stays_inside_the_repository() -> None:
    outside = re.compile(r"\bSPEC\b|SPEC\.md|DESIGN\.md|BROKER-NOTES|steering repository")
    files = [*DOC_FILES, *sorted((ROOT / "schemas").glob("*.json")), ROOT / "docker-compose.yml"]
    for path in files:
        found = outside.findall(path.read_text(encoding="utf-8"))
        assert not found, f"{path.relative_to(ROOT)} refers to {found[0]}"
