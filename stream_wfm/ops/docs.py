"""Operator documentation generated from the code: the settings and metrics tables.

``python -m stream_wfm.ops.docs`` rewrites the tables between the markers of
README.md in place; ``--check`` only reports (exit 1) when they are stale.

* :func:`settings_table` reads :class:`~stream_wfm.settings.Settings`: one row
  per field with its environment variable, default, description and allowed
  values (``Literal`` choices, numeric bounds).
* :func:`metrics_table` reads a fresh :class:`~stream_wfm.ops.metrics.Metrics`
  on its own registry: one row per metric family with the names a query uses
  (``_total`` for counters, ``_bucket``/``_sum``/``_count`` for histograms,
  ``_info`` for info), its type, labels and help text.
"""

from __future__ import annotations

import argparse
import sys
import typing
from collections.abc import Sequence
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
    "METRICS_MARKERS",
    "MISSING",
    "SETTINGS_MARKERS",
    "DocsError",
    "main",
    "metrics_table",
    "render_readme",
    "settings_table",
    "update_readme",
]

#: Shown for a setting without a description (and for "no default").
MISSING: Final = "—"
SETTINGS_MARKERS: Final = ("<!-- settings-table:start -->", "<!-- settings-table:end -->")
METRICS_MARKERS: Final = ("<!-- metrics-table:start -->", "<!-- metrics-table:end -->")
REGENERATE: Final = "python -m stream_wfm.ops.docs"


class DocsError(StreamWfmError):
    """The README cannot be updated (markers missing or out of order)."""


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


# --- README ----------------------------------------------------------------------------------


def _replace_between(text: str, markers: tuple[str, str], body: str) -> str:
    start, end = markers
    i, j = text.find(start), text.find(end)
    if i < 0 or j < 0:
        missing = start if i < 0 else end
        raise DocsError(f"no {missing} marker in the README")
    if j < i:
        raise DocsError(f"{end} comes before {start} in the README")
    if text.count(start) > 1 or text.count(end) > 1:
        raise DocsError(f"{start} or {end} appears more than once in the README")
    return f"{text[: i + len(start)]}\n{body}\n{text[j:]}"


def render_readme(text: str) -> str:
    """``text`` with both generated tables replaced (raises :class:`DocsError`)."""
    text = _replace_between(text, SETTINGS_MARKERS, settings_table())
    return _replace_between(text, METRICS_MARKERS, metrics_table())


def update_readme(path: Path | str) -> bool:
    """Rewrite the generated tables of ``path``; True when the file changed."""
    readme = Path(path)
    old = readme.read_text(encoding="utf-8")
    new = render_readme(old)
    if new == old:
        return False
    readme.write_text(new, encoding="utf-8")
    return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=REGENERATE,
        description="Rewrite the settings and metrics tables of README.md from the code.",
    )
    parser.add_argument("path", nargs="?", default="README.md", help="default: README.md")
    parser.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 when the tables are stale"
    )
    args = parser.parse_args(argv)
    path = Path(args.path)
    try:
        text = path.read_text(encoding="utf-8")
        fresh = render_readme(text)
    except OSError as exc:
        print(f"error: cannot read {path}: {exc.strerror}", file=sys.stderr)
        return 2
    except DocsError as exc:
        print(f"error: {path}: {exc}", file=sys.stderr)
        return 2
    if args.check:
        if fresh != text:
            print(f"{path}: the generated tables are stale; run {REGENERATE}", file=sys.stderr)
            return 1
        print(f"{path}: the generated tables are up to date")
        return 0
    changed = update_readme(path)
    print(f"{path}: {'tables updated' if changed else 'already up to date'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
