"""k8s/components/pacs in the rendered overlays: the PACS and database settings the gateway
accepts (validated by the real Settings), Secrets as files only, egress to the database and the
PACS and nothing wider, the migration Job (run for real against PostgreSQL) and how the release
runs it before the rollout (deploy/migrate.sh with a stand-in kubectl)."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from sqlalchemy.engine import make_url

from gateway.settings import Settings
from tests.deploy.conftest import (
    REPO_ROOT,
    clean_drg_env,
    container,
    find_tool,
    objects,
    one,
    run,
    secret_files_as_stand_ins,
)

PACS_OVERLAYS = ("eks", "eks-gpu")
GATEWAYS = ("gateway", "gateway-canary")
MIGRATE = str(REPO_ROOT / "deploy" / "migrate.sh")
WORKFLOWS = REPO_ROOT / ".github" / "workflows"
# What the gateway accepts for PACS intake on a shared store (gateway/settings.py).
PACS_VARIABLES = {
    "DRG_PACS_ENABLED", "DRG_PACS_STOW_URL", "DRG_PACS_AUTH", "DRG_PACS_USERNAME",
    "DRG_PACS_PASSWORD_FILE", "DRG_PACS_CA_FILE", "DRG_PACS_LEASE_S", "DRG_PACS_POLL_S",
    "DRG_DATABASE_URL", "DRG_DATABASE_PASSWORD_FILE", "DRG_DATABASE_SSLMODE",
    "DRG_DATABASE_SSLROOTCERT", "DRG_DATABASE_CONNECT_TIMEOUT_S", "DRG_RESULTS_RETENTION_DAYS",
}  # fmt: skip


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def params() -> dict[str, str]:
    lines = (REPO_ROOT / "k8s" / "overlays" / "eks" / "params.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def env_of(docs: list[dict[str, Any]], item: dict[str, Any]) -> dict[str, str]:
    """A container's environment: its envFrom ConfigMaps, then literal env values."""
    env: dict[str, str] = {}
    for source in item.get("envFrom", []):
        name = source["configMapRef"]["name"]
        env.update(
            next(c for c in objects(docs, "ConfigMap") if c["metadata"]["name"] == name)["data"]
        )
    for variable in item.get("env", []):
        env[variable["name"]] = variable["value"]
    return env


def pod(obj: dict[str, Any]) -> dict[str, Any]:
    return dict(obj["spec"]["template"]["spec"])


def job(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return one(docs, "Job", "gateway-migrate")


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] == "In", expression
        if labels.get(expression["key"]) not in expression["values"]:
            return False
    return True


def egress_of(docs: list[dict[str, Any]], labels: dict[str, str]) -> list[dict[str, Any]]:
    """Every egress rule of every NetworkPolicy that selects pods with ``labels``."""
    return [
        rule
        for policy in objects(docs, "NetworkPolicy")
        if selects(policy["spec"]["podSelector"], labels)
        for rule in policy["spec"].get("egress", [])
    ]


@pytest.fixture(params=PACS_OVERLAYS)
def docs(request: pytest.FixtureRequest, rendered: dict[str, list[dict[str, Any]]]) -> Any:
    return rendered[request.param]


# --- settings and Secrets ---------------------------------------------------------------------


def test_local_overlay_leaves_pacs_intake_off(rendered):
    docs = rendered["local"]
    assert not objects(docs, "Job")
    for name in GATEWAYS:
        env = env_of(docs, container(one(docs, "Deployment", name), "gateway"))
        assert not PACS_VARIABLES & set(env), "local has no database: PACS intake stays off"


def test_settings_carry_every_pacs_variable_and_validate(docs, tmp_path):
    fields = {f"DRG_{name.upper()}" for name in Settings.model_fields}
    assert fields >= PACS_VARIABLES, f"not (yet) Settings fields: {PACS_VARIABLES - fields}"
    account = params()
    for name in GATEWAYS:
        dep = one(docs, "Deployment", name)
        env = env_of(docs, container(dep, "gateway"))
        assert set(env) >= PACS_VARIABLES, PACS_VARIABLES - set(env)
        assert env["DRG_DATABASE_URL"] == account["DATABASE_URL"]
        assert env["DRG_PACS_STOW_URL"] == account["PACS_STOW_URL"]
        assert env["DRG_DATABASE_SSLMODE"] == "verify-full"
        drg = {k: v for k, v in env.items() if k.startswith("DRG_")}
        local = secret_files_as_stand_ins(dep, drg, tmp_path / name)
        for key in ("DATABASE_PASSWORD_FILE", "DATABASE_SSLROOTCERT", "PACS_PASSWORD_FILE"):
            assert local[f"DRG_{key}"] != drg[f"DRG_{key}"], f"DRG_{key} is not a Secret file"
        Path(local["DRG_DATABASE_PASSWORD_FILE"]).write_text("from-the-secret\n")
        with clean_drg_env(local):
            settings = Settings()
        assert settings.pacs_enabled and settings.pacs_auth == "basic"
        assert settings.model_label == ("canary" if name == "gateway-canary" else "stable")
        # The password reaches the connection from the file alone.
        assert make_url(env["DRG_DATABASE_URL"]).password is None
        assert settings.database.connect_url().password == "from-the-secret"


def test_credentials_are_secret_files_never_env_values(docs):
    for obj in objects(docs, "Deployment") + objects(docs, "Job"):
        for item in pod(obj)["containers"] + pod(obj).get("initContainers", []):
            for variable in item.get("env", []):
                assert "valueFrom" not in variable, (obj["metadata"]["name"], variable)
                assert "PASSWORD" not in variable["name"] or variable["value"].startswith("/")
    for name in ("gateway-database", "gateway-pacs"):
        assert not [s for s in objects(docs, "Secret") if s["metadata"]["name"] == name], (
            f"{name} is created out of band, never rendered from git"
        )
    for obj in [one(docs, "Deployment", n) for n in GATEWAYS] + [job(docs)]:
        volumes = {v["name"]: v for v in pod(obj)["volumes"]}
        assert volumes["database"]["secret"]["secretName"] == "gateway-database"
        assert volumes["database"]["secret"]["defaultMode"] == 0o440
        mount = next(
            m for m in pod(obj)["containers"][0]["volumeMounts"] if m["name"] == "database"
        )
        assert mount["readOnly"] is True and mount["mountPath"] == "/etc/drg/database"
    assert "set-from-params" not in yaml.safe_dump_all(
        docs
    ) and ".invalid" not in yaml.safe_dump_all(docs)


# --- the migration Job ------------------------------------------------------------------------


def test_migration_job_runs_the_gateway_image_as_the_gateway_does(docs):
    migrate = job(docs)
    gateway = one(docs, "Deployment", "gateway")
    item, gw = container(migrate, "migrate"), container(gateway, "gateway")
    assert item["command"] == ["python", "-m", "gateway.store", "upgrade"]
    # The image's ENTRYPOINT runs python too, from its venv on PATH.
    entry = re.search(r"^ENTRYPOINT (.*)$", (REPO_ROOT / "Dockerfile.gateway").read_text(), re.M)
    assert entry and yaml.safe_load(entry[1])[0] == item["command"][0]
    assert item["image"] == gw["image"] and item["imagePullPolicy"] == gw["imagePullPolicy"]
    assert item["envFrom"] == gw["envFrom"]
    assert item["securityContext"] == gw["securityContext"]
    spec = pod(migrate)
    assert spec["securityContext"] == pod(gateway)["securityContext"]
    assert spec["automountServiceAccountToken"] is False and spec["restartPolicy"] == "Never"
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["database"] == {v["name"]: v for v in pod(gateway)["volumes"]}["database"]
    assert {"cpu", "memory"} <= set(item["resources"]["limits"]) and item["resources"]["requests"]
    assert 0 < migrate["spec"]["backoffLimit"] <= 6
    assert migrate["spec"]["activeDeadlineSeconds"] > 0
    assert migrate["spec"]["ttlSecondsAfterFinished"] > 0
    labels = migrate["spec"]["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/component"] == "migration"
    # Not a gateway pod: no Service traffic, no PDB, and the gateway's own policy does not apply.
    for kind in ("Service", "PodDisruptionBudget"):
        for obj in objects(docs, kind):
            selector = obj["spec"]["selector"]
            if kind == "Service":
                selector = {"matchLabels": selector}
            assert not selects(selector, labels), obj["metadata"]["name"]


def test_release_render_pins_the_job_to_the_gateway_digest():
    image = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/dr-gateway@sha256:" + "b" * 64
    result = run(
        [sys.executable, "-m", "deploy.render", "--overlay", "eks", "--image", image], cwd=REPO_ROOT
    )
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert container(job(docs), "migrate")["image"] == image
    assert {container(one(docs, "Deployment", n), "gateway")["image"] for n in GATEWAYS} == {image}


def test_the_jobs_command_and_environment_migrate_a_real_postgresql(rendered, postgres, tmp_path):
    """The Job's command with the Job's environment, on a real PostgreSQL (no TLS here: the
    sslmode is the one value replaced; the URL keeps its user@host:port/db form)."""
    docs = rendered["eks"]
    item = container(job(docs), "migrate")
    env = {k: v for k, v in env_of(docs, item).items() if k.startswith("DRG_")}
    database = postgres.create_database("drg_migrate_job")
    assert make_url(database).database == "drg_migrate_job"
    env.update(
        DRG_DATABASE_URL=postgres.settings_url("drg_migrate_job"),
        DRG_DATABASE_PASSWORD_FILE=str(postgres.password_file),
        DRG_DATABASE_SSLMODE="disable",
    )
    env.pop("DRG_DATABASE_SSLROOTCERT")
    # The image runs from /app, where gateway/ lies; here the checkout is on PYTHONPATH.
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DRG_")}
    clean["PYTHONPATH"] = str(REPO_ROOT)
    command = [sys.executable, *item["command"][1:]]
    for _ in range(2):  # a second run finds head and does nothing
        result = run(command, env={**clean, **env}, cwd=tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
        assert postgres.password not in result.stdout + result.stderr
    check = run(
        [sys.executable, "-m", "gateway.store", "check"], env={**clean, **env}, cwd=tmp_path
    )
    assert check.returncode == 0, check.stdout + check.stderr


# --- network policies -------------------------------------------------------------------------


def test_egress_adds_the_database_and_the_pacs_and_nothing_wider(docs, rendered):
    account = params()
    gateway_labels = one(docs, "Deployment", "gateway")["spec"]["template"]["metadata"]["labels"]
    before = egress_of(rendered["local"], gateway_labels)
    after = egress_of(docs, gateway_labels)
    added = [rule for rule in after if rule not in before]
    assert [rule for rule in before if rule not in after] == []
    pacs = urlsplit(account["PACS_STOW_URL"])
    pacs_port = pacs.port or {"https": 443, "http": 80}[pacs.scheme]
    database_port = make_url(account["DATABASE_URL"]).port
    assert database_port == 5432 and int(account["PACS_PORT"]) == pacs_port
    assert sorted(added, key=canonical) == sorted(
        [
            {
                "to": [{"ipBlock": {"cidr": account["DATABASE_CIDR"]}}],
                "ports": [{"port": 5432, "protocol": "TCP"}],
            },
            {
                "to": [{"ipBlock": {"cidr": account["PACS_CIDR"]}}],
                "ports": [{"port": pacs_port, "protocol": "TCP"}],
            },
        ],
        key=canonical,
    )
    for cidr in (account["DATABASE_CIDR"], account["PACS_CIDR"]):
        assert int(cidr.split("/")[1]) >= 16, f"{cidr} is wider than a VPC"
    # The migration pod: DNS and the database, nothing else, and no ingress at all.
    job_labels = job(docs)["spec"]["template"]["metadata"]["labels"]
    job_rules = egress_of(docs, job_labels)
    assert [r["ports"] for r in job_rules] == [
        [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}],
        [{"port": 5432, "protocol": "TCP"}],
    ]
    for policy in objects(docs, "NetworkPolicy"):
        if selects(policy["spec"]["podSelector"], job_labels):
            assert not policy["spec"].get("ingress"), policy["metadata"]["name"]


# --- the release: migrate, then roll ----------------------------------------------------------


@pytest.fixture
def fake_kubectl(tmp_path: Path) -> dict[str, str]:
    """A kubectl that logs its calls and answers `get job` with $FAKE_JOB_STATE."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "kubectl").write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$*" >> {tmp_path}/kubectl.log\n'
        'if [ "$3" = get ]; then printf "%s" "$FAKE_JOB_STATE"; fi\n'
        'if [ "$3" = logs ]; then echo "migration log line"; fi\n'
        "exit 0\n"
    )
    (bin_dir / "kubectl").chmod(0o755)
    return {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "PYTHON": sys.executable,
        "NAMESPACE": "dr-grading",
        "MIGRATION_POLL_S": "0.1",
    }


def write_render(docs: list[dict[str, Any]], path: Path) -> Path:
    path.write_text(yaml.safe_dump_all(docs))
    return path


def test_migrate_runs_the_job_to_completion_before_anything_rolls(rendered, fake_kubectl, tmp_path):
    docs = rendered["eks"]
    source, rest = write_render(docs, tmp_path / "rendered.yaml"), tmp_path / "rest.yaml"
    result = run(
        [MIGRATE, "run", str(source), str(rest)],
        env={**fake_kubectl, "FAKE_JOB_STATE": "Complete "},
    )
    assert result.returncode == 0, result.stderr
    calls = (tmp_path / "kubectl.log").read_text().splitlines()
    assert [c.split(" -f ")[0] for c in calls[:3]] == [
        "apply --server-side --field-manager=release",
        "-n dr-grading delete job gateway-migrate --ignore-not-found --wait=true",
        "apply --server-side --field-manager=release",
    ]
    assert calls[3].startswith("-n dr-grading get job gateway-migrate")
    kept = [d for d in yaml.safe_load_all(rest.read_text()) if d]
    assert len(kept) == len(docs) - 1 and not objects(kept, "Job")
    failed = run(
        [MIGRATE, "run", str(source), str(rest)],
        env={**fake_kubectl, "FAKE_JOB_STATE": "FailureTarget Failed "},
    )
    assert failed.returncode == 1 and "migration log line" in failed.stderr
    hung = run(
        [MIGRATE, "run", str(source), str(rest)], env={**fake_kubectl, "MIGRATION_TIMEOUT_S": "1"}
    )
    assert hung.returncode == 1 and "did not complete" in hung.stderr


def test_migrate_without_a_job_or_when_stripping_calls_no_kubectl(rendered, fake_kubectl, tmp_path):
    local = write_render(rendered["local"], tmp_path / "local.yaml")
    result = run([MIGRATE, "run", str(local), str(tmp_path / "rest.yaml")], env=fake_kubectl)
    assert result.returncode == 0 and "nothing to migrate" in result.stdout
    eks = write_render(rendered["eks"], tmp_path / "eks.yaml")
    assert (
        run([MIGRATE, "strip", str(eks), str(tmp_path / "rest.yaml")], env=fake_kubectl).returncode
        == 0
    )
    assert not (tmp_path / "kubectl.log").exists()
    assert not objects(
        [d for d in yaml.safe_load_all((tmp_path / "rest.yaml").read_text()) if d], "Job"
    )
    assert run([MIGRATE, "bogus"], env=fake_kubectl).returncode == 2


def test_workflows_migrate_before_the_rollout_and_never_apply_the_job(rendered):
    deploy = yaml.safe_load((WORKFLOWS / "release.yml").read_text())["jobs"]["deploy"]
    apply = next(s for s in deploy["steps"] if s.get("name") == "Apply")["run"]
    lines = [
        line.strip()
        for line in apply.splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    assert lines.index("deploy/migrate.sh run rendered.yaml rest.yaml") < lines.index(
        "kubectl apply --server-side --field-manager=release -f rest.yaml"
    )
    for name in ("release.yml", "model-release.yml"):
        text = (WORKFLOWS / name).read_text()
        applied = re.findall(r"kubectl apply [^\n]*-f (\S+)", text)
        assert applied and all(
            f.endswith("rest.yaml") or f == "observability.yaml" for f in applied
        ), applied
    # The job's time budget holds the migration wait too, which outlasts the Job's own deadline.
    migration_s = int(deploy["env"]["MIGRATION_TIMEOUT_S"])
    assert migration_s > job(rendered["eks"])["spec"]["activeDeadlineSeconds"]
    rollout_min = int(deploy["env"]["ROLLOUT_TIMEOUT"].rstrip("m"))
    assert deploy["timeout-minutes"] >= migration_s / 60 + 2 * rollout_min + 10


def test_shellcheck_passes_on_migrate():
    result = run([find_tool("shellcheck"), MIGRATE])
    assert result.returncode == 0, result.stdout
