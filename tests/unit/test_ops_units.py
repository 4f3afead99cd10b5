"""The operations layer's parts, each on its own: prefect.yaml, parameter forms, job templates, the deploy
command line, dataset versions, failure parsing and the keys a retry re-asks. Those that need a server, a
process, a port or the CLI are in tests/integration/test_ops_processes.py."""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.helpers import REPO_ROOT
from vqa_distill.dataset.versions import list_versions, next_version_name, publish_version
from vqa_distill.errors import FatalRunError
from vqa_distill.ops.deploy import PREFECT_FILE, deploy_argv
from vqa_distill.ops.pools import CPU_POOL, GPU_POOL, base_job_template
from vqa_distill.student.handoff import StudentOptions
from vqa_distill.teacher.ledger.records import Ledger, TeacherRecord
from vqa_distill.teacher.prefect_runs.failed import file_of, keys_to_retry, reason_of

DEPLOYMENTS = {
    "pipeline", "nightly-refresh", "train", "evaluate", "distill-loop", "retry-failed", "generate", "collect-batches", "teacher-shard"
}  # fmt: skip


def prefect_yaml() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(PREFECT_FILE.read_text(encoding="utf-8"))
    return data


def test_prefect_yaml_declares_the_deployments_on_their_pools() -> None:
    deployments = {d["name"]: d for d in prefect_yaml()["deployments"]}
    assert set(deployments) == DEPLOYMENTS
    pools = {name: d["work_pool"]["name"] for name, d in deployments.items()}
    assert pools == {"pipeline": CPU_POOL, "nightly-refresh": CPU_POOL, "train": GPU_POOL, "evaluate": GPU_POOL, "distill-loop": GPU_POOL,
                     "retry-failed": CPU_POOL, "generate": CPU_POOL, "collect-batches": CPU_POOL, "teacher-shard": CPU_POOL}  # fmt: skip
    train = deployments["train"]
    assert "gpu" in train["tags"] and train["concurrency_limit"]["limit"] == 1
    assert "gpu" in deployments["evaluate"]["tags"]
    [schedule] = deployments["nightly-refresh"]["schedules"]
    assert schedule["cron"] and schedule["timezone"] and schedule["active"]
    [collect] = deployments["collect-batches"]["schedules"]
    assert collect["interval"] == 15 * 60 and collect["active"]
    assert deployments["nightly-refresh"]["parameters"]["teacher"]["batch"] is False
    assert deployments["generate"]["parameters"]["params"]["batch"] is False
    for deployment in deployments.values():  # every entrypoint exists and names a flow
        path, function = deployment["entrypoint"].split(":")
        assert f"def {function}(" in (REPO_ROOT / path).read_text(encoding="utf-8")
    assert prefect_yaml()["pull"] == [
        {"prefect.deployments.steps.set_working_directory": {"directory": "{{ $VQA_DISTILL_ROOT }}"}}
    ]


def _leaves(schema: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every property of a parameter schema and of the models it refers to."""
    found = list(schema["properties"].items())
    for name, definition in schema.get("definitions", {}).items():
        found += [(f"{name}.{field}", prop) for field, prop in definition.get("properties", {}).items()]
    return found


@pytest.mark.parametrize("entrypoint", ["flows.pipeline:pipeline", "flows.nightly:nightly_refresh",
                                        "flows.retry_failed:retry_failed", "flows.batch_collect:collect_batches",
                                        "flows.batch_submit:submit_batches", "flows.evaluate:evaluate",
                                        "flows.distill:distill_loop"])  # fmt: skip
def test_every_parameter_has_a_description_for_the_ui_form(entrypoint: str) -> None:
    import importlib

    from prefect.utilities.callables import parameter_schema

    module, name = entrypoint.split(":")
    flow = getattr(importlib.import_module(module), name)
    schema = parameter_schema(flow).model_dump_for_openapi()
    missing = [name for name, prop in _leaves(schema) if not prop.get("description")]
    assert missing == []


def test_the_deployment_defaults_are_valid_parameters() -> None:
    from prefect.utilities.callables import parameter_schema

    from flows.batch_collect import collect_batches
    from flows.generate import generate
    from flows.nightly import nightly_refresh
    from flows.pipeline import pipeline

    deployments = {d["name"]: d for d in prefect_yaml()["deployments"]}
    for flow, name in ((pipeline, "pipeline"), (nightly_refresh, "nightly-refresh"),
                       (collect_batches, "collect-batches"), (generate, "generate")):  # fmt: skip
        flow.validate_parameters(deployments[name]["parameters"])  # raises on a bad default
        required = set(parameter_schema(flow).model_dump_for_openapi().get("required", []))
        assert required <= set(deployments[name]["parameters"]), name


def test_job_templates_request_nvidia_gpus() -> None:
    docker = base_job_template("docker")
    assert docker["job_configuration"]["container_create_kwargs"] == "{{ container_create_kwargs }}"
    requests = docker["variables"]["properties"]["container_create_kwargs"]["default"]["device_requests"]
    assert requests == [{"driver": "nvidia", "count": -1, "capabilities": [["gpu"]]}]
    k8s = base_job_template("kubernetes")
    container = k8s["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "{{ gpu_count }}"
    assert k8s["variables"]["properties"]["gpu_count"]["default"] == 1
    for template in (docker, k8s):  # every placeholder is a declared variable (the server checks this too)
        placeholders = set(
            __import__("re").findall(r"\{\{ *(\w+) *\}\}", json.dumps(template["job_configuration"]))
        )
        assert placeholders <= set(template["variables"]["properties"])


def test_deploy_command_line() -> None:
    python = sys.executable
    assert deploy_argv(PREFECT_FILE) == [python, "-m", "prefect", "--no-prompt", "deploy", "--prefect-file",
                                         str(PREFECT_FILE), "--all"]  # fmt: skip
    assert deploy_argv(PREFECT_FILE, ["train"])[-2:] == ["--name", "train"]


def test_student_options_take_the_teacher_dataset_with_absolute_paths(
    tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.chdir(tmp_path)
    options = StudentOptions(model_id_or_path="m", cuda_devices="cpu")
    params = options.for_dataset("run/train.jsonl", "run/val.jsonl", "run")
    assert params.dataset == [str(tmp_path / "run" / "train.jsonl")]
    assert params.val_dataset == [str(tmp_path / "run" / "val.jsonl")]
    assert params.output_dir == str(tmp_path / "run" / "checkpoints")
    own = StudentOptions(model_id_or_path="m", dataset=["/d.jsonl"], output_dir="/ck").for_dataset(
        "t", None, "r"
    )
    assert (own.dataset, own.val_dataset, own.output_dir) == (["/d.jsonl"], [], "/ck")


def _write_dataset(out: Path, rows: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "train.jsonl").write_text("".join(f'{{"row": {i}}}\n' for i in range(rows)))
    (out / "dataset_stats.json").write_text("{}")


def test_a_dataset_is_versioned_only_when_it_changed(tmp_path: Path) -> None:
    day = date(2025, 3, 1)
    assert next_version_name(tmp_path, day) == "2025-03-01"
    _write_dataset(tmp_path, 2)
    first = publish_version(tmp_path, day)
    assert first is not None and first.name == "2025-03-01" and first.train_file.read_text().count("\n") == 2
    assert publish_version(tmp_path, day) is None  # unchanged
    _write_dataset(tmp_path, 3)
    second = publish_version(tmp_path, day)
    assert second is not None and second.name == "2025-03-01.2" and second.val_file is None
    _write_dataset(tmp_path, 4)
    third = publish_version(tmp_path, date(2025, 3, 2))
    assert third is not None and third.name == "2025-03-02"
    (tmp_path / "versions" / "notes").mkdir()  # folders not named like a version are ignored
    assert [v.name for v in list_versions(tmp_path)] == ["2025-03-01", "2025-03-01.2", "2025-03-02"]
    assert (first.path / "train.jsonl").read_text().count("\n") == 2  # published versions never change


def test_failed_task_runs_are_parsed_into_file_and_reason() -> None:
    assert file_of("ask-teacher[odd 01.png]") == "odd 01.png"
    assert file_of("ask-teacher[line 2/a/x.jpg]") == "line 2/a/x.jpg"
    assert file_of("ask-teacher[a/x.jpg #3]") == "a/x.jpg"
    assert file_of("ask-questions[a/x.jpg]") == file_of("judge-answer[a/x.jpg #12]") == "a/x.jpg"
    assert file_of("ask-teacher[photo #2.jpg]") == "photo #2.jpg"
    assert file_of("train[tiny]") is None
    message = "Task run encountered an exception PermanentTeacherError: HTTP 400: bad image"
    assert reason_of(message) == "PermanentTeacherError: HTTP 400: bad image"
    assert reason_of(None) == "failed, no message recorded"


def _record(key: str, status: str, image: str, run: str) -> TeacherRecord:
    return TeacherRecord(key=key, status=status, image_path=f"/imgs/{image}", rel_path=image, sha256=key,
                         prompt="p", system=None, model="m", params={}, flow_run_id=run)  # fmt: skip


def test_keys_to_retry_are_the_runs_still_failed_requests(tmp_path: Path) -> None:
    with Ledger(tmp_path) as ledger:
        ledger.record(_record("a", "failed", "a.png", "run-1"))
        ledger.record(
            _record("b", "failed", "b.png", "run-2")
        )  # failed in run-1, then again in a later retry
        ledger.record(_record("c", "answered", "c.png", "run-1"))
        ledger.record(_record("d", "failed", "d.png", "run-3"))  # another run's failure
    assert keys_to_retry(tmp_path, "run-1", ["a.png", "b.png"]) == ["a", "b"]
    assert keys_to_retry(tmp_path, "run-9", []) == []
    with pytest.raises(FatalRunError, match=r"no ledger for the run folder"):
        keys_to_retry(tmp_path / "elsewhere", "run-1", [])
