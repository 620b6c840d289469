"""The `partnermatch` command: load, import, export and inspect the data; serve the API.

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
from typing import TYPE_CHECKING, Any

from data.errors import NotFound

if TYPE_CHECKING:  # imported where used, so `partnermatch --help` answers in well under a second
    from tqdm import tqdm

    from data.settings import StorageSettings
    from data.store import Store
    from service.state import ServiceState

EXIT_USER_ERROR = 2
DEMO_SCHOOLS = 5000
# The real school directories, beside the repository (shared/data/real), used by `demo` when present.
REAL_DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
# Errors a user can fix (input, ids, files, database address; sqlalchemy's ArgumentError is added
# in main, which imports it only when a verb runs); anything else is a bug.
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, NotFound, OSError)

Handler = Callable[[argparse.Namespace], int]


def storage_settings(args: argparse.Namespace) -> StorageSettings:
    """Settings from the environment, overridden by --data-dir / --database-url."""
    from data.settings import StorageSettings

    overrides: dict[str, Any] = {}
    if getattr(args, "data_dir", None) is not None:
        overrides["data_dir"] = args.data_dir
    if getattr(args, "database_url", None) is not None:
        overrides["database_url"] = args.database_url
    return StorageSettings(**overrides)


def open_store(args: argparse.Namespace) -> Store:
    from data.store import Store

    settings = storage_settings(args)
    warn_if_new_store(settings)
    return Store.from_settings(settings)


def warn_if_new_store(settings: StorageSettings) -> None:
    """Say so before a new, empty store is made in the default place (./var under whatever folder
    the command runs from), which is rarely meant outside the repository: a silently created empty
    store looks like lost data. A folder given with --data-dir or the environment is meant."""
    if settings.database_url is not None or "data_dir" in settings.model_fields_set:
        return
    database = settings.data_dir / "partnermatch.db"
    if not database.exists():
        print(
            f"partnermatch: no store at {database.resolve()}: creating a new, empty one "
            "(give --data-dir or PARTNERMATCH_DATA_DIR to use another)",
            file=sys.stderr,
        )


def _progress(total: int, what: str) -> tqdm:
    """A progress bar on stderr, shown only when stderr is a terminal."""
    from tqdm import tqdm

    return tqdm(total=total, desc=what, unit=what.split()[-1], disable=None, file=sys.stderr)


def country_name(code: str) -> str:
    from data.taxonomies import country_name as name

    return name(code)


# --------------------------------------------------------------------------- generate


def _add_generate(verbs: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = verbs.add_parser(
        "generate", parents=[common], help="generate a synthetic world of schools and partnerships into the store"
    )
    parser.add_argument("--n", type=_positive_int, default=1000, help="number of schools (default 1000)")
    parser.add_argument("--seed", type=int, default=7, help="random seed; the same seed gives the same world")
    parser.add_argument("--real-dir", type=Path, default=None, help="folder of real school directories to draw from")
    parser.add_argument("--replace", action="store_true", help="delete every school and partnership first")
    parser.add_argument("--process", choices=["affinity", "programmes"], default="affinity", help="partnership process")
    parser.set_defaults(handler=_generate)


def _generate(args: argparse.Namespace) -> int:
    from data.generator import PROCESSES, generate_world  # written alongside; imported only when asked for

    if args.real_dir is not None and not args.real_dir.is_dir():
        raise FileNotFoundError(f"--real-dir: no folder {str(args.real_dir)!r}")
    world = generate_world(n_schools=args.n, seed=args.seed, real_dir=args.real_dir, process=PROCESSES[args.process]())
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
    parser = verbs.add_parser(
        "export", parents=[common], help="export schools, partnerships or a round's pairs to CSV, XLSX or JSON Lines"
    )
    parser.add_argument("kind", choices=["schools", "partnerships", "round"])
    parser.add_argument("file", type=Path)
    parser.add_argument("--round", dest="round_id", help="the round to export (kind round)")
    parser.add_argument(
        "--format", choices=["csv", "jsonl", "xlsx"], help="file format (default: from the file name); CSV has a BOM"
    )
    parser.set_defaults(handler=_export)


def _export(args: argparse.Namespace) -> int:
    from data.io import export_partnerships, export_round, export_schools

    if args.kind == "round" and not args.round_id:
        print("error: --round: give the id of the round to export", file=sys.stderr)
        return 2
    with open_store(args) as store:
        if args.kind == "round":
            count = export_round(store, args.round_id, args.file, args.format)
        else:
            exporter = export_schools if args.kind == "schools" else export_partnerships
            count = exporter(store, args.file, args.format)
    print(f"wrote {count} {'pairs' if args.kind == 'round' else args.kind} to {args.file}")
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


# --------------------------------------------------------------------------- serve / demo


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def open_service(args: argparse.Namespace, *, progress: bool = True) -> ServiceState:
    """The service state on the store and data dir the options name (index not loaded yet)."""
    from embeddings import EmbeddingSettings
    from service.settings import ServiceSettings
    from service.state import ServiceState

    overrides = {name: getattr(args, name) for name in ("host", "port") if getattr(args, name, None) is not None}
    return ServiceState.open(
        storage_settings(args), ServiceSettings(**overrides), embedding=EmbeddingSettings(show_progress=progress)
    )


def _add_server_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1, or PARTNERMATCH_HOST)")
    parser.add_argument("--port", type=int, help="port to listen on (default 8000, or PARTNERMATCH_PORT)")


def _add_serve(verbs: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = verbs.add_parser(
        "serve",
        parents=[common],
        help="serve the API; one process answers at once while it loads or builds the index (/readyz shows how far)",
    )
    _add_server_options(parser)
    parser.add_argument(
        "--workers",
        type=_positive_int,
        default=1,
        help="worker processes sharing the port, each following the store's change log (default 1)",
    )
    parser.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    """Serve in this process, answering at once while the index is loaded or built in the
    background, or in `--workers` processes on one port (service.workers: a socket of its own
    each): then the index is loaded or built (and saved) here first, so each worker only loads it.
    Round jobs a stopped server left unfinished are marked failed, since nothing runs them any more."""
    import os

    from service.rounds import INTERRUPTED
    from service.workers import serve_workers

    state = open_service(args)
    try:
        if interrupted := state.store.fail_unfinished_round_jobs(INTERRUPTED):
            _say(f"{interrupted} round job(s) left unfinished by the last run marked failed")
        if args.workers == 1:
            _run(state)
            return 0
        state.start(report=_say)
    finally:
        state.close()
    storage = storage_settings(args)
    os.environ["PARTNERMATCH_DATA_DIR"] = str(storage.data_dir.resolve())  # the workers read their settings
    if storage.database_url is not None:
        os.environ["PARTNERMATCH_DATABASE_URL"] = storage.database_url
    settings = state.settings
    _say(f"serving on http://{settings.host}:{settings.port} with {args.workers} worker processes")
    return serve_workers("service.app:app", settings.host, settings.port, args.workers, report=_say)


def _run(state: ServiceState) -> None:
    """Serve until interrupted (the caller then closes the state, which saves the index). An index
    not loaded yet is loaded or built meanwhile, its progress printed here and shown by /readyz."""
    import uvicorn

    from service.app import create_app

    if not state.ready:
        state.start_in_background(report=_say)
    uvicorn.run(
        create_app(state),
        host=state.settings.host,
        port=state.settings.port,
        log_level="info",
        access_log=False,  # the app logs one JSON line per request (service.metrics)
    )


def _add_demo(verbs: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = verbs.add_parser(
        "demo",
        parents=[common],
        help="load a demo world if the store is empty, print a staff key, serve (at once, while the index builds)",
        description=(
            f"An empty store gets a generated world of {DEMO_SCHOOLS} schools, built on the real school "
            f"directories when {REAL_DATA_DIR} exists. Encoding the profiles takes a few minutes on two cores "
            "the first time (the server answers meanwhile; /readyz and the staff page show how far); they are "
            "cached after that."
        ),
    )
    _add_server_options(parser)
    parser.add_argument("--n", type=_positive_int, default=DEMO_SCHOOLS, help=f"schools (default {DEMO_SCHOOLS})")
    parser.add_argument("--seed", type=int, default=7, help="random seed of the demo world")
    parser.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    from service.auth import Role, create_key

    state = open_service(args)
    try:
        store = state.store
        if store.count_schools(active=None) == 0:
            from data.generator import generate_world

            real_dir = REAL_DATA_DIR if REAL_DATA_DIR.is_dir() else None
            _say(
                f"generating a world of {args.n} schools (seed {args.seed})"
                + (f" on the real directories in {real_dir}" if real_dir else "")
            )
            world = generate_world(args.n, seed=args.seed, real_dir=real_dir)
            with _progress(len(world.schools), "writing schools") as bar:
                store.upsert_schools(world.schools, progress=bar.update)
            store.upsert_partnerships(world.partnerships)
            _say(f"stored {len(world.schools)} schools and {len(world.partnerships)} partnerships")
        staff_keys = [k for k in store.list_api_keys() if k.role == Role.STAFF and k.active]
        if staff_keys:
            shown = ", ".join(f"{k.prefix}... ({k.id})" for k in staff_keys)
            print(f"Staff key(s) already made: {shown}. Make another: partnermatch keys create --role staff")
        else:
            made = create_key(store, Role.STAFF, name="demo")
            print(f"Staff API key (shown once, keep it): {made.key}")
        base = f"http://{state.settings.host}:{state.settings.port}"
        print(
            f"Serving on {base}  (API docs: {base}/docs; send the key as X-API-Key; staff page: {base}/staff)",
            flush=True,
        )
        if not state.ready:
            print(f"The index is loaded or built meanwhile: {base}/readyz says how far (503 until ready).", flush=True)
        _run(state)
    finally:
        state.close()
    return 0


# --------------------------------------------------------------------------- keys


def _add_keys(verbs: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = verbs.add_parser("keys", parents=[common], help="create, list and revoke API keys")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser("create", parents=[common], help="make a key and print it once")
    create.add_argument("--role", required=True, choices=["staff", "portal", "school"])
    create.add_argument("--school", help="the school a school key belongs to")
    create.add_argument("--name", help="what the key is for, e.g. 'portal production'")
    create.set_defaults(handler=_keys_create)
    listing = actions.add_parser("list", parents=[common], help="list keys (prefixes only; keys are not kept)")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(handler=_keys_list)
    revoke = actions.add_parser("revoke", parents=[common], help="revoke a key by its id")
    revoke.add_argument("id", help="key id, as `keys list` shows it (key-...)")
    revoke.set_defaults(handler=_keys_revoke)


def _keys_create(args: argparse.Namespace) -> int:
    from service.auth import create_key

    with open_store(args) as store:
        made = create_key(store, args.role, school_id=args.school, name=args.name)
    record = made.record
    owner = f" for school {record.school_id}" if record.school_id else ""
    print(f"created {record.role} key {record.id}{owner}; the key is shown only now:", file=sys.stderr)
    print(made.key)
    return 0


def _keys_list(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        keys = store.list_api_keys()
    rows = [
        {
            "id": k.id,
            "prefix": k.prefix,
            "role": k.role,
            "school_id": k.school_id,
            "name": k.name,
            "created_at": k.created_at.isoformat(timespec="seconds"),
            "revoked_at": k.revoked_at.isoformat(timespec="seconds") if k.revoked_at else None,
        }
        for k in keys
    ]
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    if not rows:
        print("no API keys; make one with: partnermatch keys create --role staff")
    for row in rows:
        status = f"revoked {row['revoked_at']}" if row["revoked_at"] else "active"
        extra = "  ".join(str(row[f]) for f in ("school_id", "name") if row[f])
        print(f"{row['id']}  {row['prefix']}...  {row['role']:<6}  {status:<8}  {row['created_at']}  {extra}".rstrip())
    return 0


def _keys_revoke(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        revoked = store.revoke_api_key(args.id)
    print(f"revoked {revoked.role} key {revoked.id} ({revoked.prefix}...)")
    return 0


# --------------------------------------------------------------------------- suggest / index


def _add_suggest(verbs: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = verbs.add_parser("suggest", parents=[common], help="print a school's suggested partners with reasons")
    parser.add_argument("school_id")
    parser.add_argument("--k", type=_positive_int, default=10, help="how many (default 10)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.set_defaults(handler=_suggest)


def _suggest(args: argparse.Namespace) -> int:
    state = open_service(args)
    try:
        state.start(report=_say)
        with state.reading() as matcher:
            if args.school_id not in matcher.schools:
                raise NotFound("school", args.school_id)
            result = matcher.suggest(args.school_id, args.k)
            names = {s.school_id: matcher.schools[s.school_id] for s in result.suggestions}
            source = matcher.schools[args.school_id]
    finally:
        state.close()
    if args.json:
        print(result.model_dump_json(indent=2))
    else:
        print(format_suggestions(source.display_name, source.country, result, names))
    return 0


def format_suggestions(name: str, country: str, result: Any, schools: dict[str, Any]) -> str:
    """A suggestion list as text: rank, school, scores, then its reasons."""
    lines = [f"Suggestions for {result.school_id} {name} ({country_name(country)})"]
    if not result.suggestions:
        lines.append("  none: every candidate broke a hard rule")
        lines.extend(f"  {e.candidates:>5} {e.text_en} ({e.rule})" for e in result.eliminated)
    for rank, suggestion in enumerate(result.suggestions, start=1):
        school = schools[suggestion.school_id]
        lines.append(
            f"{rank:>3}. {school.id}  {school.display_name} ({country_name(school.country)})  "
            f"score {suggestion.score:.3f}  fit {suggestion.fit_forward:.2f} / {suggestion.fit_backward:.2f}"
        )
        lines.extend(f"       - {reason.text_en}" for reason in suggestion.reasons)
    lines.extend(f"  hint: {hint}" for hint in result.hints)
    return "\n".join(lines)


def _add_index(verbs: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = verbs.add_parser("index", parents=[common], help="manage the saved vector index")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    rebuild = actions.add_parser(
        "rebuild", parents=[common], help="re-embed every profile (from the cache where possible) and save"
    )
    rebuild.set_defaults(handler=_index_rebuild)


def _index_rebuild(args: argparse.Namespace) -> int:
    state = open_service(args)
    try:
        state.rebuild(report=_say)
        sizes = state.index_size()
    finally:
        state.close()
    print(f"index rebuilt: {sum(sizes.values())} active schools at change seq {state.seq} in {state.index_dir}")
    return 0


# --------------------------------------------------------------------------- parser and main

VERBS: list[Callable[[argparse._SubParsersAction, argparse.ArgumentParser], None]] = [
    _add_generate,
    _add_import,
    _add_export,
    _add_stats,
    _add_serve,
    _add_demo,
    _add_keys,
    _add_suggest,
    _add_index,
    lambda verbs, common: _add_external(verbs, common, "evaluate", "add_evaluate_verb"),
    lambda verbs, common: _add_external(verbs, common, "sensitivity", "add_sensitivity_verb"),
    lambda verbs, common: _add_external(verbs, common, "train", "add_train_verb"),
]

# Verbs defined in evaluation/ (which loads the model, sklearn and matplotlib): their one-line help,
# so the verb list needs no import; the verb's own parser is built only when it is the one asked for.
EXTERNAL_HELP = {
    "evaluate": "measure match quality against baselines on held-out partnerships and write a report",
    "sensitivity": "sweep the rebalancing weights and plot recall@10 against exposure Gini@10",
    "train": "train the reciprocal ranker on the partnership history and save it beside the index",
}
_ASKED: list[str] = []


def _add_external(verbs: argparse._SubParsersAction, common: argparse.ArgumentParser, verb: str, adder: str) -> None:
    if verb in _ASKED:
        import evaluation.cli

        getattr(evaluation.cli, adder)(verbs, common)
    else:
        verbs.add_parser(verb, parents=[common], help=EXTERNAL_HELP[verb], add_help=False)


def _add_storage_options(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument("--data-dir", type=Path, default=default, help="folder for the SQLite file and the index")
    parser.add_argument("--database-url", default=default, help="SQLAlchemy URL, e.g. postgresql://user@host/db")


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; storage options are accepted before or after the verb. argv tells which verb is
    asked for, so only that one's heavy module is imported (all are, when argv is None)."""
    from importlib.metadata import PackageNotFoundError, version

    _ASKED[:] = list(EXTERNAL_HELP) if argv is None else [a for a in argv if a in EXTERNAL_HELP][:1]
    parser = argparse.ArgumentParser(prog="partnermatch", description=__doc__.split("\n")[0])
    try:
        installed = version("partnermatch")
    except PackageNotFoundError:
        installed = "unknown"
    parser.add_argument("--version", action="version", version=f"partnermatch {installed}")
    _add_storage_options(parser, None)
    # On the verbs the options default to "absent", so they don't undo one given before the verb.
    common = argparse.ArgumentParser(add_help=False)
    _add_storage_options(common, argparse.SUPPRESS)
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")
    for add in VERBS:
        add(verbs, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse has printed the usage error (or the help)
        return int(exc.code or 0)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return EXIT_USER_ERROR
    from sqlalchemy.exc import ArgumentError, OperationalError

    try:
        return handler(args)
    except OperationalError as exc:
        print(f"partnermatch: database error: {exc.orig or exc}".rstrip(), file=sys.stderr)
    except (*USER_ERRORS, ArgumentError) as exc:
        print(f"partnermatch: {_message(exc)}", file=sys.stderr)
    return EXIT_USER_ERROR


def _message(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {exc.strerror or exc}"
    return str(exc)


if __name__ == "__main__":
    sys.exit(main())
