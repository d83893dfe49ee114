"""``python -m emulators up | down | status | env | demo``: the local stack from the command line."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from emulators.common.proc import StackError
from emulators.stack import Stack
from shared.errors import ConfigError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emulators", description="the local emulator stack")
    parser.add_argument("--run-dir", type=Path, default=None, help="state and logs (default .run/)")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start everything; return once ready, leave it running")
    up.add_argument("--config", type=Path, default=None, help="pipeline config (default $PIPELINE_CONFIG)")
    up.add_argument("--project", default=None)
    up.add_argument(
        "--reconcile-every",
        type=float,
        default=None,
        metavar="SECONDS",
        help="seconds between reconcile ticks (default $RECONCILE_TICK_SECONDS or 2; 0: no ticks)",
    )
    commands.add_parser("down", help="stop every process of the stack, by PID")
    commands.add_parser("status", help="which components run, and where")
    commands.add_parser("env", help="print export lines for the stack's variables")
    commands.add_parser("demo", help="bring a fresh stack up, run the scenario, tear it down")
    args = parser.parse_args(argv)

    try:
        if args.command == "up":
            ticker = [] if args.reconcile_every is None else ["--every", str(args.reconcile_every)]
            Stack(
                args.run_dir, project=args.project, config_path=args.config, api_args={"ticker": ticker}
            ).up()
        elif args.command == "down":
            Stack(args.run_dir).down()
        elif args.command == "status":
            rows = Stack(args.run_dir).status()
            if not rows:
                print("no stack is running")
                return 3
            for name, alive, url in rows:
                print(f"{name:<12} {'running' if alive else 'STOPPED':<8} {url}")
            return 0 if all(alive for _, alive, _ in rows) else 1
        elif args.command == "env":
            for key, value in Stack(args.run_dir).env().items():
                print(f"export {key}={shlex.quote(value)}")
        elif args.command == "demo":
            from emulators.demo import run_demo

            return run_demo()
    except (StackError, ConfigError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
