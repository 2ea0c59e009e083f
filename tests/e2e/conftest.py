"""End-to-end fixtures: the tiny model, lean protos and API keys come from tests/conftest.py."""
