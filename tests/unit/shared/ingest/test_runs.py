"""Run ids: lowercase, label-safe, at most 63 characters, deterministic from the cause; build keys."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.errors import InvalidInput
from shared.ingest.runs import (
    MAX_RUN_ID,
    build_key,
    data_run_id,
    drift_run_id,
    is_run_id,
    push_run_id,
    slug,
)

pytestmark = pytest.mark.unit

SHA = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
LABEL_VALUE = re.compile(r"[a-z0-9_-]{0,63}")  # Google Cloud label values (ASCII subset)
BUILD_TAG = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)  # Cloud Build tags
REVISION_SUFFIX = re.compile(r"[a-z](?:[a-z0-9-]*[a-z0-9])?")  # DNS-1123 label, as Cloud Run revisions


def assert_usable_everywhere(run_id: str) -> None:
    assert is_run_id(run_id), run_id
    assert len(run_id) <= MAX_RUN_ID
    assert LABEL_VALUE.fullmatch(run_id)
    assert BUILD_TAG.fullmatch(f"run-{run_id}")
    assert REVISION_SUFFIX.fullmatch(run_id)


def test_push_run_id_names_repository_and_commit() -> None:
    assert push_run_id("Codertocat/Hello-World", SHA) == "push-codertocat-hello-world-6113728f27ae"
    assert push_run_id("Codertocat/Hello-World", SHA.upper()) == "push-codertocat-hello-world-6113728f27ae"
    assert push_run_id("group/sub/ml", "f" * 64) == "push-group-sub-ml-ffffffffffff"  # SHA-256 repository


def test_data_and_drift_run_ids() -> None:
    assert data_run_id("churn", "20261122T100000Z") == "data-churn-20261122t100000z"
    start = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    assert drift_run_id("churn", start) == "drift-churn-20261122t100000z"
    paris = start.astimezone(timezone(timedelta(hours=1)))
    assert drift_run_id("churn", paris) == "drift-churn-20261122t100000z"  # the same instant, the same id


def test_long_names_are_cut_with_a_hash_so_they_stay_distinct() -> None:
    first = push_run_id("org/" + "a" * 80 + "-one", SHA)
    second = push_run_id("org/" + "a" * 80 + "-two", SHA)
    assert first != second
    assert first.endswith("-6113728f27ae") and second.endswith("-6113728f27ae")
    for run_id in (first, second):
        assert_usable_everywhere(run_id)
        assert len(run_id) == MAX_RUN_ID
    long_batch = data_run_id("churn", "batch-" + "9" * 100)
    assert long_batch != data_run_id("churn", "batch-" + "9" * 99)
    assert_usable_everywhere(long_batch)


def test_accents_are_dropped_and_names_without_ascii_get_a_hash() -> None:
    assert push_run_id("équipe/Modèle Données", SHA) == "push-equipe-modele-donnees-6113728f27ae"
    cjk = push_run_id("团队/模型", SHA)
    assert re.fullmatch(r"push-h[0-9a-f]{6}-6113728f27ae", cjk)
    assert cjk != push_run_id("团队/模型二", SHA)
    assert slug("  --Hello__World!!  ") == "hello-world"


@pytest.mark.parametrize("commit", ["", "abc", "g" * 40, "0" * 40, "a" * 41, None, 12])
def test_commits_that_are_not_object_ids_are_refused(commit: object) -> None:
    with pytest.raises(InvalidInput):
        push_run_id("acme/ml", commit)  # type: ignore[arg-type]


def test_other_bad_parts_are_refused() -> None:
    with pytest.raises(InvalidInput, match="no letter or digit"):
        data_run_id("churn", "---")
    with pytest.raises(InvalidInput, match="timezone-aware"):
        drift_run_id("churn", datetime(2026, 11, 22))
    with pytest.raises(InvalidInput, match="must be text"):
        slug(42)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "value",
    ["Push-a-1", "push--a", "push-a-", "-push", "1push", "push_a", "p" * 64, "", None, "push-é"],
)
def test_is_run_id_refuses_what_would_break_a_label_or_a_revision(value: object) -> None:
    assert not is_run_id(value)


@given(repository=st.text(max_size=300), commit=st.from_regex(r"[0-9a-f]{40}", fullmatch=True))
def test_any_repository_name_gives_a_usable_and_stable_push_run_id(repository: str, commit: str) -> None:
    if commit == "0" * 40:
        return
    run_id = push_run_id(repository, commit)
    assert_usable_everywhere(run_id)
    assert run_id == push_run_id(repository, commit)
    assert run_id.endswith(commit[:12])


@given(
    model=st.text(max_size=200),
    start=st.datetimes(
        min_value=datetime(1970, 1, 1), max_value=datetime(9999, 1, 1), timezones=st.just(UTC)
    ),
    dataset=st.text(max_size=200),
    batch=st.text(alphabet="abcXYZ019-_:.", min_size=1, max_size=200).filter(
        lambda b: any(c.isalnum() for c in b)
    ),
)
def test_any_model_dataset_and_batch_give_usable_run_ids(
    model: str, start: datetime, dataset: str, batch: str
) -> None:
    assert_usable_everywhere(drift_run_id(model, start))
    assert_usable_everywhere(data_run_id(dataset, batch))


def test_build_key_is_one_per_repository_commit_and_image() -> None:
    key = build_key("Acme/ML", SHA, "trainer")
    assert key == f"build/acme/ml/{SHA}/trainer"
    assert build_key("acme/ml", SHA.upper(), "trainer") == key  # same repository, same commit
    assert build_key("acme/ml", SHA, "server") != key
    assert build_key("acme/ml2", SHA, "trainer") != key
    with pytest.raises(InvalidInput):
        build_key("", SHA, "trainer")
    with pytest.raises(InvalidInput):
        build_key("acme/ml", SHA, "")
