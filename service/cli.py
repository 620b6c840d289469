"""The `partnermatch` command: load, import, export and inspect the data staff work with.

Each verb is one `_add_<verb>` function that adds its subparser and sets `handler`; a new verb
(serve, demo, keys, suggest, index, evaluate, round) is one more such function in VERBS.
User errors (bad files, unknown ids, an unreachable database) print one clear message to stderr
and exit with status 2; only a bug shows a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.exc import ArgumentError, OperationalError
from tqdm import tqdm

from data.errors import NotFound
from data.settings import StorageSettings
from data.store import Store
from data.taxonomies import country_name

EXIT_USER_ERROR = 2
# Errors a user can fix (input, ids, files, database address); anything else is a bug.
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, NotFound, OSError, ArgumentError)

Handler = Callable[[argparse.Namespace], int]


def storage_settings(args: argparse.Namespace) -> StorageSettings:
    """Settings from the environment, overridden by --data-dir / --database-url."""
    overrides: dict[str, Any] = {}
    if getattr(args, "data_dir", None) is not None:
        overrides["data_dir"] = args.data_dir
    if getattr(args, "database_url", None) is not None:
        overrides["database_url"] = args.database_url
    return StorageSettings(**overrides)


def open_store(args: argparse.Namespace) -> Store:
    return Store.from_settings(storage_settings(args))


def _progress(total: int, what: str) -> tqdm:
    """A progress bar on stderr, shown only when stderr is a terminal."""
    return tqdm(total=total, desc=what, unit=what.split()[-1], disable=None, file=sys.stderr)


# --------------------------------------------------------------------------- generate


def _add_generate(verbs: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = verbs.add_parser(
        "generate", parents=[common], help="generate a synthetic world of schools and partnerships into the store"
    )
    parser.add_argument("--n", type=_positive_int, default=1000, help="number of schools (default 1000)")
    parser.add_argument("--seed", type=int, default=7, help="random seed; the same seed gives the same world")
    parser.add_argument("--real-dir", type=Path, default=None, help="folder of real school directories to draw from")
    parser.add_argument("--replace", action="store_true", help="delete every school and partnership first")
    parser.set_defaults(handler=_generate)


def _generate(args: argparse.Namespace) -> int:
    from data.generator import generate_world  # written alongside; imported only when asked for

    if args.real_dir is not None and not args.real_dir.is_dir():
        raise FileNotFoundError(f"--real-dir: no folder {str(args.real_dir)!r}")
    world = generate_world(n_schools=args.n, seed=args.seed, real_dir=args.real_dir)
    with open_store(args) as store:
        if args.replace:
            store.clear()
        with _progress(len(world.schools), "writing schools") as bar:
            schools = store.upsert_schools(world.schools, progress=bar.update)
        partnerships = store.upsert_partnerships(world.partnerships)
    print(
        f"schools: {schools.created} created, {schools.updated} updated, {schools.unchanged} unchanged; "
        f"partnerships: {partnerships.created} created, {partnerships.updated} updated, "
        f"{partnerships.unchanged} unchanged"
    )
    return 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


# --------------------------------------------------------------------------- import / export


def _add_import(verbs: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = verbs.add_parser(
        "import",
        parents=[common],
        help="import schools or partnerships from CSV / JSON Lines (all or nothing)",
        description="A file with any bad row is rejected with every bad row listed, and nothing is written.",
    )
    parser.add_argument("kind", choices=["schools", "partnerships"])
    parser.add_argument("file", type=Path)
    parser.add_argument(
        "--mapping", help="column mapping: a YAML file, or a shipped one by name (tw_primary_schools, my_sjkc_schools)"
    )
    parser.add_argument("--format", choices=["csv", "jsonl"], help="file format (default: from the file name)")
    parser.set_defaults(handler=_import)


def _import(args: argparse.Namespace) -> int:
    from data.io import import_partnerships, import_schools

    if not args.file.is_file():
        raise FileNotFoundError(f"no file {str(args.file)!r}")
    importer = import_schools if args.kind == "schools" else import_partnerships
    with open_store(args) as store:
        report = importer(store, args.file, args.mapping, fmt=args.format, progress=True)
    print(report)
    return 0


def _add_export(verbs: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = verbs.add_parser("export", parents=[common], help="export schools or partnerships to CSV / JSON Lines")
    parser.add_argument("kind", choices=["schools", "partnerships"])
    parser.add_argument("file", type=Path)
    parser.add_argument("--format", choices=["csv", "jsonl"], help="file format (default: from the file name)")
    parser.set_defaults(handler=_export)


def _export(args: argparse.Namespace) -> int:
    from data.io import export_partnerships, export_schools

    exporter = export_schools if args.kind == "schools" else export_partnerships
    with open_store(args) as store:
        count = exporter(store, args.file, args.format)
    print(f"wrote {count} {args.kind} to {args.file}")
    return 0


# --------------------------------------------------------------------------- stats


def _add_stats(verbs: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = verbs.add_parser("stats", parents=[common], help="counts of schools and partnerships")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(handler=_stats)


def _stats(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        stats = store.stats()
    if args.json:
        print(json.dumps(stats, indent=2, ensure_ascii=False))
    else:
        print(format_stats(stats))
    return 0


def format_stats(stats: dict[str, Any]) -> str:
    """The stats as aligned text tables."""

    def country(code: str) -> str:
        try:
            return f"{code} {country_name(code)}"
        except KeyError:
            return code

    def pair(key: str) -> str:
        return " - ".join(country(code) for code in key.split("-"))

    sections: list[tuple[str, dict[str, int], Callable[[str], str]]] = [
        ("Active schools by country", stats["schools_by_country"], country),
        ("Active schools by level", stats["schools_by_level"], str),
        ("Active schools by remoteness", stats["schools_by_remoteness"], str),
        ("Active partnerships by country pair", stats["active_partnerships_by_country_pair"], pair),
    ]
    lines = [
        f"Schools: {stats['schools']} ({stats['active_schools']} active)",
        f"Partnerships: {stats['partnerships']} ({stats['active_partnerships']} active)",
    ]
    for title, counts, label in sections:
        lines.append("")
        lines.append(title)
        if not counts:
            lines.append("  (none)")
            continue
        labels = {key: label(key) for key in counts}
        width = max(len(text) for text in labels.values())
        lines.extend(f"  {labels[key]:<{width}}  {value:>7}" for key, value in counts.items())
    return "\n".join(lines)


# --------------------------------------------------------------------------- parser and main

VERBS: list[Callable[[argparse._SubParsersAction, argparse.ArgumentParser], None]] = [
    _add_generate,
    _add_import,
    _add_export,
    _add_stats,
]


def _add_storage_options(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument("--data-dir", type=Path, default=default, help="folder for the SQLite file and the index")
    parser.add_argument("--database-url", default=default, help="SQLAlchemy URL, e.g. postgresql://user@host/db")


def build_parser() -> argparse.ArgumentParser:
    """The parser; storage options are accepted before or after the verb."""
    parser = argparse.ArgumentParser(prog="partnermatch", description=__doc__.split("\n")[0])
    _add_storage_options(parser, None)
    # On the verbs the options default to "absent", so they don't undo one given before the verb.
    common = argparse.ArgumentParser(add_help=False)
    _add_storage_options(common, argparse.SUPPRESS)
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")
    for add in VERBS:
        add(verbs, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse has printed the usage error (or the help)
        return int(exc.code or 0)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return EXIT_USER_ERROR
    try:
        return handler(args)
    except OperationalError as exc:
        print(f"partnermatch: database error: {exc.orig or exc}".rstrip(), file=sys.stderr)
    except USER_ERRORS as exc:
        print(f"partnermatch: {_message(exc)}", file=sys.stderr)
    return EXIT_USER_ERROR


def _message(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {exc.strerror or exc}"
    return str(exc)


if __name__ == "__main__":
    sys.exit(main())
