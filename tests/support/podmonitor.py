"""The Prometheus scrape config prometheus-operator generates for a PodMonitor endpoint, for a
real Prometheus in tests.

Kubernetes service discovery is replaced by a static target that carries the same
``__meta_kubernetes_*`` labels the pod role would attach (taken from the rendered Deployment);
the relabelings are the operator's, in its order (pkg/prometheus/promcfg.go,
generatePodMonitorConfig: pod phase, selector, port, namespace/container/pod, podTargetLabels,
job = "<namespace>/<name>", jobLabel, endpoint), followed by the PodMonitor's own
``relabelings``. Only the fields our PodMonitors use are supported; anything else raises, so a
new field cannot be silently ignored here.
"""

from __future__ import annotations

import re
from typing import Any

SUPPORTED_ENDPOINT_FIELDS = {"port", "path", "interval", "scrapeTimeout", "relabelings"}
SUPPORTED_SPEC_FIELDS = {"selector", "podTargetLabels", "podMetricsEndpoints", "jobLabel"}
RELABEL_KEYS = {
    "sourceLabels": "source_labels",
    "separator": "separator",
    "targetLabel": "target_label",
    "regex": "regex",
    "modulus": "modulus",
    "replacement": "replacement",
    "action": "action",
}


def sanitize(name: str) -> str:
    """Label-name form of a Kubernetes label key, as the operator and Kubernetes SD write it."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


def _relabel(rule: dict[str, Any]) -> dict[str, Any]:
    """A PodMonitor RelabelConfig (camelCase) as Prometheus config (snake_case)."""
    unknown = set(rule) - set(RELABEL_KEYS)
    if unknown:
        raise ValueError(f"relabel fields not supported here: {sorted(unknown)}")
    out = {RELABEL_KEYS[key]: value for key, value in rule.items()}
    if "action" in out:
        out["action"] = str(out["action"]).lower()
    return out


def pod_container(deployment: dict[str, Any], port: str) -> dict[str, Any]:
    """The Deployment's container that declares the named port (the one the target scrapes)."""
    for container in deployment["spec"]["template"]["spec"]["containers"]:
        if any(p.get("name") == port for p in container.get("ports", [])):
            return dict(container)
    raise LookupError(f"no container of {deployment['metadata']['name']} has a port {port!r}")


def scrape_configs(
    podmonitor: dict[str, Any],
    deployment: dict[str, Any],
    address: str,
    *,
    pod_name: str | None = None,
    interval: str | None = None,
    job_name_prefix: str = "podMonitor",
) -> list[dict[str, Any]]:
    """One scrape config per PodMonitor endpoint, scraping ``address`` as if it were the pod.

    ``job_name_prefix`` only keeps scrape config names apart when one Prometheus scrapes two
    variants of the same PodMonitor; the ``job`` label does not depend on it.
    """
    spec = podmonitor["spec"]
    unknown = set(spec) - SUPPORTED_SPEC_FIELDS
    if unknown:
        raise ValueError(f"PodMonitor fields not supported here: {sorted(unknown)}")
    namespace = podmonitor["metadata"]["namespace"]
    name = podmonitor["metadata"]["name"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    pod = pod_name or f"{deployment['metadata']['name']}-7c9f8d6b54-2xkqp"
    configs = []
    for index, endpoint in enumerate(spec["podMetricsEndpoints"]):
        unknown = set(endpoint) - SUPPORTED_ENDPOINT_FIELDS
        if unknown:
            raise ValueError(f"PodMetricsEndpoint fields not supported here: {sorted(unknown)}")
        port = endpoint["port"]
        container = pod_container(deployment, port)
        meta = {
            "__meta_kubernetes_namespace": namespace,
            "__meta_kubernetes_pod_name": pod,
            "__meta_kubernetes_pod_phase": "Running",
            "__meta_kubernetes_pod_container_name": container["name"],
            "__meta_kubernetes_pod_container_port_name": port,
        }
        for key, value in pod_labels.items():
            meta[f"__meta_kubernetes_pod_label_{sanitize(key)}"] = str(value)
            meta[f"__meta_kubernetes_pod_labelpresent_{sanitize(key)}"] = "true"
        relabel: list[dict[str, Any]] = [
            {"source_labels": ["job"], "target_label": "__tmp_prometheus_job_name"},
            {
                "source_labels": ["__meta_kubernetes_pod_phase"],
                "regex": "(Failed|Succeeded)",
                "action": "drop",
            },
        ]
        for key, value in sorted(spec["selector"].get("matchLabels", {}).items()):
            relabel.append(
                {
                    "source_labels": [
                        f"__meta_kubernetes_pod_label_{sanitize(key)}",
                        f"__meta_kubernetes_pod_labelpresent_{sanitize(key)}",
                    ],
                    "regex": f"({value});true",
                    "action": "keep",
                }
            )
        relabel += [
            {
                "source_labels": ["__meta_kubernetes_pod_container_port_name"],
                "regex": port,
                "action": "keep",
            },
            {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
            {
                "source_labels": ["__meta_kubernetes_pod_container_name"],
                "target_label": "container",
            },
            {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
        ]
        for label in spec.get("podTargetLabels", []):
            relabel.append(
                {
                    "source_labels": [f"__meta_kubernetes_pod_label_{sanitize(label)}"],
                    "regex": "(.+)",
                    "replacement": "${1}",
                    "target_label": sanitize(label),
                }
            )
        relabel.append({"target_label": "job", "replacement": f"{namespace}/{name}"})
        if spec.get("jobLabel"):
            relabel.append(
                {
                    "source_labels": [f"__meta_kubernetes_pod_label_{sanitize(spec['jobLabel'])}"],
                    "regex": "(.+)",
                    "replacement": "${1}",
                    "target_label": "job",
                }
            )
        relabel.append({"target_label": "endpoint", "replacement": port})
        relabel += [_relabel(rule) for rule in endpoint.get("relabelings", [])]
        configs.append(
            {
                "job_name": f"{job_name_prefix}/{namespace}/{name}/{index}",
                "honor_labels": False,
                "metrics_path": endpoint.get("path", "/metrics"),
                "scrape_interval": interval or endpoint.get("interval", "30s"),
                "scrape_timeout": endpoint.get("scrapeTimeout", "10s")
                if interval is None
                else interval,
                "static_configs": [{"targets": [address], "labels": meta}],
                "relabel_configs": relabel,
            }
        )
    return configs
