"""The release workflows: pinned actions, least permissions and timeouts, script calls that use
real options, job-level deploy concurrency, rollback on failure or cancel, time budgets, renders
from the deployed commit, and the observability deploy."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from typing import Any

import yaml

from tests.deploy.conftest import REPO_ROOT, run

WORKFLOWS = REPO_ROOT / ".github" / "workflows"


# --- the workflows call the scripts the way the scripts accept ---------------------------------


def workflow(name: str) -> dict[Any, Any]:
    return dict(yaml.safe_load((WORKFLOWS / name).read_text()))


def all_steps() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path in sorted(WORKFLOWS.glob("*.yml")):
        for job_name, job in workflow(path.name)["jobs"].items():
            for step in job.get("steps", []):
                yield path.name, job_name, step


def test_workflows_pin_actions_limit_permissions_and_time():
    for path in sorted(WORKFLOWS.glob("*.yml")):
        data = workflow(path.name)
        assert data["permissions"] == {"contents": "read"}, path.name
        for job_name, job in data["jobs"].items():
            if "uses" in job:  # a reusable workflow call inherits the callee's jobs
                continue
            assert 0 < job["timeout-minutes"] <= 120, (path.name, job_name)
            uses_aws = any("configure-aws-credentials" in s.get("uses", "") for s in job["steps"])
            assert (job.get("permissions", {}).get("id-token") == "write") == uses_aws, (
                path.name,
                job_name,
            )
    for name, job, step in all_steps():
        if "uses" in step:
            assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", step["uses"]), (
                name,
                job,
                step["uses"],
            )
        script = step.get("run", "")
        # Untrusted event data reaches scripts through env only (no ${{ }} inside run: blocks).
        assert "${{" not in script, (name, job, script[:80])


def test_no_stored_aws_keys_in_workflows():
    for path in WORKFLOWS.glob("*.yml"):
        text = path.read_text()
        assert "AWS_ACCESS_KEY_ID" not in text and "aws-secret-access-key" not in text


def help_text(module: str) -> str:
    result = run([sys.executable, "-m", module, "--help"], cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_workflow_script_calls_use_real_options():
    modules = (
        "deploy.render",
        "deploy.smoke_test",
        "deploy.canary_watch",
        "deploy.validate_model",
        "deploy.models_config",
        "deploy.manifest",
    )
    helps = {m: help_text(m) for m in modules}
    seen = set()
    for _, _, step in all_steps():
        script = step.get("run", "").replace("\\\n", " ")
        # deployed/deploy/render.py: model-release renders from the deployed commit's checkout.
        pattern = r"python (?:-m (deploy\.\w+)|(?:deployed/)?deploy/(\w+)\.py)([^\n|&;]*)"
        for call in re.finditer(pattern, script):
            module = call[1] or f"deploy.{call[2]}"
            seen.add(module)
            for option in re.findall(r"(--[a-z][a-z-]+)", call[3]):
                assert option in helps[module], f"{module} has no option {option}"
        for path in re.findall(r"(deploy/[\w.-]+\.sh)", script):
            assert (REPO_ROOT / path).is_file(), path
        for path in re.findall(r"pip install[^\n]* -r (\S+)", script):
            assert (REPO_ROOT / path).is_file(), path
    assert seen == set(modules)
    ci = workflow("ci.yml")
    assert "workflow_call" in ci[True]  # YAML 1.1 reads the key `on` as true
    release_jobs = workflow("release.yml")["jobs"]
    assert release_jobs["ci"]["uses"] == "./.github/workflows/ci.yml"
    rollback = next(s for s in release_jobs["deploy"]["steps"] if s.get("name") == "Roll back")
    assert rollback["if"].startswith("(failure() || cancelled())")
    assert "rollout.sh undo" in rollback["run"]


# --- release mechanics (finding 11): concurrency, rollback on cancel, time budget, revision ----


def cluster_jobs() -> Iterator[tuple[str, str, dict[str, Any]]]:
    """Jobs that assume the deploy role (they change the cluster)."""
    for name in ("release.yml", "model-release.yml"):
        for job_name, job in workflow(name)["jobs"].items():
            if any("AWS_DEPLOY_ROLE_ARN" in json.dumps(s) for s in job.get("steps", [])):
                yield name, job_name, job


def test_deploys_queue_per_job_not_per_workflow():
    for name in ("release.yml", "model-release.yml"):
        assert "concurrency" not in workflow(name), f"{name}: workflow-level concurrency"
    groups = {(n, j): job.get("concurrency") for n, j, job in cluster_jobs()}
    assert (
        groups[("release.yml", "deploy")]
        == groups[("model-release.yml", "canary")]
        == {
            "group": "deploy-production",
            "cancel-in-progress": False,
        }
    )
    # The observability job must not take a place in the deploy queue (one pending per group).
    assert groups[("release.yml", "observability")]["group"] != "deploy-production"
    assert set(groups) == {
        ("release.yml", "deploy"), ("release.yml", "observability"), ("model-release.yml", "canary"),
    }  # fmt: skip


def _minutes(duration: str) -> int:
    match = re.fullmatch(r"(\d+)m", duration)
    assert match, duration
    return int(match[1])


def test_job_timeouts_hold_every_wait_and_the_rollback():
    watch_max = 45  # the input check of model-release.yml
    text = (WORKFLOWS / "model-release.yml").read_text()
    assert "((WATCH_MINUTES > 45))" in text
    for name, job_name, job in cluster_jobs():
        steps = job["steps"]
        rollbacks = [s for s in steps if "Roll back" in s.get("name", "")]
        if job_name == "observability":
            assert not rollbacks
            continue
        assert len(rollbacks) == 1
        assert rollbacks[0]["if"].replace("\n", " ").startswith("(failure() || cancelled())")
        rollout = _minutes(job["env"]["ROLLOUT_TIMEOUT"])
        waits = sum(s.get("run", "").count("rollout.sh wait") for s in steps)
        waits += sum(s.get("run", "").count("rollout.sh undo") for s in steps)
        watch = watch_max if any("canary_watch" in s.get("run", "") for s in steps) else 0
        budget = waits * rollout + watch
        # 10 minutes for checkout, installs, renders and smoke tests.
        assert job["timeout-minutes"] >= budget + 10, (name, job_name, budget)


def test_model_release_renders_from_the_deployed_commit():
    release = workflow("release.yml")["jobs"]["deploy"]["steps"]
    render = next(s for s in release if "deploy.render" in s.get("run", ""))
    assert '--source-revision "$GITHUB_SHA"' in render["run"]
    canary = workflow("model-release.yml")["jobs"]["canary"]["steps"]
    checkout = next(s for s in canary if s.get("with", {}).get("path") == "deployed")
    assert checkout["with"]["ref"] == "${{ steps.state.outputs.revision }}"
    state = next(s for s in canary if s.get("id") == "state")
    assert "dr-grading\\.io/source-revision" in state["run"] and "^[0-9a-f]{40}$" in state["run"]
    renders = [s["run"] for s in canary if "render.py --overlay" in s.get("run", "")]
    assert len(renders) == 3  # canary, promote, roll back
    for script in renders:
        assert (
            "python deployed/deploy/render.py" in script and "python -m deploy.render" not in script
        )
        assert '--source-revision "$REVISION"' in script


def test_release_deploys_observability(kubectl):
    job = workflow("release.yml")["jobs"]["observability"]
    assert job["needs"] == "deploy" and job["environment"] == "production"
    script = next(s["run"] for s in job["steps"] if "observability" in s.get("run", ""))
    assert "kubectl kustomize observability > observability.yaml" in script
    assert "kubectl apply --server-side" in script and "-f observability.yaml" in script
    rendered = run([kubectl, "kustomize", str(REPO_ROOT / "observability")])
    assert rendered.returncode == 0, rendered.stderr
    kinds = {d["kind"] for d in yaml.safe_load_all(rendered.stdout) if d}
    assert {"PrometheusRule", "ConfigMap"} <= kinds
