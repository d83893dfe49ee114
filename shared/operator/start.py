"""``start SERVICE [--version V] [--image IMG] [--strategy S] [--by WHO]``: roll a version out by hand.

For what no event starts: re-running a rollout, trying the champion on another image, or running one rollout
under another strategy than the service's (``--strategy blue_green|shadow|ab|canary``, e.g. a shadow
comparison before an important change). The command does not deploy anything itself: it starts a run (cause
``manual``) whose one step publishes the rollout request contract on the rollout requests topic, so
``start_rollout`` and the reconcile ticks carry it out like any approved candidate (lease, supersede,
analysis, events, notifications). The version defaults to the model's ``champion``, the image to the
model's configured serving image.
"""

from __future__ import annotations

import argparse
import json
import uuid
from typing import Any

from shared.runtime import Runtime

#: How long one registry, ledger or Pub/Sub call may take.
CALL_SECONDS = 15.0
STEP = "rollout:requested"


def _start(args: argparse.Namespace, runtime: Runtime) -> int:
    from shared.chain.contracts import ROLLOUT_REQUESTED, RolloutRequested
    from shared.chain.rollout import require_service
    from shared.errors import InvalidInput
    from shared.operator.cli import OperatorError
    from shared.rolloutconfig import Strategy
    from shared.steps import Effect, Emit, Step, StepContext

    try:
        spec = require_service(runtime, args.service)
    except InvalidInput as error:
        raise OperatorError("; ".join(error.problems)) from error
    strategy = Strategy(args.strategy) if args.strategy else spec.strategy
    refused = spec.problems_for(strategy)
    if refused:
        raise OperatorError(f"{spec.name} cannot run a {strategy.value} rollout: {'; '.join(refused)}")
    version = runtime.ports.registry.get_version(spec.model, args.version, timeout=CALL_SECONDS)
    if version is None:
        raise OperatorError(f"model {spec.model} has no version {args.version!r} in the registry")
    model = next((item for item in runtime.config.chain.models if item.name == spec.model), None)
    image = args.image or (model.serving_image if model is not None else "")
    if not image:
        raise OperatorError(f"no image: pass --image (model {spec.model} names no servingImage)")
    run_id = args.run_id or f"manual-{uuid.uuid4().hex[:12]}"
    request = RolloutRequested(
        service=spec.name,
        model=spec.model,
        version=version.version_id,
        version_resource=version.resource_name,
        artifact_uri=version.artifact_uri,
        image=image,
        cause="manual",
        approved_by=args.by,
        nonce=f"manual-{run_id}",
        strategy=args.strategy or "",
    )

    def effect(_context: StepContext) -> Effect:
        emit = Emit(ROLLOUT_REQUESTED, request.to_json(), ordering_key=spec.name)
        return Effect({**request.to_json(), "strategy": strategy.value}, (emit,))

    result = runtime.steps().run(
        Step(
            key=f"manual-rollout/{run_id}",
            payload=request.to_json(),
            effect=effect,
            name=STEP,
            run_id=run_id,
            cause={"cause": "manual", "by": args.by, "service": spec.name, "strategy": strategy.value},
        )
    )
    if result.error:
        raise OperatorError(f"the rollout request was not published: {result.error}")
    print(
        json.dumps(
            {
                "run_id": run_id,
                "service": spec.name,
                "version": version.version_id,
                "image": image,
                "strategy": strategy.value,
                "outcome": result.outcome.value,
            },
            indent=2,
        )
    )
    return 0


def register_start(commands: Any) -> None:
    from shared.operator.rollouts import _whoami

    parser = commands.add_parser(
        "start", help="roll a model version out on a service by hand (any strategy; a new run)"
    )
    parser.add_argument("service", help="the Cloud Run service (spec.services[].name)")
    parser.add_argument("--version", default="champion", help="version id or alias (default: champion)")
    parser.add_argument("--image", default="", help="serving image (default: the model's servingImage)")
    parser.add_argument(
        "--strategy",
        choices=("canary", "blue_green", "shadow", "ab"),
        default="",
        help="this rollout's strategy (default: the service's)",
    )
    parser.add_argument("--by", default=_whoami(), help="who asks (default: the login name)")
    parser.add_argument("--run-id", default="", help="the run id to use (default: manual-<random>)")
    parser.set_defaults(handler=_start)
