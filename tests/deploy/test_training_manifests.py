"""k8s/training: the Indexed fold Job, the export Job and the PVC overlay, rendered and validated."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import REPO_ROOT, find_tool, objects, render_overlay, run

TRAINING = REPO_ROOT / "k8s" / "training"
K8S_VERSIONS = ("1.33.0", "1.37.0")


WORKFLOW_ENV = {
    "CONFIG": "model/configs/tiny.yaml",
    "DISTRIBUTION": "data_parallel",
    "TRAINING_BUCKET": "tb",
    "RUN_NAME": "r1",
    "MODEL_BUCKET": "mb",
    "EXPORT_VERSION": "7",
    "GITHUB_REPOSITORY": "o/r",
    "PARALLELISM": "2",
}


def render_workflow(kubectl: str, work: Path, env: dict[str, str]) -> list[dict[str, Any]]:
    """Run train.yml's "Render this run" step (shell variables from ``env``) in a copy."""
    workflow = yaml.safe_load((REPO_ROOT / ".github/workflows/train.yml").read_text())
    step = next(s for s in workflow["jobs"]["train"]["steps"] if s.get("name") == "Render this run")
    (work / "k8s").mkdir(parents=True)
    subprocess.run(["cp", "-r", str(TRAINING), str(work / "k8s")], check=True)
    (work / "bin").mkdir()
    (work / "bin" / "kubectl").symlink_to(kubectl)
    done = run(
        ["bash", "-e", "-c", step["run"]],
        cwd=work,
        env={"PATH": f"{work / 'bin'}:/usr/bin:/bin", **env},
    )
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all((work / "training.yaml").read_text()) if d]


@pytest.fixture(scope="module")
def training(
    kubectl: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, list[dict[str, Any]]]:
    rendered = {name: render_overlay(kubectl, TRAINING / name) for name in ("base", "pvc")}
    work = tmp_path_factory.mktemp("student")
    rendered["student"] = render_workflow(kubectl, work, {**WORKFLOW_ENV, "STUDENT_VERSION": "8"})
    return rendered


def job(docs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    (found,) = [d for d in objects(docs, "Job") if d["metadata"]["name"] == name]
    return found


def pod(docs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    spec: dict[str, Any] = job(docs, name)["spec"]["template"]["spec"]
    return spec


def settings(docs: list[dict[str, Any]]) -> dict[str, str]:
    (cm,) = objects(docs, "ConfigMap")
    data: dict[str, str] = cm["data"]
    return data


def test_one_indexed_pod_per_fold_on_a_gpu(training: dict[str, list[dict[str, Any]]]) -> None:
    docs = training["base"]
    spec = job(docs, "train-folds")["spec"]
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == 5
    assert 1 <= spec["parallelism"] <= spec["completions"]
    assert spec["backoffLimitPerIndex"] >= 1  # a lost pod retries its own fold only
    config = yaml.safe_load((REPO_ROOT / settings(docs)["CONFIG"]).read_text())
    assert config["folds"]["n_splits"] == spec["completions"]
    (train,) = pod(docs, "train-folds")["containers"]
    command = " ".join(train["command"])
    assert '"folds.only=[$JOB_COMPLETION_INDEX]"' in command
    assert "run_dir=/data/run" in command
    assert train["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert {"name": "KERAS_BACKEND", "value": "jax"} in train["env"]
    assert pod(docs, "train-folds")["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert all(d["metadata"]["namespace"] == "dr-grading" for d in docs)


def test_run_directory_synced_with_s3_through_irsa(
    training: dict[str, list[dict[str, Any]]],
) -> None:
    docs = training["base"]
    (account,) = objects(docs, "ServiceAccount")
    assert "eks.amazonaws.com/role-arn" in account["metadata"]["annotations"]
    spec = pod(docs, "train-folds")
    assert spec["serviceAccountName"] == account["metadata"]["name"]
    sync_data, sync_in, sync_out = spec["initContainers"]
    assert sync_data["name"] == "sync-data"
    assert '"$RUN_URI" /data/run' in " ".join(sync_in["command"])  # resume from the backups
    assert sync_out["restartPolicy"] == "Always"  # a native sidecar: syncs until the fold ends
    assert 'aws s3 sync /data/run "$RUN_URI"' in sync_out["command"][-1]
    assert "trap" in sync_out["command"][-1]  # one last sync on SIGTERM
    assert settings(docs)["RUN_URI"].startswith("s3://")


def test_export_job_validates_and_dispatches(training: dict[str, list[dict[str, Any]]]) -> None:
    docs = training["base"]
    export = job(docs, "export-run")
    assert export["spec"]["suspend"] is True  # resumed once train-folds is Complete
    spec = export["spec"]["template"]["spec"]
    steps = spec["initContainers"][-1]["command"][-1]
    assert (
        steps.index("model.train")
        < steps.index("model.export")
        < steps.index("deploy/validate_model.py")
    )
    assert {"name": "KERAS_BACKEND", "value": "tensorflow"} in spec["initContainers"][-1]["env"]
    (publish,) = spec["containers"]
    assert '"event_type":"model-exported"' in publish["command"][-1]
    assert "$(cat /secrets/github/token)" in publish["command"][-1]  # a file, not an env var
    (secret,) = [v for v in spec["volumes"] if "secret" in v]
    assert secret["secret"]["secretName"] == "github-dispatch"
    assert not objects(docs, "Secret")  # no secret values in the repository


def overrides(value: str) -> dict[str, str]:
    """``a=1 b=2`` (as the shell splits $DATA_OVERRIDES) -> {"a": "1", "b": "2"}."""
    return dict(item.split("=", 1) for item in value.split())


def mount_path(container: dict[str, Any], volume: str) -> str:
    (path,) = [m["mountPath"] for m in container["volumeMounts"] if m["name"] == volume]
    return str(path)


def check_data_paths(spec: dict[str, Any], container: dict[str, Any], data: dict[str, str]) -> None:
    """The command passes $DATA_OVERRIDES; its data paths lie in the container's dataset mount."""
    command = " ".join(container["command"])
    assert "$DATA_OVERRIDES" in command
    assert command.index("$DATA_OVERRIDES") < command.index("$OVERRIDES")  # OVERRIDES may win
    root = mount_path(container, "dataset")
    paths = overrides(data["DATA_OVERRIDES"])
    for key in ("data.csv", "data.images_dir"):
        assert Path(paths[key]).parent == Path(root), (key, paths[key], root)
    (volume,) = [v for v in spec["volumes"] if v["name"] == "dataset"]
    if "emptyDir" in volume:
        check_sync(spec, root)


def check_sync(spec: dict[str, Any], root: str) -> None:
    """emptyDir dataset: a sync-data init container fills it from DATA_URI before training."""
    names = [c["name"] for c in spec["initContainers"]]
    sync = spec["initContainers"][names.index("sync-data")]
    assert f'aws s3 sync "$DATA_URI" {root}' in sync["command"][-1]
    assert mount_path(sync, "dataset") == root
    (volume,) = [v for v in spec["volumes"] if v["name"] == "dataset"]
    assert volume["emptyDir"]["sizeLimit"] == "60Gi"  # EyePACS train: ~35 GB of JPEGs


def test_dataset_reaches_every_pod_that_reads_it(
    training: dict[str, list[dict[str, Any]]],
) -> None:
    docs = training["base"]
    data = settings(docs)
    assert data["DATA_URI"].startswith("s3://")
    config = yaml.safe_load((REPO_ROOT / data["CONFIG"]).read_text())["data"]
    paths = overrides(data["DATA_OVERRIDES"])
    # Same files as the config names (EyePACS layout), only under the pod's dataset mount.
    assert Path(paths["data.csv"]).name == Path(config["csv"]).name
    assert Path(paths["data.images_dir"]).name == Path(config["images_dir"]).name
    train = pod(docs, "train-folds")
    check_data_paths(train, train["containers"][0], data)
    export = pod(docs, "export-run")
    step = export["initContainers"][-1]
    assert step["name"] == "export"
    check_data_paths(export, step, data)
    names = [c["name"] for c in export["initContainers"]]
    assert names.index("sync-data") < names.index("export")


def test_pvc_overlay_reads_the_dataset_from_the_claim(
    training: dict[str, list[dict[str, Any]]],
) -> None:
    docs = training["pvc"]
    data = settings(docs)
    for name, container in (("train-folds", "train"), ("export-run", "export")):
        spec = pod(docs, name)
        (step,) = [
            c for c in spec.get("initContainers", []) + spec["containers"] if c["name"] == container
        ]
        check_data_paths(spec, step, data)
        (volume,) = [v for v in spec["volumes"] if v["name"] == "dataset"]
        assert volume == {
            "name": "dataset",
            "persistentVolumeClaim": {"claimName": "training-run", "readOnly": True},
        }
        (mount,) = [m for m in step["volumeMounts"] if m["name"] == "dataset"]
        assert mount["subPath"] == "dataset" and mount["readOnly"] is True


def test_pvc_overlay_shares_one_claim(training: dict[str, list[dict[str, Any]]]) -> None:
    docs = training["pvc"]
    (claim,) = objects(docs, "PersistentVolumeClaim")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    train, export = pod(docs, "train-folds"), pod(docs, "export-run")
    assert "initContainers" not in train  # no S3 sync: the claim is the run directory
    assert [c["name"] for c in export["initContainers"]] == ["export"]
    for spec in (train, export):
        names = [v["name"] for v in spec["volumes"]]
        assert len(names) == len(set(names))
        claims = {
            v["persistentVolumeClaim"]["claimName"]
            for v in spec["volumes"]
            if "persistentVolumeClaim" in v
        }
        assert claims == {claim["metadata"]["name"]}
        assert not [v for v in spec["volumes"] if "persistentVolumeClaim" in v and "emptyDir" in v]
    assert "github-dispatch" in [v["name"] for v in export["volumes"]]  # the token still mounted
    (mount,) = [m for m in train["containers"][0]["volumeMounts"] if m["mountPath"] == "/data/run"]
    assert mount["subPath"] == "run"  # = the export Job's /data/run


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_kubernetes_validate_strict(
    training: dict[str, list[dict[str, Any]]], tmp_path: Path, version: str
) -> None:
    files = []
    for name, docs in training.items():
        files.append(tmp_path / f"{name}.yaml")
        files[-1].write_text(yaml.safe_dump_all(docs))
    result = run(
        [find_tool("kubernetes-validate"), "--strict", "--quiet", "-k", version, *map(str, files)]
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_kubernetes_validate_rejects_a_misspelt_job_field(
    training: dict[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    docs = [dict(d) for d in training["base"]]
    broken = job(docs, "train-folds")
    broken["spec"] = {**broken["spec"], "completionIndexes": 5}  # not a Job field
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump_all(docs))
    result = run(
        [
            find_tool("kubernetes-validate"),
            "--strict",
            "--quiet",
            "-k",
            K8S_VERSIONS[0],
            str(tmp_path / "broken.yaml"),
        ]
    )
    assert result.returncode != 0


def test_train_workflow_renders_a_run(kubectl: str, tmp_path: Path) -> None:
    """The workflow's overlay (its heredoc, with shell variables filled in) renders."""
    docs = render_workflow(kubectl, tmp_path, WORKFLOW_ENV)
    assert job(docs, "train-folds")["spec"]["parallelism"] == 2
    data = settings(docs)
    assert data["RUN_URI"] == "s3://tb/runs/r1"
    assert data["OVERRIDES"] == "train.distribution=data_parallel"
    assert data["EXPORT_VERSION"] == "7"
    assert (
        data["DATA_OVERRIDES"]
        == settings(render_overlay(kubectl, TRAINING / "base"))["DATA_OVERRIDES"]
    )  # the run's OVERRIDES replace the base's, the dataset paths stay
    assert "STUDENT_VERSION" not in data
    assert "distill-student" not in [d["metadata"]["name"] for d in objects(docs, "Job")]


def test_export_job_trains_no_student(training: dict[str, list[dict[str, Any]]]) -> None:
    """Distillation is a GPU job of its own (components/student), never the CPU export Job."""
    export = pod(training["base"], "export-run")
    steps = " ".join(
        " ".join(c["command"]) for c in export["initContainers"] + export["containers"]
    )
    assert "distill" not in steps and "STUDENT" not in steps
    assert "distill-student" not in [
        d["metadata"]["name"] for d in objects(training["base"], "Job")
    ]


def test_student_component_distils_on_a_gpu(training: dict[str, list[dict[str, Any]]]) -> None:
    docs = training["student"]
    assert settings(docs)["STUDENT_VERSION"] == "8"  # the run's value, not a component default
    student = job(docs, "distill-student")
    assert student["spec"]["suspend"] is True
    spec = student["spec"]["template"]["spec"]
    folds = pod(docs, "train-folds")
    assert spec["nodeSelector"] == folds["nodeSelector"]
    assert spec["tolerations"] == folds["tolerations"]
    steps = {c["name"]: c for c in spec["initContainers"]}
    distill, export = steps["distill"], steps["export"]
    assert list(steps) == ["sync-in", "sync-data", "distill", "export"]
    assert {"name": "KERAS_BACKEND", "value": "jax"} in distill["env"]
    assert distill["resources"]["limits"]["nvidia.com/gpu"] == 1
    script = distill["command"][-1]
    assert script.index("run_dir=/data/run") < script.index("distill.teacher_run=/data/run")
    check_data_paths(spec, distill, settings(docs))
    assert {"name": "KERAS_BACKEND", "value": "tensorflow"} in export["env"]
    script = export["command"][-1]
    assert script.index("model.export") < script.index("deploy/validate_model.py")
    assert '"export.version=$STUDENT_VERSION"' in script
    (publish,) = spec["containers"]
    assert '"$STUDENT_VERSION" "$dest"' in publish["command"][-1]
    assert '"event_type":"model-exported"' in publish["command"][-1]
    images = {c["name"]: c["image"] for c in folds["initContainers"] + folds["containers"]}
    assert steps["sync-in"]["image"] == images["sync-in"]  # the base's pins reach the component
    assert distill["image"] == export["image"] == images["train"]
    assert student["metadata"]["namespace"] == "dr-grading"
    assert student["metadata"]["labels"] == job(docs, "train-folds")["metadata"]["labels"]
    (policy,) = objects(docs, "NetworkPolicy")
    assert "distill-student" in policy["spec"]["podSelector"]["matchExpressions"][0]["values"]


@pytest.mark.slow  # one checkov scan, ~15 s on 2 cores
def test_checkov_passes_the_training_manifests(
    training: dict[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    for name, docs in training.items():
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump_all(docs))
    checkov = find_tool("checkov", env_var="CHECKOV")
    result = run(
        [
            *(checkov, "--skip-download", "--output", "json"),
            *("--framework", "kubernetes", "--directory", str(tmp_path)),
        ]
    )
    data = json.loads(result.stdout)
    reports = data if isinstance(data, list) else [data]
    failed = [c["check_id"] for r in reports for c in r["results"]["failed_checks"]]
    assert failed == []
    assert sum(r["summary"]["passed"] for r in reports) > 100
    skipped = {c["check_id"] for r in reports for c in r["results"]["skipped_checks"]}
    assert skipped <= {"CKV_K8S_43", "CKV_K8S_15"}  # image pinning, argued in the Job annotations
