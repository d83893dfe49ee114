"""Validation of a Service's spec as the Cloud Run Admin API v2 does it (INVALID_ARGUMENT naming the field),
plus what the emulator cannot run (UNIMPLEMENTED): sidecars, volumes, Secret Manager values."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from emulators.apiserver.errors import ApiError, invalid
from emulators.run.model import BY_REVISION, LATEST, REVISION_NAME, TAG, ServiceEntry


def validate_template(template: Any, service_short: str) -> None:
    """A revision template the emulator can run, else INVALID_ARGUMENT (or UNIMPLEMENTED)."""
    if len(template.containers) == 0:
        raise invalid("spec.template.containers: at least one container is required.")
    if len(template.containers) > 1:
        raise ApiError(
            "UNIMPLEMENTED", "Multiple containers (sidecars) are not supported by the Cloud Run emulator."
        )
    container = template.containers[0]
    if not container.image:
        raise invalid("spec.template.containers[0].image: an image is required.")
    if len(template.volumes) or len(container.volume_mounts):
        raise ApiError("UNIMPLEMENTED", "Volumes are not supported by the Cloud Run emulator.")
    for variable in container.env:
        if not variable.name:
            raise invalid("spec.template.containers[0].env: every variable needs a name.")
        if variable.HasField("value_source"):
            raise ApiError(
                "UNIMPLEMENTED",
                f"Environment variable {variable.name} uses a Secret Manager value_source, which the "
                "Cloud Run emulator does not support.",
            )
        if variable.name == "PORT" or variable.name.startswith("K_"):
            raise invalid(f"spec.template.containers[0].env: {variable.name} is reserved and cannot be set.")
    if template.revision:
        if not template.revision.startswith(f"{service_short}-"):
            raise invalid(
                f"spec.template.revision: revision name {template.revision!r} must start with the "
                f"service name and a hyphen ({service_short!r}-)."
            )
        if not REVISION_NAME.fullmatch(template.revision):
            raise invalid(
                f"spec.template.revision: {template.revision!r} is not a valid name (lowercase letters, "
                "digits and hyphens, at most 63 characters)."
            )


def validate_traffic(
    traffic: Any,
    entry: ServiceEntry | None,
    creating: str | None,
    short: str,
    owner_of: Callable[[str], str | None],
) -> None:
    """A traffic split as the API accepts it: percents summing to 100, unique tags, known revisions (of
    ``entry``, or ``creating``, the one the request makes); ``owner_of`` names another service's revision."""
    if len(traffic) == 0:
        return
    total = 0
    tags: set[str] = set()
    for index, target in enumerate(traffic):
        kind = target.type_ or (BY_REVISION if target.revision else LATEST)
        if target.percent < 0 or target.percent > 100:
            raise invalid(f"spec.traffic[{index}].percent must be between 0 and 100, got {target.percent}.")
        total += target.percent
        if kind == LATEST and target.revision:
            raise invalid(
                f"spec.traffic[{index}]: a target of type LATEST must not name a revision "
                f"({target.revision!r})."
            )
        if kind == BY_REVISION:
            if not target.revision:
                raise invalid(f"spec.traffic[{index}]: a target of type REVISION must name a revision.")
            known = entry is not None and target.revision in entry.revisions
            if not known and target.revision != creating:
                owner = owner_of(target.revision)
                if owner is not None:
                    raise invalid(
                        f"spec.traffic[{index}]: revision {target.revision!r} belongs to service "
                        f"{owner!r}, not to {short!r}."
                    )
                raise invalid(f"spec.traffic[{index}]: revision {target.revision!r} does not exist.")
        if target.tag:
            if not TAG.fullmatch(target.tag):
                raise invalid(
                    f"spec.traffic[{index}].tag: {target.tag!r} is not a valid tag (lowercase letters, "
                    "digits and hyphens, starting with a letter)."
                )
            if target.tag in tags:
                raise invalid(
                    f"spec.traffic: tag {target.tag!r} is used more than once; tags must be unique."
                )
            tags.add(target.tag)
    if total != 100:
        raise invalid(f"spec.traffic: the traffic percents must sum to 100, but they sum to {total}.")
