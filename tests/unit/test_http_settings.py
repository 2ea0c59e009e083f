"""Settings of the HTTP connection limits (issue 14, findings 3, 5, 12): refusals at startup."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gateway.settings import Settings

DEV = {"auth": "disabled", "environment": "development"}


def test_the_drain_must_outlive_the_request_timeout():
    with pytest.raises(ValidationError, match="DRG_SHUTDOWN_GRACE_S"):
        Settings(**DEV, request_timeout_s=30, shutdown_grace_s=25)
    with pytest.raises(ValidationError, match="DRG_SHUTDOWN_GRACE_S"):
        Settings(**DEV, request_timeout_s=30, shutdown_grace_s=30)
    assert Settings(**DEV, request_timeout_s=30, shutdown_grace_s=31).shutdown_grace_s == 31


def test_production_defaults_fit_the_alb():
    settings = Settings(**DEV)
    assert settings.keep_alive_timeout_s > 60  # the ALB's idle timeout (k8s/overlays/eks)
    assert settings.shutdown_grace_s > settings.request_timeout_s
    assert 16 * 1024 <= settings.max_header_bytes <= 64 * 1024


def test_metrics_port_must_differ_from_the_api_port():
    with pytest.raises(ValidationError, match="DRG_METRICS_PORT"):
        Settings(**DEV, port=8080, metrics_port=8080)


def test_docs_default_to_development_only():
    assert Settings(**DEV).docs_served
    assert not Settings(**DEV, docs_enabled=False).docs_served
