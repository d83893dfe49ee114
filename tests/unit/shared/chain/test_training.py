"""The pure pieces of ``shared.chain.training``: job arguments, labels, paths, recorded URIs."""

from __future__ import annotations

import json

import pytest

from shared.chain import training
from shared.chain.contracts import Cause
from shared.ports.common import label_problems
from shared.ports.training import JobState

pytestmark = pytest.mark.unit


def test_data_arguments_round_trip() -> None:
    uris = ("gs://b/churn/a.csv", "gs://b/churn/with,comma.csv")
    args = training.data_args(uris)
    assert args == ("--data", uris[0], "--data", uris[1])
    assert training.data_from_args(("--target", "label", *args)) == (uris, "")
    manifest = training.data_args(uris, "gs://a/runs/r/data-uris.txt")
    assert manifest == ("--data-list", "gs://a/runs/r/data-uris.txt")
    assert training.data_from_args(manifest) == ((), "gs://a/runs/r/data-uris.txt")


def test_job_labels_are_valid_labels_even_for_an_odd_model_name() -> None:
    labels = training.job_labels("data-churn-b1", "Churn Model.v2", Cause.DATA)
    assert labels == {"run-id": "data-churn-b1", "model": "churn-model-v2", "cause": "data"}
    assert label_problems(labels, "labels") == []


def test_the_model_directory_is_where_vertex_points_aip_model_dir() -> None:
    base = training.base_output_dir("proj-artifacts", "push-x-0123456789ab")
    assert base == "gs://proj-artifacts/runs/push-x-0123456789ab/"
    assert training.model_dir(base) == "gs://proj-artifacts/runs/push-x-0123456789ab/model/"
    assert training.model_dir(base.rstrip("/")) == training.model_dir(base)


def test_recorded_uris_are_cut_to_a_byte_budget_and_say_so() -> None:
    uris = [f"gs://bucket/churn/part-{index:05d}.csv" for index in range(5000)]
    kept, truncated = training.recorded_uris(uris, budget=4000)
    assert truncated and 0 < len(kept) < len(uris) and kept == uris[: len(kept)]
    assert len(json.dumps(kept, separators=(",", ":"))) <= 4000  # as the ledger measures it
    assert training.recorded_uris(uris[:3]) == (uris[:3], False)


def test_dataset_objects_leave_out_quarantine_and_folders() -> None:
    names = ["churn/a.csv", "churn/", "churn/sub/b.csv", "quarantine/churn/c.csv", "other/d.csv"]
    assert training.dataset_objects(names, "churn/") == ["churn/a.csv", "churn/sub/b.csv"]
    assert training.dataset_objects(names, "") == ["churn/a.csv", "churn/sub/b.csv", "other/d.csv"]


@pytest.mark.parametrize(
    ("state", "short"),
    [(JobState.SUCCEEDED, "SUCCEEDED"), (JobState.FAILED, "FAILED"), (JobState.CANCELLED, "CANCELLED")],
)
def test_states_travel_in_their_short_form(state: JobState, short: str) -> None:
    assert training.short_state(state) == short
