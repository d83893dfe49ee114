"""The command line of :mod:`shared.operator`: one ``argparse`` sub-command per operator action."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from shared.deploy import cli as deploy
from shared.errors import ConfigError, TransientError
from shared.ledger import RunStatus
from shared.operator import approvals, rollouts, start, views
from shared.runtime import Runtime, get_runtime

Handler = Callable[[argparse.Namespace, Runtime], int]
Commands = Any  # argparse's sub-parsers action (its class is private)

#: How long one ledger read may take before the command says the ledger did not answer.
LEDGER_SECONDS = 15.0
MAX_LIMIT = 1000
#: Runs scanned for ids resembling an unknown one.
_SUGGESTION_SCAN = 200


class OperatorError(Exception):
    """A request the command cannot serve (an unknown run id): the message is for the operator."""

    exit_code = 2


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=False, default=str))


# -- runs ------------------------------------------------------------------------------------------------


def _limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_LIMIT}")
    return value


def _runs(args: argparse.Namespace, runtime: Runtime) -> int:
    status = RunStatus(args.status) if args.status else None
    runs = runtime.ledger.list_runs(status=status, limit=args.limit, timeout=LEDGER_SECONDS)
    now = runtime.clock()
    if args.json:
        _print_json([views.run_json(run, now) for run in runs])
    else:
        print("\n".join(views.runs_table(runs, now)))
    return 0


def register_runs(commands: Commands) -> None:
    parser = commands.add_parser("runs", help="the latest runs, one per line (newest first)")
    parser.add_argument("--limit", type=_limit, default=20, help=f"how many (1..{MAX_LIMIT}, default 20)")
    parser.add_argument(
        "--status",
        type=str.upper,
        choices=[status.value for status in RunStatus],
        help="only runs with this status",
    )
    parser.add_argument("--json", action="store_true", help="a JSON array instead of a table")
    parser.set_defaults(handler=_runs)


# -- status ----------------------------------------------------------------------------------------------


def _status(args: argparse.Namespace, runtime: Runtime) -> int:
    run = runtime.ledger.get_run(args.run_id, timeout=LEDGER_SECONDS)
    if run is None:
        raise OperatorError(_unknown_run(args.run_id, runtime))
    now = runtime.clock()
    if args.html:
        from shared.operator.html import status_page, write_page  # only this option draws pages

        try:
            where = write_page(args.html, status_page(run, now))
        except OSError as error:
            raise OperatorError(f"cannot write {args.html}: {error.strerror or error}") from error
        if where:
            print(f"wrote the status page of {run.run_id} to {where}")
        return 0
    if args.json:
        _print_json(views.status_json(run, now))
    else:
        print("\n".join(views.status_lines(run, now)))
    return 0


def _unknown_run(run_id: str, runtime: Runtime) -> str:
    message = f"no run {run_id!r} in the ledger"
    needle = run_id.strip().lower()
    if needle:
        recent = runtime.ledger.list_runs(limit=_SUGGESTION_SCAN, timeout=LEDGER_SECONDS)
        similar = [run.run_id for run in recent if needle in run.run_id][:5]
        if similar:
            return f"{message}; did you mean: {', '.join(similar)}"
    return f"{message} (`python -m shared.operator runs` lists the latest)"


def register_status(commands: Commands) -> None:
    parser = commands.add_parser("status", help="one run's chain: every step with timings and outcome")
    parser.add_argument("run_id", help="the run id (see `runs`)")
    parser.add_argument("--json", action="store_true", help="JSON instead of text, every detail included")
    parser.add_argument(
        "--html",
        metavar="FILE",
        help="write one self-contained HTML page (timeline, rollout charts, steps) to FILE ('-': stdout)",
    )
    parser.set_defaults(handler=_status)


#: Every sub-command, in the order ``--help`` lists them.
COMMANDS: tuple[Callable[[Commands], None], ...] = (
    register_runs,
    register_status,
    approvals.register_approve,
    approvals.register_reject,
    rollouts.register_commands,
    start.register_start,
    deploy.register,
)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="python -m shared.operator",
        description="What the pipeline did, from the run ledger (Firestore; PIPELINE_CONFIG for the config).",
    )
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in COMMANDS:
        register(commands)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; the runtime is the one in use (tests: ``shared.runtime.use``), else production's."""
    args = parser().parse_args(argv)
    if getattr(args, "standalone", None) is not None:  # deploy: reads files only, needs no ledger
        code: int = args.standalone(args)
        return code
    handler: Handler = args.handler
    try:
        runtime = get_runtime()
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # no credentials, no project: say what to set
        print(
            f"error: cannot open the ledger ({type(error).__name__}: {error}); for the local stack run "
            '`eval "$(python -m emulators env)"` first, for Google Cloud set GOOGLE_CLOUD_PROJECT and '
            "application default credentials",
            file=sys.stderr,
        )
        return 2
    try:
        return handler(args, runtime)
    except OperatorError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except TransientError as error:
        print(f"error: the ledger did not answer: {error}", file=sys.stderr)
        return 1
