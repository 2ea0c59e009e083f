"""The one settings class. Environment variables with prefix DRG_; nothing else reads os.environ.

Bad values stop startup with a clear message (pydantic validation).
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.store.config import (
    DEFAULT_DATABASE_URL,
    DatabaseSettings,
    check_database_settings,
)

REMOVED_VARIABLES = {
    "DRG_PACS_OUTBOX_PATH": (
        "DRG_PACS_OUTBOX_PATH is gone: results live in the store named by DRG_DATABASE_URL "
        "(default sqlite:///var/drg.sqlite3); move pending results with `python -m "
        "gateway.store import-outbox OLD_FILE`"
    ),
}
"""Variables of earlier versions, refused with what replaces them."""

MAX_MODEL_VERSION = 2**63 - 1
"""TF Serving model versions are int64: a larger number is a validation error, not a protobuf
overflow on every request."""


class Settings(BaseSettings):
    """Gateway configuration (env prefix ``DRG_``)."""

    model_config = SettingsConfigDict(env_prefix="DRG_", extra="forbid", frozen=True)

    environment: Literal["production", "development"] = "production"
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    backend: Literal["tfserving", "local"] = "tfserving"
    tfserving_target: str = "127.0.0.1:8500"
    model_name: str = Field("dr_grader", pattern=r"^[A-Za-z0-9_.-]+$")
    model_dir: Path = Path("export")
    model_version: int | None = Field(
        None, ge=1, le=MAX_MODEL_VERSION, description="pin a version; default: latest"
    )
    model_label: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]+$")
    allow_version_override: bool = True

    auth: Literal["enabled", "disabled"] = "enabled"
    api_keys_file: Path | None = None

    max_upload_bytes: int = Field(40 * 1024 * 1024, ge=1024)
    max_image_pixels: int = Field(50_000_000, ge=10_000)
    # Decode memory (fundus/budget.py). The gateway pod's limit is 1 GiB (k8s/base/gateway) and
    # the lean gateway idles near 130 MiB: 640 MiB of estimated decode working set leaves about
    # 250 MiB for request bodies, responses and allocator slack. One image may declare at most
    # 160 MiB decoded (pixels x channels x bytes per sample): a 50 M pixel 8-bit RGB photograph
    # (143 MiB) passes, the review's 7000 x 7000 16-bit RGBA PNG (374 MiB) gets 413. A request
    # (both eyes of an exam together) whose estimate exceeds the whole budget gets 413; one
    # that does not fit what is left waits in the inference queue (503 when it is full).
    max_decoded_bytes: int = Field(160 * 1024 * 1024, ge=1024 * 1024)
    decode_memory_budget_bytes: int = Field(640 * 1024 * 1024, ge=16 * 1024 * 1024)
    max_images_per_eye: int = Field(
        4, ge=1, le=8, description="photographs per eye in POST /v1/exams; more: 413"
    )
    # TF Serving refuses a Predict larger than its max_batch_size (k8s/base/tfserving/
    # batching.config: 2); an exam's photographs go in as many calls as that takes.
    max_predict_batch: int = Field(2, ge=1, le=64)
    max_concurrent_inferences: int = Field(4, ge=1)
    max_queued_inferences: int = Field(32, ge=0)
    request_timeout_s: float = Field(30.0, gt=0)
    backend_timeout_s: float = Field(10.0, gt=0)
    # Tries per backend call on gRPC UNAVAILABLE, and the first pause: RetryPolicy
    # (gateway/backends/retry.py) documents the whole policy.
    backend_retry_attempts: int = Field(3, ge=1, le=10)
    backend_retry_backoff_s: float = Field(0.05, ge=0)
    readiness_cache_s: float = Field(2.0, ge=0)
    shutdown_grace_s: float = Field(
        35.0, ge=0, description="drain after SIGTERM; must exceed request_timeout_s"
    )
    # HTTP connection limits (gateway/http_limits.py; issue 14 findings 3 and 5).
    max_header_bytes: int = Field(32 * 1024, ge=1024, le=1024 * 1024)
    max_header_count: int = Field(100, ge=8, le=1000)
    header_read_timeout_s: float = Field(10.0, gt=0)
    keep_alive_timeout_s: int = Field(
        65, ge=1, description="longer than the ALB's 60 s idle timeout (no 502 on reuse)"
    )
    body_read_timeout_s: float = Field(
        20.0,
        gt=0,
        description="a request body must arrive within this (capped by request_timeout_s)",
    )
    max_connections: int = Field(1000, ge=1)
    metrics_port: int | None = Field(
        None, ge=1, le=65535, description="serve /metrics here only (not on port)"
    )
    docs_enabled: bool | None = Field(None, description="/docs; default: development only")
    heatmap_opacity: float = Field(0.45, ge=0.0, le=1.0)

    # PACS round trip (gateway/pacs, docs/pacs.md): off unless enabled.
    pacs_enabled: bool = False
    pacs_stow_url: str | None = Field(None, pattern=r"^https?://\S+$")
    pacs_auth: Literal["none", "basic", "bearer"] = "none"
    pacs_username: str | None = None
    pacs_password_file: Path | None = None
    pacs_token_file: Path | None = None
    pacs_ca_file: Path | None = None
    pacs_timeout_s: float = Field(30.0, gt=0)
    pacs_retry_initial_s: float = Field(2.0, gt=0)
    pacs_retry_max_s: float = Field(300.0, gt=0)
    pacs_max_parts: int = Field(
        20, ge=1, le=1000, description="instances per STOW-RS request; more: 413 too_many_parts"
    )
    # Delivery by several replicas (gateway/pacs/worker.py): a claimed SR is leased for this
    # long (more than one STOW-RS call may take); every replica looks for due work this often.
    pacs_lease_s: float = Field(120.0, gt=0)
    pacs_poll_s: float = Field(15.0, gt=0)
    # A study's SR waits this long after its latest instance (docs/pacs.md "One result per
    # study"): instances of the study sent in later requests within it join the same SR.
    pacs_study_settle_s: float = Field(30.0, ge=0, le=3600)

    # The results store (gateway/store, docs/pacs.md "What is stored"): SQLite embedded (one
    # process, upgrades itself) or PostgreSQL (several replicas; `python -m gateway.store
    # upgrade` first). The password never sits in the URL: it is read from a file.
    database_url: str = DEFAULT_DATABASE_URL
    database_password_file: Path | None = None
    database_sslmode: (
        Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] | None
    ) = None
    database_sslrootcert: Path | None = None
    database_connect_timeout_s: float = Field(5.0, gt=0)
    results_retention_days: float = Field(
        30.0, gt=0, description="delivered results older than this are deleted"
    )

    @model_validator(mode="before")
    @classmethod
    def _refuse_unknown_variables(cls, data: Any) -> Any:
        """A misspelt DRG_ variable would silently fall back to a default: refuse it."""
        removed = [message for name, message in REMOVED_VARIABLES.items() if name in os.environ]
        if removed:
            raise ValueError("; ".join(removed))
        known = {f"DRG_{name.upper()}" for name in cls.model_fields}
        unknown = sorted(k for k in os.environ if k.startswith("DRG_") and k.upper() not in known)
        if unknown:
            raise ValueError(f"unknown settings variables: {', '.join(unknown)}")
        return data

    @model_validator(mode="after")
    def _check_auth(self) -> Settings:
        if self.auth == "enabled" and self.api_keys_file is None:
            raise ValueError("DRG_AUTH=enabled needs DRG_API_KEYS_FILE (see gateway/auth.py)")
        if self.auth == "disabled" and self.environment == "production":
            raise ValueError(
                "DRG_AUTH=disabled is only allowed with DRG_ENVIRONMENT=development (the demo)"
            )
        if self.auth == "disabled" and not self.binds_loopback_only:
            raise ValueError("DRG_AUTH=disabled is only allowed on a loopback DRG_HOST")
        if self.api_keys_file is not None and not self.api_keys_file.is_file():
            raise ValueError(f"DRG_API_KEYS_FILE {self.api_keys_file} does not exist")
        return self

    @model_validator(mode="after")
    def _check_timeouts(self) -> Settings:
        # The drain must outlive the longest request, or SIGTERM cuts requests off mid-way.
        if self.shutdown_grace_s <= self.request_timeout_s:
            raise ValueError(
                f"DRG_SHUTDOWN_GRACE_S ({self.shutdown_grace_s}) must be greater than "
                f"DRG_REQUEST_TIMEOUT_S ({self.request_timeout_s})"
            )
        if self.metrics_port is not None and self.metrics_port == self.port:
            raise ValueError("DRG_METRICS_PORT must differ from DRG_PORT")
        return self

    @property
    def docs_served(self) -> bool:
        """Whether /docs is served (the OpenAPI JSON always is)."""
        if self.docs_enabled is None:
            return self.environment == "development"
        return self.docs_enabled

    @model_validator(mode="after")
    def _check_pacs(self) -> Settings:
        if self.pacs_stow_url and "@" in self.pacs_stow_url.split("/", 3)[2]:
            raise ValueError(
                "DRG_PACS_STOW_URL must not carry credentials (they would be logged): use "
                "DRG_PACS_AUTH with DRG_PACS_USERNAME/DRG_PACS_PASSWORD_FILE or DRG_PACS_TOKEN_FILE"
            )
        if self.pacs_auth != "none" and self.pacs_stow_url is None:
            raise ValueError("DRG_PACS_AUTH needs DRG_PACS_STOW_URL")
        if self.pacs_auth == "basic" and (
            self.pacs_username is None or self.pacs_password_file is None
        ):
            raise ValueError(
                "DRG_PACS_AUTH=basic needs DRG_PACS_USERNAME and DRG_PACS_PASSWORD_FILE"
            )
        if self.pacs_auth == "bearer" and self.pacs_token_file is None:
            raise ValueError("DRG_PACS_AUTH=bearer needs DRG_PACS_TOKEN_FILE")
        for name in ("pacs_password_file", "pacs_token_file", "pacs_ca_file"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise ValueError(f"DRG_{name.upper()} {path} does not exist")
        if self.pacs_retry_max_s < self.pacs_retry_initial_s:
            raise ValueError("DRG_PACS_RETRY_MAX_S must be >= DRG_PACS_RETRY_INITIAL_S")
        if self.pacs_lease_s <= self.pacs_timeout_s:
            raise ValueError(
                "DRG_PACS_LEASE_S must exceed DRG_PACS_TIMEOUT_S (a lease that ends while its SR "
                "is still being sent lets another replica send it too)"
            )
        return self

    @model_validator(mode="after")
    def _check_database(self) -> Settings:
        check_database_settings(
            self.database_url, self.database_password_file, self.database_sslrootcert
        )
        return self

    @property
    def database(self) -> DatabaseSettings:
        """What the store needs to connect (gateway/store/config.py)."""
        return DatabaseSettings(
            url=self.database_url,
            password_file=self.database_password_file,
            sslmode=self.database_sslmode,
            sslrootcert=self.database_sslrootcert,
            connect_timeout_s=self.database_connect_timeout_s,
        )

    @property
    def binds_loopback_only(self) -> bool:
        """True when the server is unreachable from other hosts."""
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return self.host == "localhost"
