"""Contract tests of the Vertex AI emulator through the unmodified ``aiplatform_v1`` clients, and the chain
build (Cloud Build emulator) → train (CustomJob) → register (Model Registry) with the sample trainer."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.api_core import exceptions
from google.cloud import aiplatform_v1 as aip
from google.cloud.devtools import cloudbuild_v1

from emulators.apiserver.admin import EmulatorAdmin
from emulators.common.registry import LocalRegistry
from tests.integration.api_emulators import (
    PROJECT,
    ROOT,
    ApiStack,
    download,
    fast_polling,
    poll,
    running,
    tarball,
    upload,
)

pytestmark = pytest.mark.integration

PARENT = f"projects/{PROJECT}/locations/us-central1"
JobState = aip.JobState
PipelineState = aip.PipelineState
JOB_DONE = {JobState.JOB_STATE_SUCCEEDED, JobState.JOB_STATE_FAILED, JobState.JOB_STATE_CANCELLED}
PIPELINE_DONE = {
    PipelineState.PIPELINE_STATE_SUCCEEDED,
    PipelineState.PIPELINE_STATE_FAILED,
    PipelineState.PIPELINE_STATE_CANCELLED,
}
TOOL_IMAGE = "us-central1-docker.pkg.dev/emu-project/tests/tool:1"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiStack]:
    root = tmp_path_factory.mktemp("vertex")
    with running(root, storage=True, cloudbuild=True, vertex=True, grpc=True) as s:
        context = root / "tool"
        context.mkdir()
        (context / "Dockerfile").write_text(
            "FROM python:3.11-slim\nWORKDIR /opt/tool\nCOPY tool.py .\nENV GREETING=hello\n"
            'ENTRYPOINT ["python", "tool.py"]\n'
        )
        (context / "tool.py").write_text(
            "import json, os, sys, time\n"
            "print(json.dumps({'argv': sys.argv[1:], 'greeting': os.environ.get('GREETING'),\n"
            "    'model_dir': os.environ.get('AIP_MODEL_DIR'), 'extra': os.environ.get('EXTRA')}))\n"
            "time.sleep(float(os.environ.get('SLEEP', '0')))\n"
            "sys.exit(int(os.environ.get('EXIT', '0')))\n"
        )
        LocalRegistry(Path(s.env["LOCAL_REGISTRY_DIR"])).build(context, [TOOL_IMAGE])
        yield s


@pytest.fixture(scope="module")
def jobs(stack: ApiStack) -> aip.JobServiceClient:
    return aip.JobServiceClient(**stack.options("vertex"))


@pytest.fixture(scope="module")
def pipelines(stack: ApiStack) -> aip.PipelineServiceClient:
    return aip.PipelineServiceClient(**stack.options("vertex"))


@pytest.fixture(scope="module")
def models(stack: ApiStack) -> aip.ModelServiceClient:
    return aip.ModelServiceClient(**stack.options("vertex"))


@pytest.fixture(scope="module")
def admin(stack: ApiStack) -> EmulatorAdmin:
    return EmulatorAdmin(stack.hosts["vertex"])


def custom_job(image: str = TOOL_IMAGE, env: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "display_name": extra.pop("display_name", "contract"),
        "labels": extra.pop("labels", {}),
        "job_spec": {
            "base_output_directory": {"output_uri_prefix": "gs://emu-models/run-1"},
            "worker_pool_specs": [
                {
                    "machine_spec": {"machine_type": "n1-standard-4"},
                    "replica_count": 1,
                    "container_spec": {
                        "image_uri": image,
                        "args": extra.pop("args", []),
                        "env": [{"name": k, "value": v} for k, v in (env or {}).items()],
                    },
                }
            ],
        },
    }


def run_to_end(jobs: aip.JobServiceClient, job: dict[str, Any]) -> tuple[aip.CustomJob, list[Any]]:
    created = jobs.create_custom_job(parent=PARENT, custom_job=job)
    states = poll(lambda: jobs.get_custom_job(name=created.name).state, lambda s: s in JOB_DONE)
    return jobs.get_custom_job(name=created.name), states


# -- CustomJob ----------------------------------------------------------------------------------------------


def test_custom_job_runs_the_image_with_args_env_and_aip_variables(
    jobs: aip.JobServiceClient, admin: EmulatorAdmin
) -> None:
    job, states = run_to_end(
        jobs, custom_job(args=["--epochs", "2"], env={"EXTRA": "x"}, labels={"run": "r1"})
    )
    assert job.state == JobState.JOB_STATE_SUCCEEDED
    assert states[0] == JobState.JOB_STATE_QUEUED and states[-1] == JobState.JOB_STATE_SUCCEEDED
    assert JobState.JOB_STATE_RUNNING in states
    assert job.create_time <= job.start_time <= job.end_time
    assert job.name.startswith(f"{PARENT}/customJobs/") and job.name.rsplit("/", 1)[1].isdigit()
    assert dict(job.labels) == {"run": "r1"}
    output = json.loads(admin.log("customJobs", job.name.rsplit("/", 1)[1]).splitlines()[0])
    assert output == {
        "argv": ["--epochs", "2"],
        "greeting": "hello",
        "model_dir": "gs://emu-models/run-1/model/",
        "extra": "x",
    }


def test_custom_job_failures_carry_an_error(jobs: aip.JobServiceClient) -> None:
    crashed, _ = run_to_end(jobs, custom_job(env={"EXIT": "7"}))
    assert crashed.state == JobState.JOB_STATE_FAILED
    assert "non-zero status of 7" in crashed.error.message
    unknown, _ = run_to_end(jobs, custom_job(image="us-docker.pkg.dev/elsewhere/never-built:1"))
    assert unknown.state == JobState.JOB_STATE_FAILED
    assert "not in the local registry" in unknown.error.message


def test_forced_job_failure_and_fail_next(jobs: aip.JobServiceClient, admin: EmulatorAdmin) -> None:
    admin.fail_next_resource("customJobs", message="preempted (injected)")
    forced, _ = run_to_end(jobs, custom_job())
    assert forced.state == JobState.JOB_STATE_FAILED and forced.error.message == "preempted (injected)"
    running_job = jobs.create_custom_job(parent=PARENT, custom_job=custom_job(env={"SLEEP": "30"}))
    poll(lambda: jobs.get_custom_job(name=running_job.name).state, lambda s: s == JobState.JOB_STATE_RUNNING)
    admin.force_failure("customJobs", running_job.name.rsplit("/", 1)[1], "node lost (injected)")
    failed = jobs.get_custom_job(name=running_job.name)
    assert failed.state == JobState.JOB_STATE_FAILED and failed.error.message == "node lost (injected)"


def test_cancel_delete_and_list_with_label_filter(jobs: aip.JobServiceClient) -> None:
    job = jobs.create_custom_job(
        parent=PARENT, custom_job=custom_job(env={"SLEEP": "30"}, labels={"team": "cancel"})
    )
    poll(lambda: jobs.get_custom_job(name=job.name).state, lambda s: s == JobState.JOB_STATE_RUNNING)
    with pytest.raises(exceptions.BadRequest) as running_delete:
        jobs.delete_custom_job(name=job.name)
    assert running_delete.value.response.json()["error"]["status"] == "FAILED_PRECONDITION"  # type: ignore[union-attr]
    jobs.cancel_custom_job(name=job.name)
    states = poll(lambda: jobs.get_custom_job(name=job.name).state, lambda s: s in JOB_DONE)
    assert states[-1] == JobState.JOB_STATE_CANCELLED
    assert jobs.get_custom_job(name=job.name).error.code == 1
    listed = jobs.list_custom_jobs(request={"parent": PARENT, "filter": 'labels.team="cancel"'})
    assert [item.name for item in listed] == [job.name]
    assert list(jobs.list_custom_jobs(request={"parent": PARENT, "filter": 'labels.team="nobody"'})) == []
    with pytest.raises(exceptions.BadRequest):
        jobs.cancel_custom_job(name=job.name)
    jobs.delete_custom_job(name=job.name).result(timeout=10, polling=fast_polling())
    with pytest.raises(exceptions.NotFound):
        jobs.get_custom_job(name=job.name)


def test_custom_job_validation(jobs: aip.JobServiceClient) -> None:
    with pytest.raises(exceptions.BadRequest, match="display_name"):
        jobs.create_custom_job(parent=PARENT, custom_job={"job_spec": custom_job()["job_spec"]})
    with pytest.raises(exceptions.BadRequest, match="label key"):
        jobs.create_custom_job(parent=PARENT, custom_job=custom_job(labels={"Bad Key": "x"}))
    with pytest.raises(exceptions.NotFound):
        jobs.get_custom_job(name=f"{PARENT}/customJobs/1")


# -- PipelineJob --------------------------------------------------------------------------------------------


def pipeline_spec(second_exit: str = "0", sleep: str = "0") -> dict[str, Any]:
    def executor(exit_code: str) -> dict[str, Any]:
        return {
            "container": {
                "image": TOOL_IMAGE,
                "args": ["--name", "{{$.inputs.parameters['name']}}"],
                "env": [{"name": "EXIT", "value": exit_code}, {"name": "SLEEP", "value": sleep}],
            }
        }

    return {
        "pipelineInfo": {"name": "contract-pipeline"},
        "schemaVersion": "2.1.0",
        "root": {
            "inputDefinitions": {
                "parameters": {"who": {"parameterType": "STRING", "defaultValue": "nobody"}}
            },
            "dag": {
                "tasks": {
                    "second": {
                        "taskInfo": {"name": "second"},
                        "componentRef": {"name": "comp-second"},
                        "dependentTasks": ["first"],
                        "inputs": {"parameters": {"name": {"runtimeValue": {"constant": "two"}}}},
                    },
                    "first": {
                        "taskInfo": {"name": "first"},
                        "componentRef": {"name": "comp-first"},
                        "inputs": {"parameters": {"name": {"componentInputParameter": "who"}}},
                    },
                }
            },
        },
        "components": {
            "comp-first": {"executorLabel": "exec-first"},
            "comp-second": {"executorLabel": "exec-second"},
        },
        "deploymentSpec": {"executors": {"exec-first": executor("0"), "exec-second": executor(second_exit)}},
    }


def test_pipeline_job_runs_tasks_in_order(pipelines: aip.PipelineServiceClient, admin: EmulatorAdmin) -> None:
    job = pipelines.create_pipeline_job(
        parent=PARENT,
        pipeline_job={
            "display_name": "p",
            "labels": {"kind": "ok"},
            "pipeline_spec": pipeline_spec(),
            "runtime_config": {"parameter_values": {"who": "alice"}},
        },
        pipeline_job_id="contract-ok",
    )
    assert job.name == f"{PARENT}/pipelineJobs/contract-ok"
    states = poll(lambda: pipelines.get_pipeline_job(name=job.name).state, lambda s: s in PIPELINE_DONE)
    assert (
        states[0] == PipelineState.PIPELINE_STATE_QUEUED
        and states[-1] == PipelineState.PIPELINE_STATE_SUCCEEDED
    )
    done = pipelines.get_pipeline_job(name=job.name)
    tasks = {task.task_name: task for task in done.job_detail.task_details}
    assert [task.task_name for task in done.job_detail.task_details] == ["first", "second"]
    assert all(task.state == aip.PipelineTaskDetail.State.SUCCEEDED for task in tasks.values())
    assert tasks["first"].end_time <= tasks["second"].start_time
    log = admin.log("pipelineJobs", "contract-ok")
    assert '"argv": ["--name", "alice"]' in log and '"argv": ["--name", "two"]' in log
    listed = pipelines.list_pipeline_jobs(request={"parent": PARENT, "filter": 'labels.kind="ok"'})
    assert [item.name for item in listed] == [job.name]
    with pytest.raises(exceptions.Conflict) as duplicate:  # ALREADY_EXISTS is HTTP 409 over REST
        pipelines.create_pipeline_job(
            parent=PARENT, pipeline_job={"pipeline_spec": pipeline_spec()}, pipeline_job_id="contract-ok"
        )
    assert duplicate.value.response.json()["error"]["status"] == "ALREADY_EXISTS"  # type: ignore[union-attr]


def test_pipeline_failures_and_cancel(pipelines: aip.PipelineServiceClient) -> None:
    failing = pipelines.create_pipeline_job(parent=PARENT, pipeline_job={"pipeline_spec": pipeline_spec("4")})
    poll(lambda: pipelines.get_pipeline_job(name=failing.name).state, lambda s: s in PIPELINE_DONE)
    failed = pipelines.get_pipeline_job(name=failing.name)
    assert failed.state == PipelineState.PIPELINE_STATE_FAILED
    assert "The failed tasks are: [second]" in failed.error.message
    assert failed.job_detail.task_details[1].state == aip.PipelineTaskDetail.State.FAILED
    slow = pipelines.create_pipeline_job(
        parent=PARENT, pipeline_job={"pipeline_spec": pipeline_spec(sleep="30")}
    )
    poll(
        lambda: pipelines.get_pipeline_job(name=slow.name).state,
        lambda s: s == PipelineState.PIPELINE_STATE_RUNNING,
    )
    pipelines.cancel_pipeline_job(name=slow.name)
    states = poll(lambda: pipelines.get_pipeline_job(name=slow.name).state, lambda s: s in PIPELINE_DONE)
    assert states[-1] == PipelineState.PIPELINE_STATE_CANCELLED
    with pytest.raises(exceptions.NotFound):
        pipelines.get_pipeline_job(name=f"{PARENT}/pipelineJobs/missing")


# -- Model Registry -----------------------------------------------------------------------------------------


def test_model_versions_and_aliases(models: aip.ModelServiceClient) -> None:
    first = models.upload_model(
        parent=PARENT,
        model={"display_name": "churn", "artifact_uri": "gs://m/1/", "labels": {"app": "churn"}},
    )
    assert isinstance(first.metadata, aip.UploadModelOperationMetadata)
    one = first.result(timeout=10, polling=fast_polling())
    second = models.upload_model(
        request={
            "parent": PARENT,
            "parent_model": one.model,
            "model": {"display_name": "churn", "artifact_uri": "gs://m/2/", "version_aliases": ["candidate"]},
        }
    ).result(timeout=10, polling=fast_polling())
    assert (one.model_version_id, second.model_version_id) == ("1", "2")
    assert second.model == one.model
    versions = {m.version_id: list(m.version_aliases) for m in models.list_model_versions(name=one.model)}
    assert versions == {"1": ["default"], "2": ["candidate"]}
    assert models.get_model(name=one.model).artifact_uri == "gs://m/1/"
    assert models.get_model(name=f"{one.model}@candidate").version_id == "2"
    merged = models.merge_version_aliases(
        name=f"{one.model}@2", version_aliases=["default", "champion", "-candidate"]
    )
    assert sorted(merged.version_aliases) == ["champion", "default"]
    assert models.get_model(name=one.model).version_id == "2"
    assert list(models.get_model(name=f"{one.model}@1").version_aliases) == []
    listed = models.list_models(request={"parent": PARENT, "filter": 'display_name="churn"'})
    assert [(m.name, m.version_id) for m in listed] == [(one.model, "2")]
    with pytest.raises(exceptions.BadRequest, match="Invalid version alias"):
        models.merge_version_aliases(name=f"{one.model}@1", version_aliases=["1bad"])
    with pytest.raises(exceptions.NotFound):
        models.get_model(name=f"{one.model}@9")
    with pytest.raises(exceptions.NotFound):
        models.upload_model(
            request={"parent": PARENT, "parent_model": f"{PARENT}/models/404", "model": {"display_name": "x"}}
        )
    models.upload_model(
        request={"parent": PARENT, "model_id": "fixed-id", "model": {"display_name": "x"}}
    ).result(timeout=10, polling=fast_polling())
    with pytest.raises(exceptions.Conflict):  # ALREADY_EXISTS over REST (409)
        models.upload_model(
            request={"parent": PARENT, "model_id": "fixed-id", "model": {"display_name": "x"}}
        )


def test_grpc_transports(stack: ApiStack) -> None:
    import grpc
    from google.cloud.aiplatform_v1.services.model_service.transports import ModelServiceGrpcTransport

    channel = grpc.insecure_channel(stack.grpc["vertex"])
    client = aip.ModelServiceClient(transport=ModelServiceGrpcTransport(channel=channel))
    result = client.upload_model(parent=PARENT, model={"display_name": "grpc"}).result(timeout=10)
    assert client.get_model(name=result.model).display_name == "grpc"
    with pytest.raises(exceptions.AlreadyExists):
        client.upload_model(
            request={
                "parent": PARENT,
                "model_id": result.model.rsplit("/", 1)[1],
                "model": {"display_name": "x"},
            }
        )
    with pytest.raises(exceptions.InvalidArgument):
        client.get_model(name="not-a-model-name")
    channel.close()


# -- the chain: build the sample trainer, train with it, register the model --


def test_build_train_register_chain(
    stack: ApiStack, jobs: aip.JobServiceClient, models: aip.ModelServiceClient
) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_data", ROOT / "examples" / "trainer" / "make_data.py")
    assert spec is not None and spec.loader is not None
    make_data = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_data)
    make_csv = make_data.make_csv

    builds = cloudbuild_v1.CloudBuildClient(**stack.options("cloudbuild"))
    generation = upload("emu-chain", "source/trainer.tgz", tarball(ROOT / "examples" / "trainer"))
    upload("emu-chain", "data/train.csv", make_csv(rows=300).encode())
    image = "us-central1-docker.pkg.dev/emu-project/mlops/trainer:chain"
    build = builds.create_build(
        project_id=PROJECT,
        build={
            "source": {
                "storage_source": {
                    "bucket": "emu-chain",
                    "object_": "source/trainer.tgz",
                    "generation": generation,
                }
            },
            "steps": [{"name": "gcr.io/cloud-builders/docker", "args": ["build", "-t", image, "."]}],
            "images": [image],
        },
    ).result(timeout=60, polling=fast_polling())
    assert build.status == cloudbuild_v1.Build.Status.SUCCESS
    job, states = run_to_end(
        jobs,
        {
            "display_name": "train-chain",
            "labels": {"run_id": "chain-1"},
            "job_spec": {
                "base_output_directory": {"output_uri_prefix": "gs://emu-chain/runs/chain-1"},
                "worker_pool_specs": [
                    {
                        "machine_spec": {"machine_type": "n1-standard-4"},
                        "replica_count": 1,
                        "container_spec": {
                            "image_uri": image,
                            "args": ["--data", "gs://emu-chain/data/train.csv"],
                        },
                    }
                ],
            },
        },
    )
    assert job.state == JobState.JOB_STATE_SUCCEEDED, job.error.message
    assert states[-1] == JobState.JOB_STATE_SUCCEEDED
    metrics = json.loads(download("emu-chain", "runs/chain-1/model/metrics.json"))
    assert metrics["accuracy"] > 0.8 and metrics["rows_train"] + metrics["rows_test"] == 300
    assert len(download("emu-chain", "runs/chain-1/model/model.joblib")) > 100
    first = models.upload_model(
        parent=PARENT, model={"display_name": "trainer", "artifact_uri": "gs://emu-chain/runs/chain-1/model/"}
    ).result(timeout=10, polling=fast_polling())
    second = models.upload_model(
        request={"parent": PARENT, "parent_model": first.model, "model": {"display_name": "trainer"}}
    ).result(timeout=10, polling=fast_polling())
    assert (first.model_version_id, second.model_version_id) == ("1", "2")
    time.sleep(0)  # nothing left running: the job's process ended with the job
