"""The example input and command line `cpf flows --detail` suggests."""

from __future__ import annotations

from pathlib import Path

from checkpointflow.discovery import example_input, run_command


def test_example_input_fills_required_properties():
    schema = {
        "type": "object",
        "required": ["name", "count", "mode", "on", "tags", "extra"],
        "properties": {
            "name": {"type": "string"},
            "count": {"type": "integer"},
            "mode": {"enum": ["fast", "slow"]},
            "on": {"type": "boolean", "default": True},
            "tags": {"type": "array"},
            "optional": {"type": "string"},
        },
    }
    assert example_input(schema) == {
        "name": "...",
        "count": 0,
        "mode": "fast",
        "on": True,
        "tags": [],
        "extra": "...",
    }
    assert example_input(None) == {} and example_input({"type": "object"}) == {}


def test_run_command_quotes_paths_and_input():
    assert run_command(Path("/my flows/a.yaml"), None) == "cpf run -f '/my flows/a.yaml'"
    command = run_command(Path("a.yaml"), {"required": ["who"], "properties": {}})
    assert command == 'cpf run -f a.yaml --input \'{"who": "..."}\''
