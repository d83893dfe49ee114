"""Pure parts of the API emulators: substitutions, Dockerfile parsing, filters, routes, the image registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from emulators.apiserver.errors import ApiError
from emulators.apiserver.filtering import compile_filter
from emulators.apiserver.paging import page
from emulators.apiserver.routing import compile_template
from emulators.cloudbuild.substitutions import Substituter, SubstitutionError, builtin_values, validate_keys
from emulators.common.registry import (
    DockerfileError,
    LocalRegistry,
    RegistryError,
    parse_dockerfile,
    parse_reference,
)

pytestmark = pytest.mark.unit


def substituter(user: dict[str, str], loose: bool = False, **source: str) -> Substituter:
    return Substituter(builtin_values("proj", "bid", "global", user, source), user, loose)


def test_builtin_and_user_substitutions() -> None:
    subs = substituter({"_ENV": "prod"}, COMMIT_SHA="0123456789", BRANCH_NAME="main")
    text = subs.apply("$PROJECT_ID/${_ENV}/$_ENV:$SHORT_SHA-$BRANCH_NAME-$TAG_NAME-$$HOME-${BUILD_ID}")
    assert text == "proj/prod/prod:0123456-main--$HOME-bid"
    subs.check()


def test_unmatched_and_unused_substitutions_fail_unless_loose() -> None:
    missing = substituter({})
    assert missing.apply("x$_NOPE") == "x"
    with pytest.raises(SubstitutionError, match='"_NOPE" is not a valid built-in substitution'):
        missing.check()
    unused = substituter({"_USED": "1", "_SPARE": "2"})
    unused.apply("$_USED")
    with pytest.raises(SubstitutionError, match='key "_SPARE" in the substitution data is not matched'):
        unused.check()
    loose = substituter({"_SPARE": "2"}, loose=True)
    assert loose.apply("[$HOME]") == "[]"
    loose.check()


def test_substitution_keys() -> None:
    validate_keys({"_OK_1": "x", "COMMIT_SHA": "abc"})
    with pytest.raises(SubstitutionError):
        validate_keys({"lower": "x"})
    with pytest.raises(SubstitutionError):
        validate_keys({"PROJECT_ID": "other"})


def test_dockerfile_parsing() -> None:
    stages = parse_dockerfile(
        "# comment\nARG BASE=python:3.11\nFROM ${BASE} AS build\nARG APP=/srv\nWORKDIR $APP\nWORKDIR sub\n"
        'ENV A=1 B="two words"\nENV LEGACY value with spaces\nCOPY --chown=1:1 a.txt b/ ./\n'
        "RUN pip install \\\n"
        '    x\nENTRYPOINT ["python", "-m", "app"]\nCMD --port 8080\nEXPOSE 8080\nLABEL team=ml\n',
        build_args={"APP": "/opt/app"},
    )
    stage = stages[-1]
    assert stage.base == "python:3.11" and stage.name == "build"
    assert stage.workdir == "/opt/app/sub"
    assert stage.env == {"A": "1", "B": "two words", "LEGACY": "value with spaces"}
    assert stage.entrypoint == ["python", "-m", "app"]
    assert stage.cmd == ["/bin/sh", "-c", "--port 8080"]
    assert stage.copies[0].sources == ["a.txt", "b/"] and stage.copies[0].dest == "/opt/app/sub/"
    assert stage.skipped_run == ["pip install x"]
    assert stage.expose == ["8080"] and stage.labels == {"team": "ml"}


def test_dockerfile_errors_are_clear() -> None:
    with pytest.raises(DockerfileError, match="before FROM"):
        parse_dockerfile("WORKDIR /x\n")
    with pytest.raises(DockerfileError, match="URL"):
        parse_dockerfile("FROM x\nADD https://example.com/a.tgz /a\n")
    with pytest.raises(DockerfileError, match="unsupported instruction FROBNICATE"):
        parse_dockerfile("FROM x\nFROBNICATE\n")


def test_registry_build_resolve_tag_and_base_images(tmp_path: Path) -> None:
    registry = LocalRegistry(tmp_path / "registry")
    context = tmp_path / "ctx"
    (context / "pkg").mkdir(parents=True)
    (context / "pkg" / "main.py").write_text("print('hi')\n")
    (context / "pkg" / "skip.pyc").write_text("x")
    (context / ".dockerignore").write_text("**/*.pyc\n")
    (context / "Dockerfile").write_text(
        'FROM python:3.11\nWORKDIR /app\nCOPY pkg/ pkg/\nCMD ["python", "-m", "pkg.main"]\n'
    )
    image = registry.build(context, ["host:5000/team/app:v1"])
    assert image.digest.startswith("sha256:") and image.names == ["host:5000/team/app:v1"]
    assert (image.rootfs / "app" / "pkg" / "main.py").is_file()
    assert not (image.rootfs / "app" / "pkg" / "skip.pyc").exists()
    assert (
        registry.build(context, ["host:5000/team/app:v2"]).digest == image.digest
    )  # same content, same digest
    assert registry.resolve(f"host:5000/team/app@{image.digest}").digest == image.digest
    registry.tag("host:5000/team/app:v1", "other/app")
    assert registry.resolve("other/app:latest").digest == image.digest
    with pytest.raises(RegistryError, match="not in the local registry"):
        registry.resolve("host:5000/team/app:v9")
    child = tmp_path / "child"
    child.mkdir()
    (child / "extra.txt").write_text("more")
    (child / "Dockerfile").write_text("FROM other/app\nCOPY extra.txt .\nENV X=1\n")
    derived = registry.build(child, ["derived:1"])
    assert (
        derived.workdir == "/app"
        and derived.cmd == ["python", "-m", "pkg.main"]
        and derived.env == {"X": "1"}
    )
    assert (derived.rootfs / "app" / "pkg" / "main.py").is_file() and (
        derived.rootfs / "app" / "extra.txt"
    ).is_file()


def test_image_references() -> None:
    ref = parse_reference("localhost:5000/a/b:1.0")
    assert (ref.repository, ref.tag, ref.tagged) == ("localhost:5000/a/b", "1.0", "localhost:5000/a/b:1.0")
    assert parse_reference("a/b").tagged == "a/b:latest"
    with pytest.raises(RegistryError):
        parse_reference("a b")


def test_filters() -> None:
    resource = {
        "tags": ["trainer", "ci"],
        "status": "SUCCESS",
        "labels": {"run_id": "r-1"},
        "create_time": "2026-01-02T03:04:05Z",
        "display_name": "train-7",
    }

    def matches(text: str) -> bool:
        return compile_filter(text)(resource)

    assert matches('tags="trainer" AND status="SUCCESS"')
    assert matches('tags=("x" OR "ci")') and not matches('tags=("x" OR "y")')
    assert matches('labels.run_id="r-1"') and matches("labels:run_id") and not matches("labels.other:*")
    assert matches('create_time>"2026-01-01T00:00:00Z"') and not matches('createTime<"2026-01-01T00:00:00Z"')
    assert (
        matches('displayName="train-*"') and matches("NOT status=FAILURE") and not matches("-status=SUCCESS")
    )
    assert matches("status=FAILURE OR (tags=ci AND labels.run_id=r-1)")
    with pytest.raises(ApiError) as error:
        compile_filter("status=")
    assert error.value.code == "INVALID_ARGUMENT"


def test_route_templates() -> None:
    template = compile_template("/v1/{name=projects/*/locations/*/models/*}:listVersions")
    assert template.match("/v1/projects/p/locations/l/models/7:listVersions") == {
        "name": "projects/p/locations/l/models/7"
    }
    assert template.match("/v1/projects/p/locations/l/models/7") is None
    get = compile_template("/v1/{name=projects/*/locations/*/models/*}")
    assert get.match("/v1/projects/p/locations/l/models/7:listVersions") is None
    ops = compile_template("/v1/{name=operations/**}")
    assert ops.match("/v1/operations/build/p/abc") == {"name": "operations/build/p/abc"}
    assert compile_template("/v1/projects/{project_id}/builds/{id}:cancel").match(
        "/v1/projects/p/builds/b:cancel"
    ) == {
        "project_id": "p",
        "id": "b",
    }


def test_paging() -> None:
    first, token = page(list(range(5)), 2, "")
    second, token2 = page(list(range(5)), 2, token)
    third, token3 = page(list(range(5)), 2, token2)
    assert (first, second, third, token3) == ([0, 1], [2, 3], [4], "")
    with pytest.raises(ApiError):
        page([1], 1, "garbage!")
