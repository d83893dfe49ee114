"""Cloud Build substitutions, applied the way Cloud Build applies them.

- Built-ins: ``$PROJECT_ID``, ``$PROJECT_NUMBER``, ``$BUILD_ID``, ``$LOCATION``, ``$COMMIT_SHA``,
  ``$SHORT_SHA``, ``$REVISION_ID``, ``$REPO_NAME``, ``$REPO_FULL_NAME``, ``$BRANCH_NAME``, ``$TAG_NAME``,
  ``$REF_NAME``,
  ``$TRIGGER_NAME``, ``$TRIGGER_BUILD_CONFIG_PATH``, ``$SERVICE_ACCOUNT_EMAIL``, ``$SERVICE_ACCOUNT``. A
  built-in without a value (``$TAG_NAME`` of a build that is not from a tag) becomes the empty string.
- User substitutions: keys ``_[A-Z0-9_]+``; manual builds may also set the source built-ins (``COMMIT_SHA``,
  ``BRANCH_NAME``, ...), as ``gcloud builds submit --substitutions`` does.
- Forms ``$NAME`` and ``${NAME}``; ``$$`` is a literal ``$``.
- Unless ``options.substitutionOption`` is ``ALLOW_LOOSE``: a template variable that is neither a built-in
  nor a given user substitution is an error, and so is a user substitution that no template uses.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

BUILTINS = frozenset(
    {
        "PROJECT_ID",
        "PROJECT_NUMBER",
        "BUILD_ID",
        "LOCATION",
        "COMMIT_SHA",
        "SHORT_SHA",
        "REVISION_ID",
        "REPO_NAME",
        "REPO_FULL_NAME",
        "BRANCH_NAME",
        "TAG_NAME",
        "REF_NAME",
        "TRIGGER_NAME",
        "TRIGGER_BUILD_CONFIG_PATH",
        "SERVICE_ACCOUNT_EMAIL",
        "SERVICE_ACCOUNT",
    }
)
# Built-ins a manually submitted build may set itself (they describe the source).
USER_SETTABLE_BUILTINS = frozenset(
    {
        "COMMIT_SHA",
        "SHORT_SHA",
        "REVISION_ID",
        "REPO_NAME",
        "REPO_FULL_NAME",
        "BRANCH_NAME",
        "TAG_NAME",
        "REF_NAME",
    }
)
_USER_KEY = re.compile(r"_[A-Z0-9_]+")
_REFERENCE = re.compile(r"\$\$|\$\{([A-Za-z0-9_]+)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


class SubstitutionError(ValueError):
    """A substitution problem, worded as Cloud Build words it."""


def validate_keys(substitutions: Mapping[str, str]) -> None:
    for key in substitutions:
        if not (_USER_KEY.fullmatch(key) or key in USER_SETTABLE_BUILTINS):
            raise SubstitutionError(
                f"invalid value for 'build.substitutions': substitution key {key!r} does not respect format "
                '"^_[A-Z0-9_]+$" and is not an overridable built-in substitution'
            )


def builtin_values(
    project_id: str,
    build_id: str,
    location: str,
    user: Mapping[str, str],
    source: Mapping[str, str] | None = None,
    project_number: str = "",
    service_account: str = "",
) -> dict[str, str]:
    """Values of the built-ins: source facts (commit, branch...), then the user's overrides of them."""
    values = {name: "" for name in BUILTINS}
    values.update(
        PROJECT_ID=project_id,
        PROJECT_NUMBER=project_number,
        BUILD_ID=build_id,
        LOCATION=location,
        SERVICE_ACCOUNT=service_account,
        SERVICE_ACCOUNT_EMAIL=service_account.rsplit("/", 1)[-1],
    )
    values.update(source or {})
    values.update({key: value for key, value in user.items() if key in USER_SETTABLE_BUILTINS})
    if values["COMMIT_SHA"] and not values["SHORT_SHA"]:
        values["SHORT_SHA"] = values["COMMIT_SHA"][:7]
    if values["COMMIT_SHA"] and not values["REVISION_ID"]:
        values["REVISION_ID"] = values["COMMIT_SHA"]
    if not values["REF_NAME"]:
        values["REF_NAME"] = values["BRANCH_NAME"] or values["TAG_NAME"]
    return values


class Substituter:
    """Applies one build's substitutions to its templates and remembers what was used and what was unknown."""

    def __init__(self, builtins: Mapping[str, str], user: Mapping[str, str], loose: bool) -> None:
        self.builtins = dict(builtins)
        self.user = {key: value for key, value in user.items() if _USER_KEY.fullmatch(key)}
        self.loose = loose
        self.used: set[str] = set()
        self.unknown: list[str] = []

    def apply(self, text: str) -> str:
        def replace(found: re.Match[str]) -> str:
            if found.group(0) == "$$":
                return "$"
            name = found.group(1) or found.group(2)
            if name in self.user:
                self.used.add(name)
                return self.user[name]
            if name in self.builtins:
                return self.builtins[name]
            if name not in self.unknown:
                self.unknown.append(name)
            return ""

        return _REFERENCE.sub(replace, text)

    def apply_all(self, texts: Iterable[str]) -> list[str]:
        return [self.apply(text) for text in texts]

    def check(self) -> None:
        """Raise for an unmatched substitution (unless ALLOW_LOOSE), worded as Cloud Build does."""
        if self.loose:
            return
        if self.unknown:
            raise SubstitutionError(
                "invalid value for 'build.substitutions': key in the template "
                f'"{self.unknown[0]}" is not a valid built-in substitution'
            )
        unused = sorted(set(self.user) - self.used)
        if unused:
            raise SubstitutionError(
                "invalid value for 'build.substitutions': key "
                f'"{unused[0]}" in the substitution data is not matched in the template'
            )
