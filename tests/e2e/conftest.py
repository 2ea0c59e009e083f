"""End-to-end fixtures: the tiny model and API keys of the integration tests."""

from tests.integration.conftest import keys_file, lean_protos, model_root  # noqa: F401
