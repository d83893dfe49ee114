"""``python -m shared.operator deploy plan|apply``: the project a configuration needs, reviewed then made.

``plan`` needs no stack and no credentials: it reads the configuration and the source tree only.
``apply`` runs the plan with ``gcloud`` (describe, then create or update; safe to re-run).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from shared.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent.parent


def load_plan(config_path: str | None) -> Any:
    from shared.config import load_config
    from shared.deploy.plan import build_plan
    from shared.deploy.wiring import check_wiring

    config = load_config(config_path)
    entries = check_wiring(config, ROOT)
    return build_plan(config, entries, ROOT, os.environ)


def _plan(args: argparse.Namespace) -> int:
    from shared.deploy import render

    try:
        plan = load_plan(args.config)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.format == "cloudbuild":
        output = render.cloudbuild(plan)
    elif args.format == "json":
        output = json.dumps(
            {
                "project": plan.project,
                "region": plan.region,
                "functions": [asdict(function) for function in plan.functions],
                "steps": [
                    {"kind": s.kind, "name": s.name, "command": s.create.render(), "why": s.why}
                    for s in plan.steps
                ],
                "notes": list(plan.notes),
            },
            indent=2,
        )
    else:
        output = render.text(plan)
    if args.output and args.output != "-":
        Path(args.output).write_text(output if output.endswith("\n") else output + "\n", encoding="utf-8")
        print(f"wrote {args.output}")
    else:
        sys.stdout.write(output if output.endswith("\n") else output + "\n")
    return 0


def _apply(args: argparse.Namespace) -> int:
    from shared.deploy import render
    from shared.deploy.apply import ApplyError, GcloudRunner, apply, changes

    try:
        plan = load_plan(args.config)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    runner = GcloudRunner(plan.project)
    print("\n".join(render.summary(plan)))
    try:
        if args.dry_run:
            for change in changes(plan, runner):
                print(f"{change.action:8} {change.step.key}")
            return 0
        generated = apply(plan, runner)
    except ApplyError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print("\n".join(render.after_apply(plan)))
    for variable, value in generated.items():
        print(f"#   {variable} (generated now, shown once): {value}")
    return 0


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "deploy", help="the Google Cloud project the configuration needs: plan, apply"
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    plan = actions.add_parser("plan", help="print the plan (no stack, no credentials needed)")
    plan.add_argument("--config", help="the configuration (default: $PIPELINE_CONFIG or pipeline.yaml)")
    plan.add_argument("--format", choices=("text", "json", "cloudbuild"), default="text")
    plan.add_argument("--output", "-o", help="write to this file instead of stdout")
    plan.set_defaults(standalone=_plan)
    run = actions.add_parser("apply", help="make the project match the plan (gcloud; safe to re-run)")
    run.add_argument("--config", help="the configuration (default: $PIPELINE_CONFIG or pipeline.yaml)")
    run.add_argument("--dry-run", action="store_true", help="describe only: what each step would do")
    run.set_defaults(standalone=_apply)
