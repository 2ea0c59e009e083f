"""Cross-checks between the rendered manifests and the code they deploy: probe paths and ports,
settings variables, metrics behind the autoscalers, selectors, mounts, TF Serving's configs."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from deploy import models_config
from gateway.settings import Settings
from tests.deploy.conftest import (
    OVERLAYS,
    REPO_ROOT,
    clean_drg_env,
    container,
    objects,
    one,
    secret_files_as_stand_ins,
)

# tensorflow_model_server's flags (tensorflow_serving/model_servers/main.cc, 2.x): a misspelt flag
# stops the server at start, which no schema would catch.
TFSERVING_FLAGS = {
    "port", "grpc_socket_path", "rest_api_port", "rest_api_num_threads", "rest_api_timeout_in_ms",
    "rest_api_enable_cors_support", "enable_batching", "allow_version_labels_for_unavailable_models",
    "batching_parameters_file", "enable_per_model_batching_parameters", "model_config_file",
    "model_config_file_poll_wait_seconds", "model_name", "model_base_path", "num_load_threads",
    "num_unload_threads", "max_num_load_retries", "load_retry_interval_micros",
    "file_system_poll_wait_seconds", "flush_filesystem_caches", "tensorflow_session_parallelism",
    "tensorflow_session_config_file", "tensorflow_intra_op_parallelism",
    "tensorflow_inter_op_parallelism", "use_alts_credentials", "ssl_config_file",
    "platform_config_file", "per_process_gpu_memory_fraction", "saved_model_tags",
    "grpc_channel_arguments", "grpc_max_threads", "enable_model_warmup",
    "num_request_iterations_for_warmup", "monitoring_config_file",
    "remove_unused_fields_from_bundle_metagraph", "prefer_tflite_model", "num_tflite_pools",
    "num_tflite_interpreters_per_pool", "enable_signature_method_name_check",
    "xla_cpu_compilation_enabled", "enable_profiler",
}  # fmt: skip
FILE_FLAGS = ("model_config_file", "monitoring_config_file", "batching_parameters_file")
DEPLOYMENTS = ("gateway", "gateway-canary", "tfserving")


def deployment(docs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return one(docs, "Deployment", name)


def pod_spec(dep: dict[str, Any]) -> dict[str, Any]:
    return dict(dep["spec"]["template"]["spec"])


def config_map(docs: list[dict[str, Any]], name: str) -> dict[str, str]:
    return dict(
        next(d for d in objects(docs, "ConfigMap") if d["metadata"]["name"] == name)["data"]
    )


def flags(tfserving: dict[str, Any]) -> dict[str, str]:
    out = {}
    for arg in container(tfserving, "tfserving")["args"]:
        match = re.fullmatch(r"--([a-z_]+)=(.*)", arg)
        assert match, f"TF Serving argument {arg!r} is not --flag=value"
        out[match[1]] = match[2]
    return out


def mounted_file(
    dep: dict[str, Any], container_name: str, path: str, docs: list[dict[str, Any]]
) -> str:
    """The content ``path`` has inside the container, from the ConfigMap volume mounted there."""
    item = (
        container(dep, container_name)
        if container_name != "model-sync"
        else container(dep, container_name, init=True)
    )
    volumes = {v["name"]: v for v in pod_spec(dep)["volumes"]}
    for mount in item.get("volumeMounts", []):
        prefix = mount["mountPath"].rstrip("/") + "/"
        if path.startswith(prefix):
            volume = volumes[mount["name"]]
            assert "configMap" in volume, f"{path} is mounted from {volume}, not a ConfigMap"
            key = path[len(prefix) :]
            data = config_map(docs, volume["configMap"]["name"])
            assert key in data, f"{path}: ConfigMap {volume['configMap']['name']} has no key {key}"
            return data[key]
    raise AssertionError(f"{path} is not under any volumeMount of {container_name}")


def pod_env(docs: list[dict[str, Any]], dep: dict[str, Any], name: str) -> dict[str, str]:
    """The container's environment as Kubernetes builds it: envFrom first, then env."""
    item = container(dep, name)
    env: dict[str, str] = {}
    for source in item.get("envFrom", []):
        env.update(config_map(docs, source["configMapRef"]["name"]))
    for variable in item.get("env", []):
        assert "value" in variable, f"{variable['name']}: only literal values are expected"
        env[variable["name"]] = variable["value"]
    return env


def container_port(dep: dict[str, Any], container_name: str, port: int | str) -> int:
    """Resolve a named or numeric port against the container's ports."""
    ports = container(dep, container_name).get("ports", [])
    if isinstance(port, int):
        assert port in [p["containerPort"] for p in ports], f"port {port} not declared"
        return port
    named = [p["containerPort"] for p in ports if p.get("name") == port]
    assert named, f"{dep['metadata']['name']}/{container_name} has no port named {port!r}"
    return int(named[0])


@pytest.fixture(params=OVERLAYS)
def docs(request: pytest.FixtureRequest, rendered: dict[str, list[dict[str, Any]]]) -> Any:
    return rendered[request.param]


# --- gateway: probes, ports, settings, shutdown ----------------------------------------------


def test_gateway_probes_hit_real_routes_on_the_real_port(docs, gateway_routes):
    for name in ("gateway", "gateway-canary"):
        dep = deployment(docs, name)
        env = pod_env(docs, dep, "gateway")
        settings_port = int(env.get("DRG_PORT", Settings.model_fields["port"].default))
        item = container(dep, "gateway")
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            http = item[probe]["httpGet"]
            assert "GET" in gateway_routes.get(http["path"], set()), f"{probe} {http['path']}"
            assert container_port(dep, "gateway", http["port"]) == settings_port
        assert item["livenessProbe"]["httpGet"]["path"] == "/livez"
        assert item["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_every_drg_variable_is_a_settings_field_and_the_settings_start(docs, tmp_path):
    fields = {f"DRG_{name.upper()}" for name in Settings.model_fields}
    for name in ("gateway", "gateway-canary"):
        dep = deployment(docs, name)
        env = pod_env(docs, dep, "gateway")
        drg = {k: v for k, v in env.items() if k.startswith("DRG_")}
        assert set(drg) <= fields, f"not Settings fields: {set(drg) - fields}"
        # Key, database and PACS files come from mounted Secrets; Settings reads stand-ins.
        local = secret_files_as_stand_ins(dep, drg, tmp_path / name)
        assert local["DRG_API_KEYS_FILE"] != drg["DRG_API_KEYS_FILE"]
        with clean_drg_env(local):
            settings = Settings()
        assert settings.environment == "production" and settings.auth == "enabled"
        assert settings.model_label == ("canary" if name == "gateway-canary" else "stable")


def test_a_misspelt_variable_would_stop_the_gateway():
    # The manifests' check above relies on Settings refusing unknown DRG_ variables.
    with clean_drg_env({"DRG_MODEL_LABLE": "stable"}), pytest.raises(ValidationError):
        Settings(auth="disabled", environment="development")


def test_termination_grace_covers_prestop_and_drain(docs):
    for name in ("gateway", "gateway-canary"):
        dep = deployment(docs, name)
        env = pod_env(docs, dep, "gateway")
        drain = float(
            env.get("DRG_SHUTDOWN_GRACE_S", Settings.model_fields["shutdown_grace_s"].default)
        )
        pre_stop = container(dep, "gateway")["lifecycle"]["preStop"]["sleep"]["seconds"]
        grace = pod_spec(dep)["terminationGracePeriodSeconds"]
        assert grace >= pre_stop + drain + 5, f"{name}: {grace} < {pre_stop} + {drain} + 5"
    tfserving = deployment(docs, "tfserving")
    pre_stop = container(tfserving, "tfserving")["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod_spec(tfserving)["terminationGracePeriodSeconds"] > pre_stop


def gateway_setting(env: dict[str, str], name: str) -> float:
    """A numeric gateway setting as the pod gets it: the ConfigMap, else the Settings default."""
    return float(env.get(f"DRG_{name.upper()}", Settings.model_fields[name].default))


def alb_attributes(ingress: dict[str, Any], annotation: str) -> dict[str, str]:
    """``key=value,key=value`` of an ALB attributes annotation."""
    text = ingress["metadata"]["annotations"][f"alb.ingress.kubernetes.io/{annotation}"]
    return dict(item.strip().split("=", 1) for item in text.split(","))


def test_drain_outlives_requests_and_the_alb_lets_go_first(rendered):
    # Issue 14, finding 5: a request may run DRG_REQUEST_TIMEOUT_S; the drain must outlive it,
    # the ALB must keep in-flight requests for as long (deregistration delay) yet have let go
    # before the pod stops serving (preStop + drain), and its idle timeout must be shorter
    # than the gateway's keep-alive, so that the ALB never reuses a connection being closed.
    for overlay in ("eks", "eks-gpu"):
        docs = rendered[overlay]
        ingress = one(docs, "Ingress", "gateway")
        idle = float(
            alb_attributes(ingress, "load-balancer-attributes")["idle_timeout.timeout_seconds"]
        )
        dereg = float(
            alb_attributes(ingress, "target-group-attributes")[
                "deregistration_delay.timeout_seconds"
            ]
        )
        for name in ("gateway", "gateway-canary"):
            dep = deployment(docs, name)
            env = pod_env(docs, dep, "gateway")
            request = gateway_setting(env, "request_timeout_s")
            drain = gateway_setting(env, "shutdown_grace_s")
            keep_alive = gateway_setting(env, "keep_alive_timeout_s")
            pre_stop = container(dep, "gateway")["lifecycle"]["preStop"]["sleep"]["seconds"]
            assert drain > request, f"{overlay}/{name}: drain {drain} <= request timeout {request}"
            assert keep_alive > idle, (
                f"{overlay}/{name}: keep-alive {keep_alive} <= ALB idle {idle}"
            )
            assert request < dereg <= pre_stop + drain, (
                f"{overlay}/{name}: deregistration delay {dereg} outside "
                f"({request}, {pre_stop} + {drain}]"
            )
            assert gateway_setting(env, "header_read_timeout_s") < idle
            assert gateway_setting(env, "body_read_timeout_s") <= request


def test_metrics_port_is_scraped_but_never_exposed(rendered):
    # Issue 14, finding 12: /metrics lives on DRG_METRICS_PORT; the PodMonitor scrapes it, no
    # Service (hence no ALB target group) exposes it, and only Prometheus may reach it.
    for overlay in OVERLAYS:
        docs = rendered[overlay]
        policies = {p["metadata"]["name"]: p for p in objects(docs, "NetworkPolicy")}
        for name in ("gateway", "gateway-canary"):
            dep = deployment(docs, name)
            env = pod_env(docs, dep, "gateway")
            metrics_port = int(env["DRG_METRICS_PORT"])
            assert metrics_port != int(env.get("DRG_PORT", Settings.model_fields["port"].default))
            assert container_port(dep, "gateway", "metrics") == metrics_port
            for service in objects(docs, "Service"):
                labels = dep["spec"]["template"]["metadata"]["labels"]
                if not selects({"matchLabels": service["spec"]["selector"]}, labels):
                    continue
                exposed = {
                    container_port(dep, "gateway", p["targetPort"])
                    for p in service["spec"]["ports"]
                }
                assert metrics_port not in exposed, f"Service {service['metadata']['name']}"
            opened = {
                (policy["metadata"]["name"], container_port(dep, "gateway", port["port"]))
                for policy in policies.values()
                if selects(
                    policy["spec"]["podSelector"], dep["spec"]["template"]["metadata"]["labels"]
                )
                for rule in policy["spec"].get("ingress", [])
                for port in rule.get("ports", [])
            }
            assert {p for _, p in opened if p == metrics_port}, "nobody may scrape the metrics port"
            for policy_name, port in opened:
                if port == metrics_port:
                    sources = policies[policy_name]["spec"]["ingress"][0]["from"]
                    assert sources[0]["podSelector"]["matchLabels"] == {
                        "app.kubernetes.io/name": "prometheus"
                    }, policy_name
        if overlay != "local":
            monitor = one(docs, "PodMonitor", "gateway")
            ports = [e["port"] for e in monitor["spec"]["podMetricsEndpoints"]]
            assert ports == ["metrics"]


def test_the_canary_deployment_differs_from_stable_only_where_intended(docs):
    stable = copy.deepcopy(deployment(docs, "gateway"))
    canary = copy.deepcopy(deployment(docs, "gateway-canary"))
    assert canary["spec"]["replicas"] == 1 and "replicas" not in stable["spec"]
    assert pod_env(docs, canary, "gateway")["DRG_MODEL_LABEL"] == "canary"
    assert pod_env(docs, stable, "gateway")["DRG_MODEL_LABEL"] == "stable"
    for dep in (stable, canary):
        dep["metadata"].pop("name")
        dep["spec"].pop("replicas", None)
        for labels in (
            dep["metadata"]["labels"],
            dep["spec"]["selector"]["matchLabels"],
            dep["spec"]["template"]["metadata"]["labels"],
        ):
            labels.pop("track")
        container(dep, "gateway")  # exists
        for item in pod_spec(dep)["containers"]:
            item.pop("env", None)
    assert stable == canary


# --- selectors, ports, policies ---------------------------------------------------------------


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] == "In", "only In is used here"
        if labels.get(expression["key"]) not in expression["values"]:
            return False
    return True


def pods(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return objects(docs, "Deployment")


def test_service_selectors_and_target_ports_match_pods(docs):
    for service in objects(docs, "Service"):
        selected = [
            d for d in pods(docs)
            if selects({"matchLabels": service["spec"]["selector"]}, d["spec"]["template"]["metadata"]["labels"])
        ]  # fmt: skip
        assert selected, f"Service {service['metadata']['name']} selects no pod"
        for dep in selected:
            assert selects(dep["spec"]["selector"], dep["spec"]["template"]["metadata"]["labels"])
            first = pod_spec(dep)["containers"][0]["name"]
            for port in service["spec"]["ports"]:
                container_port(dep, first, port["targetPort"])


def test_gateway_reaches_tfserving_where_its_settings_say(docs):
    target = pod_env(docs, deployment(docs, "gateway"), "gateway")["DRG_TFSERVING_TARGET"]
    # dns:///<service>.<namespace>.svc.cluster.local:<port> on a headless Service: gRPC gets
    # every pod's address and round_robin spreads the calls (a ClusterIP pins one pod).
    match = re.fullmatch(r"dns:///([a-z0-9-]+)\.([a-z0-9-]+)\.svc\.cluster\.local:(\d+)", target)
    assert match, target
    host, namespace, port = match.groups()
    service = one(docs, "Service", host)
    assert service["spec"].get("clusterIP") == "None", "round_robin needs a headless Service"
    assert (
        namespace
        == service["metadata"]["namespace"]
        == deployment(docs, "gateway")["metadata"]["namespace"]
    )
    service_port = next(p for p in service["spec"]["ports"] if p["port"] == int(port))
    grpc = container_port(deployment(docs, "tfserving"), "tfserving", service_port["targetPort"])
    assert f"--port={grpc}" in container(deployment(docs, "tfserving"), "tfserving")["args"]


def test_pdbs_hpas_and_network_policies_point_at_real_pods(docs):
    for pdb in objects(docs, "PodDisruptionBudget"):
        assert any(
            selects(pdb["spec"]["selector"], d["spec"]["template"]["metadata"]["labels"])
            for d in pods(docs)
        )
    for hpa in objects(docs, "HorizontalPodAutoscaler"):
        ref = hpa["spec"]["scaleTargetRef"]
        assert ref["kind"] == "Deployment"
        assert "replicas" not in deployment(docs, ref["name"])["spec"], "the HPA owns replicas"
    policies = {p["metadata"]["name"]: p for p in objects(docs, "NetworkPolicy")}
    deny = policies["default-deny"]["spec"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny and "egress" not in deny
    for policy in policies.values():
        targets = [
            d
            for d in pods(docs)
            if selects(policy["spec"]["podSelector"], d["spec"]["template"]["metadata"]["labels"])
        ]
        assert targets, f"NetworkPolicy {policy['metadata']['name']} selects no pod"
        for rule in policy["spec"].get("ingress", []):
            for port in rule.get("ports", []):
                for dep in targets:
                    container_port(dep, pod_spec(dep)["containers"][0]["name"], port["port"])
    # gateway -> tfserving only (plus DNS), and only the gateway may call tfserving's gRPC port.
    gateway_egress = policies["gateway"]["spec"]["egress"]
    assert [r["to"][0]["podSelector"]["matchLabels"] for r in gateway_egress] == [
        {"app.kubernetes.io/name": "tfserving"}
    ]
    assert [
        r["from"][0]["podSelector"]["matchLabels"] for r in policies["tfserving"]["spec"]["ingress"]
    ] == [{"app.kubernetes.io/name": "gateway"}]


def test_pod_security_is_restricted(docs):
    namespace = objects(docs, "Namespace")[0]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for dep in pods(docs):
        spec = pod_spec(dep)
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        assert spec["automountServiceAccountToken"] is False
        for item in spec["containers"] + spec.get("initContainers", []):
            context = item["securityContext"]
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]
            assert {"cpu", "memory"} <= set(item["resources"]["limits"])
        keys = [c["topologyKey"] for c in spec["topologySpreadConstraints"]]
        assert keys == ["topology.kubernetes.io/zone", "kubernetes.io/hostname"]


# --- autoscaling metrics and scraping ---------------------------------------------------------


@pytest.fixture(scope="session")
def metric_families(gateway_metrics: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(gateway_metrics)}


@pytest.fixture(scope="session")
def adapter_rules() -> dict[str, Any]:
    return dict(
        yaml.safe_load(
            (REPO_ROOT / "k8s" / "cluster" / "prometheus-adapter-values.yaml").read_text()
        )["rules"]
    )


def adapter_metric_name(rule: dict[str, Any]) -> tuple[str, str]:
    """(series name in Prometheus, metric name the adapter serves), as prometheus-adapter derives it."""
    series = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)\{", rule["seriesQuery"])
    assert series, rule["seriesQuery"]
    go_template = rule["name"]["as"]
    python_template = re.sub(r"\$\{(\d+)\}", r"\\g<\1>", go_template)
    served = re.sub(rule["name"]["matches"], python_template, series[1])
    return series[1], served


def test_hpa_custom_metrics_exist_in_the_gateway_metrics(rendered, adapter_rules, metric_families):
    docs = rendered["eks"]
    gateway_hpa = one(docs, "HorizontalPodAutoscaler", "gateway")
    pods_metrics = [
        m["pods"]["metric"]["name"] for m in gateway_hpa["spec"]["metrics"] if m["type"] == "Pods"
    ]
    served_pods = {adapter_metric_name(r): r for r in adapter_rules["custom"]}
    for name in pods_metrics:
        (series, _), rule = next(
            ((k, r) for k, r in served_pods.items() if k[1] == name), ((None, None), None)
        )
        assert rule is not None, f"no prometheus-adapter rule serves {name}"
        assert series in metric_families and metric_families[series].type == "gauge"
    tfserving_hpa = one(docs, "HorizontalPodAutoscaler", "tfserving")
    external = [
        m["external"]["metric"]["name"]
        for m in tfserving_hpa["spec"]["metrics"]
        if m["type"] == "External"
    ]
    served_external = {adapter_metric_name(r)[1]: r for r in adapter_rules["external"]}
    for name in external:
        rule = served_external[name]
        used = set(re.findall(r"\b(drg_[a-z_]+)\b", rule["metricsQuery"] + rule["seriesQuery"]))
        assert used and used <= set(metric_families), (
            f"{name} uses unknown series {used - set(metric_families)}"
        )
    assert pods_metrics == ["drg_http_requests_in_flight"] and external
    # The local overlay (no adapter) must not ask for them.
    for hpa in objects(rendered["local"], "HorizontalPodAutoscaler"):
        assert [m["type"] for m in hpa["spec"]["metrics"]] == ["Resource"]


def test_in_flight_gauge_counts_the_scrape_itself(metric_families, adapter_rules):
    # Why the adapter rule subtracts 1: an idle gateway reports 1 request in flight, the scrape.
    samples = metric_families["drg_http_requests_in_flight"].samples
    assert [s.value for s in samples] == [1.0]
    rule = next(
        r for r in adapter_rules["custom"] if "drg_http_requests_in_flight" in r["seriesQuery"]
    )
    assert "- 1" in rule["metricsQuery"]


def test_podmonitors_scrape_real_paths_and_copy_the_track_label(rendered, gateway_routes):
    docs = rendered["eks"]
    monitors = {m["metadata"]["name"]: m for m in objects(docs, "PodMonitor")}
    gateway_monitor = monitors["gateway"]["spec"]
    for endpoint in gateway_monitor["podMetricsEndpoints"]:
        assert "GET" in gateway_routes[endpoint["path"]]
    for name in ("gateway", "gateway-canary"):
        dep = deployment(docs, name)
        assert selects(gateway_monitor["selector"], dep["spec"]["template"]["metadata"]["labels"])
        for endpoint in gateway_monitor["podMetricsEndpoints"]:
            container_port(dep, "gateway", endpoint["port"])
        for label in gateway_monitor["podTargetLabels"]:
            assert label in dep["spec"]["template"]["metadata"]["labels"]
    tfserving = deployment(docs, "tfserving")
    monitoring = mounted_file(
        tfserving, "tfserving", flags(tfserving)["monitoring_config_file"], docs
    )
    config = parse_monitoring(monitoring)
    assert config.prometheus_config.enable
    endpoint = monitors["tfserving"]["spec"]["podMetricsEndpoints"][0]
    assert endpoint["path"] == config.prometheus_config.path == "/monitoring/prometheus/metrics"
    assert container_port(tfserving, "tfserving", endpoint["port"]) == int(
        flags(tfserving)["rest_api_port"]
    )


def test_ingress_serves_the_gateway_but_not_its_metrics(rendered):
    for name in ("eks", "eks-gpu"):
        ingress = one(rendered[name], "Ingress", "gateway")
        paths = {
            p["path"]: p["backend"]["service"] for p in ingress["spec"]["rules"][0]["http"]["paths"]
        }
        assert paths["/"]["name"] == "gateway"
        assert paths["/metrics"]["port"]["name"] == "use-annotation"
        action = ingress["metadata"]["annotations"][
            "alb.ingress.kubernetes.io/actions." + paths["/metrics"]["name"]
        ]
        assert '"statusCode":"404"' in action
        annotations = ingress["metadata"]["annotations"]
        assert annotations["alb.ingress.kubernetes.io/listen-ports"] == '[{"HTTPS": 443}]'
        assert annotations["alb.ingress.kubernetes.io/certificate-arn"].startswith("arn:aws:acm:")
        assert ingress["spec"]["tls"][0]["hosts"] == [ingress["spec"]["rules"][0]["host"]]
        service = one(rendered[name], "Service", "gateway")
        assert paths["/"]["port"]["name"] in [p["name"] for p in service["spec"]["ports"]]


# --- TF Serving: flags, mounted configs, models.config, model sync ----------------------------


def _proto_class(message: str, fields: list[tuple[str, int, int, int, str]]) -> Any:
    """A message class built from field specs (name, number, label, type, type_name)."""
    pool = descriptor_pool.DescriptorPool()
    for dependency in ("google/protobuf/wrappers.proto",):
        from google.protobuf import wrappers_pb2

        proto = descriptor_pb2.FileDescriptorProto()
        wrappers_pb2.DESCRIPTOR.CopyToProto(proto)
        pool.Add(proto)
        assert proto.name == dependency
    file = descriptor_pb2.FileDescriptorProto(
        name=f"{message.lower()}.proto", package="tensorflow.serving", syntax="proto3",
        dependency=["google/protobuf/wrappers.proto"],
    )  # fmt: skip
    if message == "MonitoringConfig":
        prometheus = file.message_type.add(name="PrometheusConfig")
        prometheus.field.add(name="enable", number=1, label=1, type=8)
        prometheus.field.add(name="path", number=2, label=1, type=9)
    body = file.message_type.add(name=message)
    for name, number, label, kind, type_name in fields:
        field = body.field.add(name=name, number=number, label=label, type=kind)
        if type_name:
            field.type_name = type_name
    pool.Add(file)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName(f"tensorflow.serving.{message}")
    )


# tensorflow_serving/config/monitoring_config.proto and the BatchingParameters message of
# tensorflow_serving/servables/tensorflow/session_bundle_config.proto (fields 1-7); neither is
# shipped in tensorflow-serving-api's wheel, so they are declared here from the upstream protos.
_INT64 = ".google.protobuf.Int64Value"
MonitoringConfig = _proto_class(
    "MonitoringConfig", [("prometheus_config", 1, 1, 11, ".tensorflow.serving.PrometheusConfig")]
)
BatchingParameters = _proto_class(
    "BatchingParameters",
    [
        ("max_batch_size", 1, 1, 11, _INT64),
        ("batch_timeout_micros", 2, 1, 11, _INT64),
        ("max_enqueued_batches", 3, 1, 11, _INT64),
        ("num_batch_threads", 4, 1, 11, _INT64),
        ("thread_pool_name", 5, 1, 11, ".google.protobuf.StringValue"),
        ("allowed_batch_sizes", 6, 3, 3, ""),
        ("pad_variable_length_inputs", 7, 1, 8, ""),
    ],
)


def parse_monitoring(text: str) -> Any:
    return text_format.Parse(text, MonitoringConfig())


def cpu_cores(quantity: str) -> float:
    return float(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def test_tfserving_flags_are_known_and_their_files_are_mounted(docs):
    tfserving = deployment(docs, "tfserving")
    given = flags(tfserving)
    assert set(given) <= TFSERVING_FLAGS, f"unknown flags {set(given) - TFSERVING_FLAGS}"
    assert given["enable_model_warmup"] == "true" and given["enable_batching"] == "true"
    for flag in FILE_FLAGS:
        assert mounted_file(tfserving, "tfserving", given[flag], docs).strip()
    probe_port = container_port(tfserving, "tfserving", "http")
    assert probe_port == int(given["rest_api_port"]) and int(given["port"]) == container_port(
        tfserving, "tfserving", "grpc"
    )


def test_models_config_parses_and_fits_the_mounts_and_probes(docs):
    tfserving = deployment(docs, "tfserving")
    text = mounted_file(tfserving, "tfserving", flags(tfserving)["model_config_file"], docs)
    state = models_config.parse(text)  # tensorflow-serving-api's ModelServerConfig
    from tensorflow_serving.config import model_server_config_pb2

    config = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
    model = config.model_config_list.config[0]
    mounts = {m["mountPath"]: m["name"] for m in container(tfserving, "tfserving")["volumeMounts"]}
    assert any(
        model.base_path.startswith(path + "/") and name == "models" for path, name in mounts.items()
    )
    assert state.stable >= 1 and set(model.version_labels) == {"stable", "canary"}
    item = container(tfserving, "tfserving")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        path = item[probe]["httpGet"]["path"]
        match = re.fullmatch(r"/v1/models/([^/]+)(?:/labels/([^/]+)|/versions/(\d+))?", path)
        assert match, f"{probe} {path} is not a TF Serving model status URL"
        assert match[1] == model.name
        assert match[2] in (None, *model.version_labels)
    gateway_env = pod_env(docs, deployment(docs, "gateway"), "gateway")
    assert gateway_env["DRG_MODEL_NAME"] == model.name
    assert gateway_env["DRG_MODEL_LABEL"] in model.version_labels


def test_batching_parameters_fit_the_hardware(docs):
    tfserving = deployment(docs, "tfserving")
    params = text_format.Parse(
        mounted_file(tfserving, "tfserving", flags(tfserving)["batching_parameters_file"], docs),
        BatchingParameters(),
    )
    sizes = list(params.allowed_batch_sizes)
    assert sizes == sorted(set(sizes)) and sizes[-1] == params.max_batch_size.value
    cores = cpu_cores(container(tfserving, "tfserving")["resources"]["limits"]["cpu"])
    assert params.num_batch_threads.value == cores
    assert int(flags(tfserving)["tensorflow_intra_op_parallelism"]) == cores
    gpu = "nvidia.com/gpu" in container(tfserving, "tfserving")["resources"]["limits"]
    assert (params.max_batch_size.value >= 16) == gpu, "GPU profile only on GPU pods"
    assert container(tfserving, "tfserving")["image"].endswith("-gpu") == gpu


def test_a_wrong_batching_field_would_not_parse():
    with pytest.raises(text_format.ParseError):
        text_format.Parse(
            "max_batch_size { value: 8 }\nbatch_timeout_millis { value: 2 }", BatchingParameters()
        )


def test_tfserving_and_protos_share_one_release():
    requirements = (REPO_ROOT / "requirements.txt").read_text()
    api = re.search(r"^tensorflow-serving-api==(\S+)$", requirements, re.M)
    tf = re.search(r"^tensorflow==(\S+)$", requirements, re.M)
    assert api and tf and api[1] == tf[1]
    for path in [*(REPO_ROOT / "k8s").rglob("*.yaml"), REPO_ROOT / "docker-compose.yml"]:
        for tag in re.findall(r"image:\s*tensorflow/serving:(\S+)", path.read_text()):
            assert tag in (api[1], f"{api[1]}-gpu"), f"{path}: tensorflow/serving:{tag}"


# --- images --------------------------------------------------------------------------------


def dockerfile_stages(text: str) -> list[dict[str, Any]]:
    """Stages with their instructions (continuation lines joined)."""
    stages: list[dict[str, Any]] = []
    for raw in re.sub(r"\\\n", " ", text).splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, rest = line.partition(" ")
        if instruction.upper() == "FROM":
            parts = rest.split()
            stages.append({"name": parts[-1] if len(parts) == 3 else None, "lines": []})
        elif stages:
            stages[-1]["lines"].append((instruction.upper(), rest))
    return stages


def test_gateway_image_final_stage_has_no_tensorflow_and_runs_as_the_manifests_expect(rendered):
    text = (REPO_ROOT / "Dockerfile.gateway").read_text()
    stages = dockerfile_stages(text)
    final = stages[-1]["lines"]
    copies = [rest for kind, rest in final if kind == "COPY"]
    from_stages = sorted(c.split()[0] for c in copies if c.startswith("--from="))
    assert from_stages == ["--from=deps", "--from=protos"]
    assert any(c == "--from=protos /opt/lean-protos /opt/lean-protos" for c in copies)
    assert not any(
        "pip install" in rest and "tensorflow" in rest for kind, rest in final if kind == "RUN"
    )
    gateway_requirements = (REPO_ROOT / "requirements-gateway.txt").read_text()
    assert not re.search(r"^tensorflow", gateway_requirements, re.M)
    # The protos stage takes exactly the two pins from requirements.txt (its grep pattern).
    pattern = re.search(r"grep -E '([^']+)'", text)
    assert pattern
    pins = re.findall(pattern[1], (REPO_ROOT / "requirements.txt").read_text(), re.M)
    assert len(pins) == 2
    user = [rest for kind, rest in final if kind == "USER"]
    env = " ".join(rest for kind, rest in final if kind == "ENV")
    assert user == ["10001:10001"] and "DRG_PORT=8080" in env and "DRG_HOST=0.0.0.0" in env
    assert [rest for kind, rest in final if kind == "ENTRYPOINT"] == ['["python", "-m", "gateway"]']
    assert any(kind == "HEALTHCHECK" and "/livez" in rest for kind, rest in final)
    for name in ("gateway", "gateway-canary"):
        dep = deployment(rendered["eks"], name)
        assert pod_spec(dep)["securityContext"]["runAsUser"] == 10001
        assert container_port(dep, "gateway", "http") == 8080


def test_compose_uses_only_settings_fields():
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    fields = {f"DRG_{name.upper()}" for name in Settings.model_fields}
    for service in compose["services"].values():
        assert set(service.get("environment", {})) <= fields
    args = compose["services"]["tfserving"]["command"]
    assert {a.split("=")[0].lstrip("-") for a in args} <= TFSERVING_FLAGS


def test_model_sync_script_fetches_exactly_the_configured_versions(rendered, tmp_path):
    docs = rendered["eks"]
    tfserving = deployment(docs, "tfserving")
    sync = container(tfserving, "model-sync", init=True)
    env = {e["name"]: e["value"] for e in sync["env"]}
    script_path = sync["command"][1]
    script = mounted_file(tfserving, "model-sync", script_path, docs)
    mounts = {m["name"]: m["mountPath"] for m in sync["volumeMounts"]}
    assert env["MODEL_ROOT"] == mounts["models"]
    assert env["MODEL_S3_URI"].startswith("s3://") and env["MODEL_S3_URI"].endswith(
        "/" + env["MODEL_NAME"]
    )
    model_config = mounted_file(tfserving, "model-sync", env["MODELS_CONFIG"], docs)
    assert model_config == mounted_file(
        tfserving, "tfserving", flags(tfserving)["model_config_file"], docs
    )

    for text, expected in [
        (model_config, models_config.parse(model_config).versions),
        (models_config.build(models_config.ReleaseState(3, 12)), [3, 12]),
        ('model_config_list { config { name: "dr_grader" base_path: "/models/dr_grader" '
         'model_platform: "tensorflow" model_version_policy { specific { versions: 5 versions: 6 } } '
         'version_labels { key: "stable" value: 5 } version_labels { key: "canary" value: 6 } } }',
         [5, 6]),
    ]:  # fmt: skip
        assert models_config.parse(text).versions == expected
        fetched = run_sync(tmp_path, script, text, env, missing=set())
        assert fetched == [str(v) for v in expected]
    with pytest.raises(AssertionError, match=r"lists no saved_model\.pb"):
        run_sync(tmp_path, script, model_config, env, missing={"1"})


def run_sync(
    tmp_path: Path, script: str, config: str, env: dict[str, str], missing: set[str]
) -> list[str]:
    """Run the init container's script with a fake ``aws`` that copies a version directory."""
    import subprocess

    work = tmp_path / "sync"
    if work.exists():
        import shutil

        shutil.rmtree(work)
    (work / "bin").mkdir(parents=True)
    log = work / "aws.log"
    (work / "bin" / "aws").write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> {log}\n'
        'target="$6"; version=$(basename "$target")\n'
        'mkdir -p "$target"\n'
        f'case " {" ".join(missing)} " in *" $version "*) ;; *) : > "$target/saved_model.pb" ;; esac\n'
        # The release writes MANIFEST.sha256 (deploy/manifest.py); the script checks it.
        'echo "$version" > "$target/fingerprint.pb"\n'
        'cd "$target" && sha256sum *.pb > MANIFEST.sha256\n'
    )
    (work / "bin" / "aws").chmod(0o755)
    (work / "models.config").write_text(config)
    (work / "sync-models.sh").write_text(script)
    result = subprocess.run(
        ["/bin/sh", str(work / "sync-models.sh")],
        env={
            "PATH": f"{work / 'bin'}:/usr/bin:/bin",
            "MODEL_S3_URI": env["MODEL_S3_URI"],
            "MODEL_NAME": env["MODEL_NAME"],
            "MODELS_CONFIG": str(work / "models.config"),
            "MODEL_ROOT": str(work / "models"),
        },
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    calls = log.read_text().splitlines()
    for call in calls:
        assert call.startswith(f"s3 sync --only-show-errors --no-progress {env['MODEL_S3_URI']}/")
    return sorted((p.name for p in (work / "models" / env["MODEL_NAME"]).iterdir()), key=int)
