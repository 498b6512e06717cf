"""Documentation generated from the code: the settings, metrics and command-line tables.

Each table lives between two markers (``<!-- NAME-table:start -->`` and
``<!-- NAME-table:end -->``) in the markdown file listed for it in :data:`HOMES`:
the command-line table in README.md, the settings and metrics tables in
docs/contract.md. ``python -m stream_wfm.doc_tables``, run from the repository root,
rewrites them in place; ``--check`` only reports (exit 1) when one is stale. Given
file paths, it rewrites the tables whose markers each of those files holds.

* :func:`settings_table` reads :class:`~stream_wfm.settings.Settings`: one row
  per field with its environment variable, default, description and allowed
  values (``Literal`` choices, numeric bounds).
* :func:`metrics_table` reads a fresh :class:`~stream_wfm.ops.metrics.Metrics`
  on its own registry: one row per metric family with the names a query uses
  (``_total`` for counters, ``_bucket``/``_sum``/``_count`` for histograms,
  ``_info`` for info), its type, labels and help text.
* :func:`cli_table` reads the ``stream-wfm`` argument parser: one row per command
  with its positional arguments and required options, its other options, and its
  help text.
"""

from __future__ import annotations

import argparse
import sys
import typing
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final

import annotated_types
from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase
from pydantic import SecretStr
from pydantic.fields import FieldInfo

from stream_wfm.errors import StreamWfmError
from stream_wfm.ops.histogram import LoopHistogram
from stream_wfm.ops.metrics import Metrics
from stream_wfm.settings import ENV_PREFIX, Settings

__all__ = [
    "CLI_MARKERS",
    "HOMES",
    "METRICS_MARKERS",
    "MISSING",
    "SETTINGS_MARKERS",
    "TABLES",
    "DocsError",
    "cli_commands",
    "cli_table",
    "main",
    "markers",
    "metrics_table",
    "render",
    "settings_table",
    "undocumented_settings",
    "update_file",
]

#: Shown for a setting without a description (and for "no default").
MISSING: Final = "—"
REGENERATE: Final = "python -m stream_wfm.doc_tables"


def markers(name: str) -> tuple[str, str]:
    """The start and end markers of the generated table ``name``."""
    return f"<!-- {name}-table:start -->", f"<!-- {name}-table:end -->"


SETTINGS_MARKERS: Final = markers("settings")
METRICS_MARKERS: Final = markers("metrics")
CLI_MARKERS: Final = markers("cli")

#: Where each generated table lives: file (relative to the repository root) → table names.
HOMES: Final[dict[str, tuple[str, ...]]] = {
    "README.md": ("cli",),
    "docs/contract.md": ("settings", "metrics"),
}


class DocsError(StreamWfmError):
    """A file cannot be updated (markers missing, duplicated or out of order)."""


def _cell(text: str) -> str:
    """Text safe inside a markdown table cell: no pipe or newline, and ``<``/``>`` outside
    code spans escaped (``<NAME>`` would otherwise be taken for an HTML tag)."""
    parts = text.replace("|", "\\|").replace("\n", " ").split("`")
    for i in range(0, len(parts), 2):
        parts[i] = parts[i].replace("<", "&lt;").replace(">", "&gt;")
    return "`".join(parts)


# --- settings --------------------------------------------------------------------------------


def _env_name(name: str, field: FieldInfo) -> str:
    env = f"{ENV_PREFIX}{name.upper()}"
    if typing.get_origin(field.annotation) is dict:
        # A mapping is set one key at a time through the nested delimiter.
        delimiter = Settings.model_config.get("env_nested_delimiter") or "__"
        return f"{env}{delimiter}<PROPERTY>"
    return env


def _show_value(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, SecretStr):
        return "set"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, float) and value.is_integer():
        return f"`{int(value)}`"
    if isinstance(value, dict | list | tuple) and not value:
        return "none"
    return f"`{value}`"


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        return _show_value(field.get_default(call_default_factory=True))
    if field.is_required():
        return "required"
    return _show_value(field.default)


def _number(value: Any) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _allowed(field: FieldInfo) -> str:
    """Allowed values from the field's type and constraints (or "")."""
    if typing.get_origin(field.annotation) is typing.Literal:
        choices = ", ".join(f"`{choice}`" for choice in typing.get_args(field.annotation))
        return f"one of {choices}"
    low = high = ""  # "at least 1" / "more than 0", "at most 10" / "less than 10"
    for item in field.metadata:
        if isinstance(item, annotated_types.Ge):
            low = f"at least {_number(item.ge)}"
        elif isinstance(item, annotated_types.Gt):
            low = f"more than {_number(item.gt)}"
        elif isinstance(item, annotated_types.Le):
            high = f"at most {_number(item.le)}"
        elif isinstance(item, annotated_types.Lt):
            high = f"less than {_number(item.lt)}"
        elif isinstance(item, annotated_types.MinLen) and item.min_length == 1:
            return "not empty"
    if low.startswith("at least ") and high.startswith("at most "):
        return f"{low.removeprefix('at least ')} to {high.removeprefix('at most ')}"
    return ", ".join(part for part in (low, high) if part)


def undocumented_settings() -> list[str]:
    """Names of the settings whose field has no ``description``."""
    return [name for name, field in Settings.model_fields.items() if not field.description]


def settings_table() -> str:
    """Markdown table of every setting: variable, default, allowed values, description."""
    rows = ["| Variable | Default | Values | Description |", "|---|---|---|---|"]
    for name, field in Settings.model_fields.items():
        cells = (
            f"`{_env_name(name, field)}`",
            _default(field),
            _allowed(field) or MISSING,
            field.description or MISSING,
        )
        rows.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    return "\n".join(rows)


# --- metrics ---------------------------------------------------------------------------------

_SUFFIXES: Final = {
    "counter": ("_total",),
    "info": ("_info",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("", "_sum", "_count"),
}


def _label_names(metrics: Metrics) -> dict[str, tuple[str, ...]]:
    """Family name → label names, from the metric objects on ``metrics``."""
    names: dict[str, tuple[str, ...]] = {}
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            for family in value.describe():
                names[family.name] = tuple(getattr(value, "_labelnames", ()))
        elif isinstance(value, LoopHistogram):
            for family in value.describe():
                names[family.name] = value.labelnames
    return names


def metrics_table() -> str:
    """Markdown table of every metric family the service registers."""
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    labels = _label_names(metrics)
    rows = ["| Metric | Type | Labels | Help |", "|---|---|---|---|"]
    for family in registry.collect():
        suffixes = _SUFFIXES.get(family.type, ("",))
        first, *more = suffixes
        shown = f"`{family.name}{first}`"
        if more:
            shown += " (" + ", ".join(f"`{suffix}`" for suffix in more) + ")"
        label_list = list(labels.get(family.name, ()))
        if family.type == "histogram":
            label_list.append("le")
        if family.type == "info":
            label_list.extend(
                sorted({k for s in family.samples for k in s.labels} - set(label_list))
            )
        label_text = ", ".join(f"`{label}`" for label in label_list) or MISSING
        rows.append(f"| {shown} | {family.type} | {label_text} | {_cell(family.documentation)} |")
    return "\n".join(rows)


# --- command line ----------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    # Imported here: the command line imports most of the package.
    from stream_wfm.cli.main import build_parser

    return build_parser()


def _argument(action: argparse.Action) -> str:
    """How an argument is written: ``ACCOUNT_ID``, ``--json``, ``--file FILE``,
    ``--format json|urlencoded``."""
    if not action.option_strings:
        return action.metavar if isinstance(action.metavar, str) else action.dest.upper()
    flag = max(action.option_strings, key=len)
    if action.nargs == 0:
        return flag
    if isinstance(action.metavar, str):
        value = action.metavar
    elif action.choices is not None:
        value = "|".join(str(choice) for choice in action.choices)
    else:
        value = action.dest.upper()
    return f"{flag} {value}"


def _leaves(
    parser: argparse.ArgumentParser, words: list[str], help_text: str
) -> Iterator[tuple[str, str, list[argparse.Action]]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            for name, child in action.choices.items():
                yield from _leaves(child, [*words, name], helps.get(name, ""))
            return
    arguments = [
        action
        for action in parser._actions
        if not isinstance(action, argparse._HelpAction | argparse._VersionAction)
    ]
    yield " ".join(words), help_text, arguments


def cli_commands() -> list[tuple[str, str, list[str], list[str]]]:
    """Every ``stream-wfm`` command: ``(command, help, required, optional)``, where
    ``required`` lists its positional arguments and required options and ``optional``
    its other options, each as written on the command line (``--file FILE``)."""
    commands = []
    for command, help_text, actions in _leaves(_parser(), ["stream-wfm"], ""):
        required = [
            _argument(a) for a in actions if a.required or not a.option_strings
        ]  # positional arguments are required
        optional = [_argument(a) for a in actions if a.option_strings and not a.required]
        commands.append((command, help_text, required, optional))
    return commands


def cli_table() -> str:
    """Markdown table of every ``stream-wfm`` command, its options and its help text."""
    rows = ["| Command | Options | What |", "|---|---|---|"]
    for command, help_text, required, optional in cli_commands():
        cells = (
            "`" + " ".join([command, *required]) + "`",
            ", ".join(f"`{option}`" for option in optional) or MISSING,
            help_text or MISSING,
        )
        rows.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    return "\n".join(rows)


#: Every generated table, by the name its markers use.
TABLES: Final[dict[str, Callable[[], str]]] = {
    "settings": settings_table,
    "metrics": metrics_table,
    "cli": cli_table,
}


# --- files -----------------------------------------------------------------------------------


def _replace_between(text: str, pair: tuple[str, str], body: str) -> str:
    start, end = pair
    i, j = text.find(start), text.find(end)
    if i < 0 or j < 0:
        missing = start if i < 0 else end
        raise DocsError(f"no {missing} marker")
    if j < i:
        raise DocsError(f"{end} comes before {start}")
    if text.count(start) > 1 or text.count(end) > 1:
        raise DocsError(f"{start} or {end} appears more than once")
    return f"{text[: i + len(start)]}\n{body}\n{text[j:]}"


def render(text: str, required: Iterable[str] = ()) -> str:
    """``text`` with every generated table whose markers it holds replaced.

    Raises :class:`DocsError` when the markers of a table in ``required`` are missing,
    when a table's markers are incomplete, out of order or repeated, or when ``text``
    holds no generated table at all.
    """
    present = [name for name in TABLES if any(marker in text for marker in markers(name))]
    for name in required:
        if name not in present:
            raise DocsError(f"no {markers(name)[0]} marker")
    if not present:
        names = ", ".join(TABLES)
        raise DocsError(
            f"no generated-table marker (<!-- NAME-table:start -->, NAME one of {names})"
        )
    for name in present:
        text = _replace_between(text, markers(name), TABLES[name]())
    return text


def update_file(path: Path | str, required: Iterable[str] = ()) -> bool:
    """Rewrite the generated tables of ``path``; True when the file changed."""
    target = Path(path)
    old = target.read_text(encoding="utf-8")
    new = render(old, required)
    if new == old:
        return False
    target.write_text(new, encoding="utf-8")
    return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=REGENERATE,
        description="Rewrite the tables generated from the code (settings, metrics, command "
        "line) in the documentation. Without PATH: every file that holds one ("
        + ", ".join(HOMES)
        + "), relative to the current directory (the repository root).",
    )
    parser.add_argument("paths", nargs="*", metavar="PATH", help="files to update instead")
    parser.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 when a table is stale"
    )
    args = parser.parse_args(argv)
    targets: list[tuple[Path, tuple[str, ...]]] = (
        [(Path(path), ()) for path in args.paths]
        if args.paths
        else [(Path(path), names) for path, names in HOMES.items()]
    )
    stale = False
    for path, required in targets:
        try:
            text = path.read_text(encoding="utf-8")
            fresh = render(text, required)
        except OSError as exc:
            print(f"error: cannot read {path}: {exc.strerror}", file=sys.stderr)
            return 2
        except DocsError as exc:
            print(f"error: {path}: {exc}", file=sys.stderr)
            return 2
        if args.check:
            if fresh != text:
                print(f"{path}: the generated tables are stale; run {REGENERATE}", file=sys.stderr)
                stale = True
            else:
                print(f"{path}: the generated tables are up to date")
            continue
        if fresh != text:
            path.write_text(fresh, encoding="utf-8")
        print(f"{path}: {'tables updated' if fresh != text else 'already up to date'}")
    return 1 if stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
