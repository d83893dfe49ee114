"""Push routing: which images a push touches, or why it starts nothing — conservative when unsure."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from shared import events
from shared.ingest.routing import (
    EXAMPLE_PATHS,
    MAX_PATHS,
    Decision,
    Ignored,
    ImageRule,
    Push,
    PushCommit,
    PushRules,
    changed_paths,
    is_zero_sha,
    matches,
    route,
)
from tests.unit.shared.ingest.payloads import sample_paths

pytestmark = pytest.mark.unit

OLD = "a" * 40
NEW = "b" * 40
ZERO = "0" * 40
TRAINER = ImageRule("trainer", ("trainer/**",), "trainer", repository="reg/mlops/trainer")
SERVER = ImageRule("server", ("server/**",), "server", repository="reg/mlops/server")
#: The shipped configuration: any repository, branch main, two images.
SHIPPED = PushRules(images=(TRAINER, SERVER))


def push(
    *paths: str,
    ref: str = "refs/heads/main",
    before: str = OLD,
    after: str = NEW,
    repository: str = "acme/ml",
    provider: str = "github",
    removed: tuple[str, ...] = (),
    commits: int = 1,
    **raw: Any,
) -> Push:
    """A push whose first commit modifies ``paths`` (and removes ``removed``); ``raw`` adds payload fields."""
    listed = [PushCommit(f"{i:040x}") for i in range(commits)]
    if listed:
        listed[0] = PushCommit(listed[0].id, modified=tuple(paths), removed=removed)
    raw_commits = [
        {"id": c.id, "added": [], "modified": list(c.modified), "removed": list(c.removed)} for c in listed
    ]
    return Push(
        provider=provider,
        repository=repository,
        ref=ref,
        before=before,
        after=after,
        clone_url="https://example.test/acme/ml.git",
        commits=tuple(listed),
        raw={"commits": raw_commits, **raw},
    )


def touched(decision: Decision) -> tuple[str, ...]:
    return decision.image_names


# -- the ordinary cases --------------------------------------------------------------------------------------


def test_a_change_under_trainer_touches_only_the_trainer() -> None:
    decision = route(push("trainer/trainer/train.py", "README.md"), SHIPPED)
    assert decision.ignored is None and decision.complete
    assert touched(decision) == ("trainer",)
    assert decision.images[0].paths == ("trainer/trainer/train.py",)
    assert "trainer/trainer/train.py" in decision.reason


def test_changes_under_both_folders_touch_both_images_in_rule_order() -> None:
    decision = route(push("server/server/app.py", "trainer/Dockerfile"), SHIPPED)
    assert touched(decision) == ("trainer", "server")


def test_a_push_touching_no_image_is_ignored_with_the_reason() -> None:
    decision = route(push("README.md", "docs/x.md"), SHIPPED)
    assert decision.ignored is Ignored.NO_IMAGE and decision.images == ()
    assert "2 changed paths" in decision.reason and "trainer/**" in decision.reason


def test_added_modified_and_removed_paths_all_count() -> None:
    commits = (
        PushCommit("1" * 40, added=("docs/a.md",)),
        PushCommit("2" * 40, removed=("server/old.py",)),
        PushCommit("3" * 40, modified=("trainer/requirements.txt",), added=("trainer/new.py",)),
    )
    base = push()
    many = Push(
        base.provider, base.repository, base.ref, base.before, base.after, base.clone_url, commits, {}
    )
    assert touched(route(many, SHIPPED)) == ("trainer", "server")
    assert changed_paths(many) == ["docs/a.md", "server/old.py", "trainer/new.py", "trainer/requirements.txt"]


def test_a_move_between_folders_touches_both_images() -> None:
    decision = route(push("server/shared.py", removed=("trainer/shared.py",)), SHIPPED)
    assert touched(decision) == ("trainer", "server")


def test_dotfiles_inside_a_folder_touch_its_image() -> None:
    assert touched(route(push("trainer/.dockerignore"), SHIPPED)) == ("trainer",)


def test_exclusions_and_alternatives_in_path_globs() -> None:
    trainer = ImageRule("trainer", ("{trainer,shared}/**", "!**/*.md"), "trainer", repository="r/t")
    rules = PushRules(images=(trainer,))
    assert route(push("trainer/README.md", "shared/notes.md"), rules).ignored is Ignored.NO_IMAGE
    assert touched(route(push("shared/lib.py"), rules)) == ("trainer",)


def test_globs_are_anchored_and_star_stays_in_one_segment() -> None:
    rules = PushRules(images=(ImageRule("cfg", ("*.yaml",), ".", repository="r/c"),))
    assert touched(route(push("pipeline.yaml"), rules)) == ("cfg",)
    assert route(push("trainer/pipeline.yaml"), rules).ignored is Ignored.NO_IMAGE
    assert route(push("xtrainer/a.py"), SHIPPED).ignored is Ignored.NO_IMAGE


def test_only_a_few_matching_paths_are_kept_to_explain() -> None:
    decision = route(push(*[f"trainer/f{i}.py" for i in range(50)]), SHIPPED)
    assert len(decision.images[0].paths) == EXAMPLE_PATHS


def test_decision_answers_as_json() -> None:
    body = route(push("trainer/a.py"), SHIPPED).to_json()
    assert json.loads(json.dumps(body)) == {
        "ignored": None,
        "reason": "touched: trainer (trainer/a.py)",
        "images": [{"name": "trainer", "paths": ["trainer/a.py"]}],
        "complete": True,
    }
    ignored = route(push(ref="refs/heads/dev"), SHIPPED).to_json()
    assert ignored["ignored"] == "ref_not_matched" and ignored["images"] == []


# -- ignored pushes ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "after, raw",
    [(ZERO, {}), ("0" * 64, {}), (NEW, {"deleted": True})],
    ids=["zeros", "sha256-zeros", "deleted-flag"],
)
def test_a_deletion_is_ignored(after: str, raw: dict[str, Any]) -> None:
    decision = route(push("trainer/a.py", after=after, **raw), SHIPPED)
    assert decision.ignored is Ignored.DELETION and decision.images == ()
    assert "deleted" in decision.reason


@pytest.mark.parametrize(
    "ref, why",
    [
        ("refs/heads/dev", "branch 'dev' matches none of ['main']"),
        ("refs/heads/feature/main", "branch 'feature/main'"),
        ("refs/heads/Main", "branch 'Main'"),  # branch names are case-sensitive in git
        ("refs/tags/v1.0", "tag 'v1.0' matches none of []"),
        ("refs/pull/7/head", "neither a branch nor a tag"),
        ("main", "neither a branch nor a tag"),
    ],
)
def test_refs_outside_the_rules_are_ignored(ref: str, why: str) -> None:
    decision = route(push("trainer/a.py", ref=ref), SHIPPED)
    assert decision.ignored is Ignored.REF
    assert why in decision.reason


def test_branch_and_tag_globs() -> None:
    rules = PushRules(images=(TRAINER,), branches=("main", "release/*"), tags=("v*",))
    assert touched(route(push("trainer/a.py", ref="refs/heads/release/1.2"), rules)) == ("trainer",)
    assert route(push("trainer/a.py", ref="refs/heads/release/1/2"), rules).ignored is Ignored.REF
    tagged = route(push("trainer/a.py", ref="refs/tags/v2.0.0"), rules)
    assert touched(tagged) == ("trainer",)
    assert matches("hotfix/a/b", ["hotfix/**"]) and not matches("hotfix/a/b", ["hotfix/*"])


def test_repository_globs_ignore_case_and_span_subgroups_with_double_star() -> None:
    rules = PushRules(images=(TRAINER,), repositories=("acme/*",))
    assert touched(route(push("trainer/a.py", repository="Acme/ML"), rules)) == ("trainer",)
    other = route(push("trainer/a.py", repository="other/ml"), rules)
    assert other.ignored is Ignored.REPOSITORY and "'other/ml'" in other.reason
    assert route(push("trainer/a.py", repository="acme/sub/ml"), rules).ignored is Ignored.REPOSITORY
    deep = PushRules(images=(TRAINER,), repositories=("acme/**",))
    assert touched(route(push("trainer/a.py", repository="acme/sub/ml"), deep)) == ("trainer",)
    assert touched(route(push("trainer/a.py", repository="anyone/any"), SHIPPED)) == ("trainer",)


def test_a_deletion_of_an_unwatched_branch_is_still_reported_as_a_deletion() -> None:
    assert route(push(ref="refs/heads/dev", after=ZERO), SHIPPED).ignored is Ignored.DELETION


# -- when the change list may be incomplete, every image is built --------------------------------------------


def assert_everything(decision: Decision, why: str) -> None:
    assert decision.ignored is None and not decision.complete
    assert touched(decision) == ("trainer", "server")
    assert all(image.paths == () for image in decision.images)
    assert why in decision.reason and "building every image (trainer, server)" in decision.reason


def test_a_new_branch_builds_every_image() -> None:
    assert_everything(route(push("README.md", before=ZERO), SHIPPED), "is new")
    assert_everything(route(push("README.md", before=""), SHIPPED), "is new")


def test_a_forced_push_builds_every_image() -> None:
    assert_everything(route(push("README.md", forced=True), SHIPPED), "forced push")


def test_gitlab_lists_20_commits_at_most() -> None:
    cut = route(push("README.md", provider="gitlab", commits=20, total_commits_count=31), SHIPPED)
    assert_everything(cut, "lists 20 of 31 commits")
    at_cap = route(push("README.md", provider="gitlab", commits=20, total_commits_count=20), SHIPPED)
    assert_everything(at_cap, "the most gitlab sends")
    under = route(push("README.md", provider="gitlab", commits=19, total_commits_count=19), SHIPPED)
    assert under.ignored is Ignored.NO_IMAGE


def test_github_webhooks_list_up_to_2048_commits() -> None:
    # The 20-commit cap is the events API's; a webhook listing 25 commits lists them all.
    assert route(push("README.md", commits=25), SHIPPED).ignored is Ignored.NO_IMAGE
    assert_everything(route(push("README.md", commits=2048), SHIPPED), "the most github sends")


def test_size_fields_saying_more_commits_were_pushed_build_every_image() -> None:
    assert_everything(route(push("README.md", commits=3, size=40), SHIPPED), "lists 3 of 40 commits (size)")
    assert_everything(route(push("README.md", commits=3, distinct_size=4), SHIPPED), "(distinct_size)")


def test_no_commit_listed_builds_every_image() -> None:
    assert_everything(route(push(commits=0), SHIPPED), "lists no commits")


def test_commits_without_file_lists_build_every_image() -> None:
    base = push("README.md")
    raw = {"commits": [{"id": NEW, "message": "from GitHub Actions' copy of the payload"}]}
    stripped = Push(
        base.provider, base.repository, base.ref, base.before, base.after, base.clone_url, base.commits, raw
    )
    assert_everything(route(stripped, SHIPPED), "no added/modified/removed")


def test_too_many_distinct_paths_build_every_image() -> None:
    many = push(*[f"docs/page{i}.md" for i in range(MAX_PATHS + 1)])
    assert_everything(route(many, SHIPPED), f"more than the {MAX_PATHS} matched")


def test_hints_of_the_wrong_type_are_not_trusted() -> None:
    odd = push("README.md", forced="true", total_commits_count="99", size=True, deleted="yes")
    assert route(odd, SHIPPED).ignored is Ignored.NO_IMAGE


# -- hostile paths -------------------------------------------------------------------------------------------


def test_dot_dot_segments_resolve_before_matching() -> None:
    decision = route(push("trainer/../server/app.py"), SHIPPED)
    assert touched(decision) == ("server",)
    assert decision.images[0].paths == ("server/app.py",)


@pytest.mark.parametrize(
    "path", ["../trainer/a.py", "/trainer/a.py", "trainer/../../x", "..", ".", "", "trainer/\x00a.py"]
)
def test_paths_leaving_the_repository_touch_nothing(path: str) -> None:
    decision = route(push(path), SHIPPED)
    assert decision.ignored is Ignored.NO_IMAGE
    assert "none of the 0 changed paths" in decision.reason


def test_unicode_paths_match_as_text() -> None:
    decision = route(push("trainer/données/échantillon.csv", "server/模型.py"), SHIPPED)
    assert touched(decision) == ("trainer", "server")
    unicode_rule = ImageRule("data", ("données/**",), ".", repository="r/d")
    assert touched(route(push("données/x.csv"), PushRules(images=(unicode_rule,)))) == ("data",)


def test_entries_that_are_not_text_are_skipped() -> None:
    weird = Push(
        "github",
        "acme/ml",
        "refs/heads/main",
        OLD,
        NEW,
        commits=(PushCommit("1" * 40, modified=(None, 42, b"trainer/a.py", "server/b.py")),),  # type: ignore[arg-type]
        raw={"commits": [{"modified": []}]},
    )
    assert touched(route(weird, SHIPPED)) == ("server",)


def test_matching_the_most_paths_stays_fast() -> None:
    paths = [f"pkg{i % 97}/module{i}.py" for i in range(MAX_PATHS - 1)] + ["server/app.py"]
    started = time.perf_counter()
    decision = route(push(*paths), SHIPPED)
    assert touched(decision) == ("server",)
    # ~0.2 s measured for two images; the webhook must answer in well under a second.
    assert time.perf_counter() - started < 3.0


# -- rules ---------------------------------------------------------------------------------------------------


def test_the_shipped_rules_are_valid() -> None:
    assert SHIPPED.problems() == []


def test_every_rule_problem_is_named() -> None:
    rules = PushRules(
        images=(
            ImageRule("Trainer", ("trainer/**",), "trainer"),
            ImageRule("server", ("!server/**",), "../outside", config="/abs/config.yaml"),
            ImageRule("server", (), "server", config=""),
        ),
        repositories=(),
        branches=(),
        tags=(),
    )
    problems = rules.problems("spec.push")
    assert any(p.startswith("spec.push.repositories:") for p in problems)
    assert any("give branches or tags" in p for p in problems)
    assert any(p.startswith("spec.push.images[0].name: 'Trainer'") for p in problems)
    assert any(p.startswith("spec.push.images[1].paths: at least one pattern") for p in problems)
    assert any(p.startswith("spec.push.images[1].context: '../outside'") for p in problems)
    assert any(p.startswith("spec.push.images[1].config: '/abs/config.yaml'") for p in problems)
    assert any(p.startswith("spec.push.images[2].name: 'server' is used twice") for p in problems)
    assert any(p.startswith("spec.push.images[2].paths") for p in problems)
    assert any(p.startswith("spec.push.images[2].config") for p in problems)
    assert PushRules(images=()).problems() == ["push.images: at least one image is required"]


@pytest.mark.parametrize("name", ["", "1st", "a_b", "a-", "é", "a" * 41, "a/b"])
def test_image_names_must_fit_tags_and_labels(name: str) -> None:
    assert ImageRule(name, ("x/**",), "x").problems("image")


def test_zero_shas() -> None:
    assert is_zero_sha(ZERO) and is_zero_sha("0" * 64)
    assert not is_zero_sha("0" * 39) and not is_zero_sha(NEW) and not is_zero_sha("")
    assert not is_zero_sha(None)  # type: ignore[arg-type]


# -- real payloads, through the project's event views --------------------------------------------------------


@pytest.mark.parametrize("path", sample_paths("github-push.json"))
def test_real_github_push_is_a_new_master_branch(path: Path) -> None:
    payload = json.loads(path.read_text())
    git_push = events.github_push(payload, delivery_id="d-1")
    # The shipped rules watch main: this push of master is ignored, saying so.
    decision = route(git_push, SHIPPED)
    assert decision.ignored is Ignored.REF and "'master'" in decision.reason
    # Watching master, it is a new branch (before = zeros): every image is built, whatever it changed.
    master = PushRules(images=(TRAINER, SERVER), branches=("master",))
    assert_everything(route(git_push, master), "'refs/heads/master' is new")
    # The same commit as an update of an existing branch changes only README.md: no image.
    updated = events.github_push({**payload, "before": OLD, "created": False}, delivery_id="d-2")
    assert route(updated, master).ignored is Ignored.NO_IMAGE


@pytest.mark.parametrize("path", sample_paths("github-push.json"))
def test_real_github_push_deleting_the_branch(path: Path) -> None:
    payload = json.loads(path.read_text()) | {
        "after": ZERO,
        "deleted": True,
        "commits": [],
        "head_commit": None,
    }
    decision = route(events.github_push(payload), PushRules(images=(TRAINER,), branches=("master",)))
    assert decision.ignored is Ignored.DELETION


def test_gitlab_push_through_the_event_view() -> None:
    payload = {
        "object_kind": "push",
        "event_name": "push",
        "before": OLD,
        "after": NEW,
        "ref": "refs/heads/main",
        "checkout_sha": NEW,
        "user_username": "jsmith",
        "project": {
            "path_with_namespace": "acme/platform/ml",
            "git_http_url": "https://gitlab.test/acme/ml.git",
        },
        "commits": [
            {
                "id": NEW,
                "message": "Tune the trainer",
                "author": {"name": "J Smith", "email": "j@example.test"},
                "added": [],
                "modified": ["trainer/trainer/train.py"],
                "removed": [],
            }
        ],
        "total_commits_count": 1,
    }
    decision = route(events.gitlab_push(payload), SHIPPED)
    assert touched(decision) == ("trainer",) and decision.complete
    truncated = events.gitlab_push(payload | {"total_commits_count": 45})
    assert_everything(route(truncated, SHIPPED), "lists 1 of 45 commits")


def test_reasons_quote_hostile_names_briefly() -> None:
    decision = route(push("trainer/a.py", ref="refs/heads/" + "x" * 100_000), SHIPPED)
    assert decision.ignored is Ignored.REF
    assert len(decision.reason) < 300
