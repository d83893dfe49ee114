"""``promote|rollback|pause|resume SERVICE [--by WHO]`` and ``rollout SERVICE [--json]``.

The commands do not move traffic themselves: each records the operator's command for the service's active
rollout (``shared.chain.rollout.command``) and runs one tick of that service at once, so the rollout engine
acts on it exactly as it would on the next reconcile tick (same steps, events and notifications; never
sleeping). ``rollback`` skips the analysis and still notifies; ``promote`` skips the remaining steps.
``rollout SERVICE`` shows the current (or last) rollout and the traffic the service serves now.
"""

from __future__ import annotations

import argparse
import getpass
import json
from typing import Any

from shared.errors import InvalidInput
from shared.rollout.machine import CommandAction, Rollout
from shared.runtime import Runtime

#: How long reading the service's traffic may take.
CALL_SECONDS = 15.0


def _act(args: argparse.Namespace, runtime: Runtime) -> int:
    from shared import deadline as deadlines
    from shared.chain import rollout
    from shared.operator.cli import OperatorError  # cli imports this module

    try:
        with deadlines.bounded(deadlines.Deadline(60.0)):
            after, what = rollout.command(runtime, args.service, CommandAction(args.action), args.by)
    except InvalidInput as error:
        raise OperatorError("; ".join(error.problems) or str(error)) from error
    print(f"{args.action} {args.service} (run {after.run_id}) by {args.by}: {what or 'recorded'}")
    print("\n".join(_lines(after)))
    return 0


def _show(args: argparse.Namespace, runtime: Runtime) -> int:
    from shared.chain import rollout
    from shared.operator.cli import OperatorError

    try:
        rollout.require_service(runtime, args.service)
    except InvalidInput as error:
        raise OperatorError("; ".join(error.problems)) from error
    current = rollout.read_lease(runtime, args.service).rollout
    service = runtime.ports.deployments.get_service(args.service, timeout=CALL_SECONDS)
    serving = service.serving() if service is not None else []
    if args.json:
        body: dict[str, Any] = {
            "rollout": current.to_json() if current is not None else None,
            "serving": [{"revision": name, "percent": percent} for name, percent in serving],
            "url": service.uri if service is not None else None,
        }
        print(json.dumps(body, indent=2))
        return 0
    if current is None:
        print(f"{args.service}: no rollout yet")
    else:
        print("\n".join(_lines(current)))
    if service is None:
        print("  service: does not exist yet (the first approved candidate creates it)")
    else:
        split = ", ".join(f"{name} {percent}%" for name, percent in serving) or "nothing ready"
        print(f"  serving now: {split}  ({service.uri})")
    return 0


def _lines(current: Rollout) -> list[str]:
    step = f" step {current.step}" if current.step >= 0 else ""
    lines = [
        f"{current.service}: {current.phase.value}{step} — run {current.run_id}, "
        f"{current.model} v{current.version} ({current.strategy})",
        f"  candidate: {current.candidate}",
        f"  stable:    {current.stable or '(none: first deploy)'}",
        f"  started:   {current.started_at.isoformat()}",
    ]
    if current.reason:
        lines.append(f"  reason:    {current.reason}")
    return lines


def register_commands(commands: Any) -> None:
    """``promote``, ``rollback``, ``pause``, ``resume`` and ``rollout``."""
    helps = {
        CommandAction.PROMOTE: "promote the service's candidate now (skips the remaining steps)",
        CommandAction.ROLLBACK: "roll the service back to its stable revision now (skips the analysis)",
        CommandAction.PAUSE: "hold the service's rollout where it is",
        CommandAction.RESUME: "go on with a paused rollout (with a fresh analysis window)",
    }
    for action, text in helps.items():
        parser = commands.add_parser(action.value, help=text)
        parser.add_argument("service", help="the Cloud Run service (spec.services[].name)")
        parser.add_argument("--by", default=_whoami(), help="who asks (default: the login name)")
        parser.set_defaults(handler=_act, action=action.value)
    show = commands.add_parser("rollout", help="the service's current (or last) rollout and its traffic")
    show.add_argument("service", help="the Cloud Run service (spec.services[].name)")
    show.add_argument("--json", action="store_true", help="JSON instead of text")
    show.set_defaults(handler=_show)


def _whoami() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return "operator"
