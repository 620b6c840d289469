"""Import and export of schools and partnerships as CSV or JSON Lines.

Without a mapping, files are in partnermatch's own layout: one column (or JSON key) per field,
list fields in CSV written "a;b;c", an empty cell meaning "not given". With a column mapping
(YAML, see data/mappings/), a ministry directory is read in its own layout.

An import is all or nothing: every row is checked first, and a file with any bad row is
rejected with every bad row listed (line as in the file, field, reason) and nothing written.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import os
import re
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from io import TextIOWrapper
from pathlib import Path
from string import Formatter
from typing import Any, BinaryIO, Literal, TextIO, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from tqdm import tqdm

from data.errors import ImportRejected, RowError
from data.schema import Partnership, School, refused_text, string_values
from data.store import Store

MAPPINGS_DIR = Path(__file__).resolve().parent / "mappings"
LIST_SEPARATOR = ";"
Format = Literal["csv", "jsonl"]
_SUFFIX_FORMATS: dict[str, Format] = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
_TARGETS: dict[str, type[BaseModel]] = {"schools": School, "partnerships": Partnership}
_EXTRA = "\0extra"  # where csv puts values beyond the header
Source = str | Path | BinaryIO  # a file's path, or an open binary file such as an upload


@dataclass(frozen=True)
class ImportReport:
    source: str
    kind: str
    rows: int
    created: int
    updated: int
    unchanged: int

    def __str__(self) -> str:
        return (
            f"{self.source}: {self.rows} {self.kind} read, {self.created} created, "
            f"{self.updated} updated, {self.unchanged} unchanged"
        )


def detect_format(path: Path, fmt: str | None = None) -> Format:
    """The format asked for, else the one the file name says (.csv, .jsonl, .ndjson)."""
    chosen = fmt or _SUFFIX_FORMATS.get(path.suffix.lower())
    if chosen not in ("csv", "jsonl"):
        raise ValueError(
            f"format: cannot tell the format of {path.name!r}; name it .csv or .jsonl or give the format (csv, jsonl)"
        )
    return chosen


# --------------------------------------------------------------------------- column mappings


class RuleError(ValueError):
    """One mapped value that could not be made; becomes a RowError for the row it was on."""


class FieldRule(BaseModel):
    """How one field is made from a row. Exactly one source: column, value or template.
    Then, in this order: an empty source gives `default`; otherwise `case`, `replace`,
    `map` (exact values; anything not listed is an error) or `contains` (first key found in
    the text wins, else `default`), and last `type`."""

    model_config = ConfigDict(extra="forbid")

    column: str | None = Field(None, description="Source column whose text is the value")
    value: Any = Field(None, description="A constant: the same value on every row")
    template: str | None = Field(None, description='Text with {column} placeholders, e.g. "tw-{moe_code}"')
    case: Literal["title", "upper", "lower"] | None = None
    replace: dict[str, str] = Field(default_factory=dict, description="Substrings to replace, in order")
    map: dict[str, Any] | None = Field(None, description="Source value -> field value")
    contains: dict[str, Any] | None = Field(None, description="Substring -> field value; first match wins")
    type: Literal["int", "float", "list"] | None = None
    separator: str = Field(LIST_SEPARATOR, description="Between list items, for type: list")
    default: Any = Field(None, description="When the source is empty, or `contains` matches nothing")

    @model_validator(mode="after")
    def _one_source(self) -> FieldRule:
        given = [name for name in ("column", "value", "template") if name in self.model_fields_set]
        if len(given) != 1:
            raise ValueError(f"give exactly one of column, value, template (got {', '.join(given) or 'none'})")
        if self.map is not None and self.contains is not None:
            raise ValueError("give map or contains, not both")
        return self

    @property
    def columns(self) -> list[str]:
        """Source columns the rule reads."""
        if self.column is not None:
            return [self.column]
        if self.template is not None:
            return [name for _, name, _, _ in Formatter().parse(self.template) if name]
        return []

    def apply(self, row: dict[str, Any]) -> Any:
        if "value" in self.model_fields_set:
            return copy.deepcopy(self.value)
        raw = _text(row.get(self.column)) if self.column is not None else self._fill_template(row)
        if raw == "":
            return copy.deepcopy(self.default)
        if self.case == "title":
            raw = re.sub(r"[^\W\d_]+(?:'[^\W\d_]+)?", lambda m: m[0].capitalize(), raw.lower())
        elif self.case is not None:
            raw = raw.upper() if self.case == "upper" else raw.lower()
        for old, new in self.replace.items():
            raw = raw.replace(old, new)
        value: Any = raw
        if self.map is not None:
            if raw not in self.map:
                raise RuleError(f"{raw!r} is not one of {', '.join(map(repr, self.map))}")
            value = copy.deepcopy(self.map[raw])
        elif self.contains is not None:
            value = next((v for key, v in self.contains.items() if key in raw), self.default)
            value = copy.deepcopy(value)
        return self._convert(value)

    def _fill_template(self, row: dict[str, Any]) -> str:
        assert self.template is not None
        values = {name: _text(row.get(name)) for name in self.columns}
        if not any(values.values()):
            return ""
        return self.template.format_map(values)

    def _convert(self, value: Any) -> Any:
        if self.type is None or not isinstance(value, str):
            return value
        try:
            if self.type == "int":
                number = float(value)
                if not number.is_integer():
                    raise ValueError
                return int(number)
            if self.type == "float":
                return float(value)
        except ValueError:
            raise RuleError(f"{value!r} is not a{'n integer' if self.type == 'int' else ' number'}") from None
        return [item.strip() for item in value.split(self.separator) if item.strip()]


class ColumnMapping(BaseModel):
    """A directory's own layout -> School (or Partnership) fields. See data/mappings/*.yaml."""

    model_config = ConfigDict(extra="forbid")

    description: str = ""
    target: Literal["schools", "partnerships"] = "schools"
    encoding: str = Field("utf-8-sig", description="Text encoding of the file (utf-8-sig also reads a BOM)")
    delimiter: str = Field(",", min_length=1, max_length=1)
    fields: dict[str, FieldRule] = Field(min_length=1)
    defaults: dict[str, Any] = Field(
        default_factory=dict, description="Values for fields the directory lacks, documented in the file"
    )

    @model_validator(mode="after")
    def _known_fields(self) -> ColumnMapping:
        model = _TARGETS[self.target]
        for section in ("fields", "defaults"):
            unknown = sorted(set(getattr(self, section)) - set(model.model_fields))
            if unknown:
                raise ValueError(f"{section}: {', '.join(unknown)} not {model.__name__} field(s)")
        both = sorted(set(self.fields) & set(self.defaults))
        if both:
            raise ValueError(f"defaults: {', '.join(both)} also in fields; put default: inside the field rule")
        return self

    @property
    def columns(self) -> set[str]:
        return {column for rule in self.fields.values() for column in rule.columns}

    def record(self, row: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
        """The field values for one row, and {field: reason} for the ones that failed."""
        record = copy.deepcopy(self.defaults)
        failed: dict[str, str] = {}
        for field, rule in self.fields.items():
            try:
                value = rule.apply(row)
            except RuleError as exc:
                failed[field] = str(exc)
                continue
            if value is not None:
                record[field] = value
        return record, failed

    def describe(self, field: str) -> str:
        """A field as staff know it: with the column it comes from."""
        rule = self.fields.get(field)
        columns = rule.columns if rule else []
        return f"{field} (column {', '.join(columns)})" if columns else field


def shipped_mappings() -> list[str]:
    """Names of the mappings shipped in data/mappings."""
    return sorted(p.stem for p in MAPPINGS_DIR.glob("*.yaml"))


def shipped_mapping(name: str) -> ColumnMapping:
    """A shipped mapping by name only: never a path, so a remote caller cannot make the service
    read (or tell the existence of) any other file."""
    names = shipped_mappings()
    if name not in names:
        raise FileNotFoundError(f"mapping: {name!r} is not a shipped mapping (shipped mappings: {', '.join(names)})")
    return parse_mapping((MAPPINGS_DIR / f"{name}.yaml").read_text(encoding="utf-8"), f"mapping {name}")


def load_mapping(name_or_path: str | Path) -> ColumnMapping:
    """A mapping from a YAML file, or by the name of one shipped in data/mappings ("tw_primary_schools").
    For local users (the CLI); the API takes shipped_mapping names or an uploaded file only."""
    path = Path(name_or_path)
    if not path.is_file() and str(name_or_path) in shipped_mappings():
        return shipped_mapping(str(name_or_path))
    if not path.is_file():
        raise FileNotFoundError(
            f"mapping: no file {str(name_or_path)!r} (shipped mappings: {', '.join(shipped_mappings())})"
        )
    return parse_mapping(path.read_text(encoding="utf-8"), f"mapping {path}")


def parse_mapping(text: str, source: str) -> ColumnMapping:
    """A mapping from YAML text; errors start with `source` (a file name the caller knows)."""
    try:
        data = yaml.safe_load(text)
        return ColumnMapping.model_validate(data)
    except yaml.YAMLError as exc:
        raise ValueError(f"{source}: not valid YAML: {exc}") from None
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"{source}: {problems}") from None


# --------------------------------------------------------------------------- reading rows


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _read_rows(
    source: Source, name: str, fmt: Format, encoding: str, delimiter: str
) -> tuple[list[str] | None, list[tuple[int, dict[str, Any]]], list[RowError]]:
    """(CSV header or None, [(line where the row starts, row)], errors of the lines that could not
    be read as a row). Malformed lines are reported, not raised, so every bad row is listed."""
    try:
        with _opened(source, encoding) as handle:
            if fmt == "jsonl":
                return None, *_jsonl_rows(handle)
            return _csv_rows(handle, name, delimiter)
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"{name}: not {encoding} text (byte {exc.start}); give the file's encoding in a mapping (encoding: big5)"
        ) from None


@contextmanager
def _opened(source: Source, encoding: str) -> Iterator[TextIO]:
    """A file by path, or an uploaded file object (read from its start, left open)."""
    if isinstance(source, str | Path):
        with Path(source).open(encoding=encoding, newline="") as handle:
            yield handle
        return
    source.seek(0)
    text = TextIOWrapper(source, encoding=encoding, newline="")
    try:
        yield text
    finally:
        text.detach()


def _jsonl_rows(handle: TextIO) -> tuple[list[tuple[int, dict[str, Any]]], list[RowError]]:
    rows: list[tuple[int, dict[str, Any]]] = []
    errors: list[RowError] = []
    for line_number, line in enumerate(handle, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            errors.append(RowError(line_number, "(line)", f"not JSON: {exc.msg}"))
            continue
        if not isinstance(row, dict):
            errors.append(RowError(line_number, "(line)", "not a JSON object"))
            continue
        refused = _refused_cells(line_number, row)
        if refused:
            errors.extend(refused)
            continue
        rows.append((line_number, row))
    return rows, errors


def _csv_rows(
    handle: TextIO, name: str, delimiter: str
) -> tuple[list[str], list[tuple[int, dict[str, Any]]], list[RowError]]:
    reader = csv.DictReader(handle, delimiter=delimiter, restkey=_EXTRA)
    header = list(reader.fieldnames or [])
    duplicates = sorted({c for c in header if header.count(c) > 1})
    refused = _refused_cells(1, {c: c for c in header})
    if duplicates or refused:
        raise ImportRejected(name, [RowError(1, c, "column appears twice in the header") for c in duplicates] + refused)
    rows: list[tuple[int, dict[str, Any]]] = []
    errors: list[RowError] = []
    start = reader.line_num + 1
    for row in reader:
        extra = row.pop(_EXTRA, None)
        bad = _refused_cells(start, row)
        if extra is not None:
            errors.append(RowError(start, "(line)", f"{len(extra)} more values than columns"))
        elif bad:
            errors.extend(bad)
        elif any(_text(v) for v in row.values()):
            rows.append((start, row))
        start = reader.line_num + 1
    return header, rows, errors


def _refused_cells(line: int, row: dict[str, Any]) -> list[RowError]:
    """A RowError for each cell (or JSON value, at any depth) with text no database stores."""
    found: list[RowError] = []
    for path, text in string_values(row):
        reason = refused_text(text)
        if reason:
            found.append(RowError(line, path or "(line)", reason))
    return found


def _own_layout(row: dict[str, Any], model: type[BaseModel]) -> dict[str, Any]:
    """A row in partnermatch's own layout as field values: empty cells left out, lists split."""
    record: dict[str, Any] = {}
    for field, value in row.items():
        if isinstance(value, str):
            value = value.strip()
            if value == "":
                continue
            info = model.model_fields.get(field)
            if info is not None and get_origin(info.annotation) is list:
                value = [item.strip() for item in value.split(LIST_SEPARATOR) if item.strip()]
        record[field] = value
    return record


def _validation_errors(
    line: int, exc: ValidationError, skip: set[str], describe: Callable[[str], str]
) -> list[RowError]:
    """pydantic's errors as RowErrors. Model-level checks say "field: reason"; split that back."""
    found: list[RowError] = []
    for error in exc.errors():
        loc = [str(part) for part in error["loc"]]
        field = loc[0] if loc else ""
        reason = error["msg"].removeprefix("Value error, ")
        if not field:
            head, sep, rest = reason.partition(": ")
            named = sep and re.fullmatch(r"[a-z_]+(?: and [a-z_]+)?", head)
            field, reason = (head, rest) if named else ("(row)", reason)
        elif error["type"] != "missing" and isinstance(error.get("input"), str | int | float):
            reason = f"{reason} (got {error['input']!r})"
        if len(loc) > 1:
            reason = f"item {'.'.join(loc[1:])}: {reason}"
        if field not in skip:
            found.append(RowError(line, describe(field), reason))
    return found


def _parse(
    source: Source, name: str, model: type[BaseModel], mapping: ColumnMapping | None, fmt: str | None, progress: bool
) -> tuple[list[Any], list[int]]:
    """Every row of the file as a model instance with its line, or ImportRejected listing every bad row."""
    file_format = detect_format(Path(name), fmt)
    encoding = mapping.encoding if mapping else "utf-8-sig"
    header, rows, errors = _read_rows(source, name, file_format, encoding, mapping.delimiter if mapping else ",")
    if header is not None:
        expected = mapping.columns if mapping else set(model.model_fields)
        if mapping:
            bad = [RowError(1, c, "column missing from the header") for c in sorted(expected - set(header))]
        else:
            bad = [RowError(1, c, f"not a {model.__name__} field") for c in header if c not in expected]
        if bad:
            raise ImportRejected(name, bad)
    items: list[Any] = []
    lines: list[int] = []
    seen: dict[str, int] = {}  # school id -> first line
    describe = mapping.describe if mapping else str
    for line, row in tqdm(rows, desc=f"checking {Path(name).name}", unit="row", disable=None if progress else True):
        if mapping:
            record, failed = mapping.record(row)
        else:
            record, failed = _own_layout(row, model), {}
        errors.extend(RowError(line, describe(field), reason) for field, reason in failed.items())
        try:
            item = model.model_validate(record)
        except ValidationError as exc:
            errors.extend(_validation_errors(line, exc, set(failed), describe))
            continue
        if failed:
            continue
        if isinstance(item, School):
            if item.id in seen:
                errors.append(RowError(line, describe("id"), f"{item.id!r} is already on line {seen[item.id]}"))
                continue
            seen[item.id] = line
        items.append(item)
        lines.append(line)
    if errors:
        raise ImportRejected(name, sorted(errors, key=lambda e: e.line))
    return items, lines


def _mapping(mapping: ColumnMapping | str | Path | None, target: str) -> ColumnMapping | None:
    if mapping is None:
        return None
    loaded = mapping if isinstance(mapping, ColumnMapping) else load_mapping(mapping)
    if loaded.target != target:
        raise ValueError(f"mapping: made for {loaded.target}, not {target}")
    return loaded


def import_schools(
    store: Store,
    path: Source,
    mapping: ColumnMapping | str | Path | None = None,
    *,
    fmt: str | None = None,
    progress: bool = False,
    name: str | None = None,
) -> ImportReport:
    """Create or update every school in the file, in one transaction. `path` may be an open binary
    file (an upload), then `name` is the file name errors and the format detection use."""
    name = name or str(path)
    schools, _ = _parse(path, name, School, _mapping(mapping, "schools"), fmt, progress)
    with tqdm(total=len(schools), desc="writing", unit="school", disable=None if progress else True) as bar:
        counts = store.upsert_schools(schools, progress=bar.update)
    return ImportReport(name, "schools", len(schools), counts.created, counts.updated, counts.unchanged)


def import_partnerships(
    store: Store,
    path: str | Path,
    mapping: ColumnMapping | str | Path | None = None,
    *,
    fmt: str | None = None,
    progress: bool = False,
) -> ImportReport:
    """Add or update every partnership in the file, in one transaction. Unknown schools and
    partnerships within one country are reported with the file's line numbers."""
    path = Path(path)
    items, lines = _parse(path, str(path), Partnership, _mapping(mapping, "partnerships"), fmt, progress)
    try:
        counts = store.upsert_partnerships(items)
    except ImportRejected as exc:
        raise ImportRejected(str(path), [RowError(lines[e.line - 1], e.field, e.reason) for e in exc.errors]) from None
    return ImportReport(str(path), "partnerships", len(items), counts.created, counts.updated, counts.unchanged)


# --------------------------------------------------------------------------- export
#
# Exports are for people as much as programs: CSV starts with a UTF-8 byte order mark, so Excel
# in Taiwan opens Chinese names as Chinese (not as Big5 mojibake), and XLSX (openpyxl) keeps
# numbers as numbers. JSON Lines stays for programs. A file is written beside its target and
# renamed, so a failed export leaves no half file.

ExportFormat = Literal["csv", "jsonl", "xlsx"]
EXPORT_FORMATS: tuple[ExportFormat, ...] = ("csv", "jsonl", "xlsx")
CSV_ENCODING = "utf-8-sig"
MEDIA_TYPES: dict[ExportFormat, str] = {
    "csv": "text/csv; charset=utf-8",
    "jsonl": "application/x-ndjson",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def export_format(path: Path, fmt: str | None = None) -> ExportFormat:
    """The export format asked for, else the one the file name says (.csv, .jsonl, .ndjson, .xlsx)."""
    chosen = fmt or ("xlsx" if path.suffix.lower() == ".xlsx" else _SUFFIX_FORMATS.get(path.suffix.lower()))
    if chosen not in EXPORT_FORMATS:
        raise ValueError(
            f"format: cannot tell the format of {path.name!r}; name it .csv, .jsonl or .xlsx or give the format"
        )
    return chosen  # type: ignore[return-value]


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return LIST_SEPARATOR.join(str(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _sheet_cell(value: Any) -> Any:
    """Numbers stay numbers in a spreadsheet; everything else is the CSV text."""
    return value if isinstance(value, int | float) and not isinstance(value, bool) else _csv_cell(value)


def write_table(handle: BinaryIO, fmt: ExportFormat, header: list[str], rows: Iterable[dict[str, Any]]) -> int:
    """Rows (dicts keyed by header) to a binary stream as CSV with a BOM, JSON Lines or XLSX."""
    count = 0
    if fmt == "xlsx":
        from openpyxl import Workbook  # loaded only when a spreadsheet is asked for

        book = Workbook(write_only=True)
        sheet = book.create_sheet("export")
        sheet.append(header)
        for row in rows:
            sheet.append([_sheet_cell(row.get(column)) for column in header])
            count += 1
        book.save(handle)
        return count
    text = io.TextIOWrapper(handle, encoding=CSV_ENCODING if fmt == "csv" else "utf-8", newline="")
    writer = csv.DictWriter(text, fieldnames=header) if fmt == "csv" else None
    if writer is not None:
        writer.writeheader()
    for row in rows:
        if writer is not None:
            writer.writerow({k: _csv_cell(row.get(k)) for k in header})
        else:
            text.write(json.dumps(row, ensure_ascii=False) + "\n")
        count += 1
    text.flush()
    text.detach()
    return count


def table_bytes(fmt: ExportFormat, header: list[str], rows: Iterable[dict[str, Any]]) -> bytes:
    """The same table in memory, for a download."""
    buffer = io.BytesIO()
    write_table(buffer, fmt, header, rows)
    return buffer.getvalue()


def _write(path: Path, fmt: ExportFormat, header: list[str], rows: Iterable[dict[str, Any]]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    try:
        with partial.open("wb") as handle:
            count = write_table(handle, fmt, header, rows)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return count


def _records(records: Iterable[BaseModel]) -> Iterator[dict[str, Any]]:
    for record in records:
        yield record.model_dump(mode="json")


def export_rows(
    store: Store, kind: str, *, round_id: str | None = None, active: bool | None = None
) -> tuple[list[str], Iterable[dict[str, Any]]]:
    """The header and rows of an export: schools (all, or active/inactive), partnerships, or a round's pairs."""
    if kind == "schools":
        return list(School.model_fields), _records(store.iter_schools(active=active))
    if kind == "partnerships":
        return list(Partnership.model_fields), _records(store.list_partnerships())
    if kind == "round":
        if not round_id:
            raise ValueError("round_id: give the round to export")
        return ROUND_COLUMNS, round_rows(store, round_id)
    raise ValueError(f"kind: {kind!r} is not one of schools, partnerships, round")


def export_schools(store: Store, path: str | Path, fmt: str | None = None, *, active: bool | None = None) -> int:
    """Every school (or only active/inactive ones), private fields included: this is for staff."""
    path = Path(path)
    return _write(path, export_format(path, fmt), *export_rows(store, "schools", active=active))


def export_partnerships(store: Store, path: str | Path, fmt: str | None = None) -> int:
    path = Path(path)
    return _write(path, export_format(path, fmt), *export_rows(store, "partnerships"))


ROUND_COLUMNS = [
    "school_a",
    "name_a",
    "country_a",
    "school_b",
    "name_b",
    "country_b",
    "score",
    "fit_a",
    "fit_b",
    "modes",
    "sdgs",
    "reasons",
]


def round_rows(store: Store, round_id: str, exclude: Collection[tuple[str, str]] = ()) -> list[dict[str, Any]]:
    """A stored round's proposed pairs (less the excluded ones, either order), one row each, with
    both schools' names and the reasons in English."""
    stored = store.get_round(round_id)
    dropped = {tuple(sorted(pair)) for pair in exclude}
    pairs = [
        p
        for p in (stored.result or {}).get("pairs", [])
        if tuple(sorted((p["school_a"], p["school_b"]))) not in dropped
    ]
    names = store.get_schools({s for p in pairs for s in (p["school_a"], p["school_b"])})
    rows = []
    for pair in pairs:
        a, b = names.get(pair["school_a"]), names.get(pair["school_b"])
        rows.append(
            {
                "school_a": pair["school_a"],
                "name_a": a.display_name if a else None,
                "country_a": a.country if a else None,
                "school_b": pair["school_b"],
                "name_b": b.display_name if b else None,
                "country_b": b.country if b else None,
                "score": pair["score"],
                "fit_a": pair["fit_a"],
                "fit_b": pair["fit_b"],
                "modes": pair.get("modes", []),
                "sdgs": pair.get("sdgs", []),
                "reasons": [r["text_en"] for r in pair.get("reasons", [])],
            }
        )
    return rows


def export_round(store: Store, round_id: str, path: str | Path, fmt: str | None = None) -> int:
    """A round's proposed pairs, for staff to review or share before accepting."""
    path = Path(path)
    return _write(path, export_format(path, fmt), *export_rows(store, "round", round_id=round_id))
