"""Editor support: the JSON Schema of workflow files shipped with the package, and the
`# yaml-language-server: $schema=...` line that points editors at it.

Editors that speak the YAML language server (VS Code's YAML extension, Neovim, Helix,
JetBrains IDEs) then complete step fields by kind and mark mistakes as they are typed.
`cpf init` writes the line; `cpf schema` prints the schema, or writes it to a file for
editors configured by file pattern.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from checkpointflow import envelope, store

SCHEMA_FILE = "checkpointflow.schema.json"
MODELINE = "# yaml-language-server: $schema="


def _resource() -> Any:
    from importlib import resources

    return resources.files("checkpointflow.schemas").joinpath(SCHEMA_FILE)


def schema_text() -> str:
    """The schema as shipped: one JSON object."""
    return str(_resource().read_text(encoding="utf-8"))


def schema_path() -> Path | None:
    """Where the installed schema lies on disk, if it is a plain file there."""
    path = Path(str(_resource()))
    return path.resolve() if path.is_file() else None


def starter_workflow() -> bytes:
    """The `cpf init` template, headed by the line that gives editors its schema."""
    from importlib import resources

    template = resources.files("checkpointflow").joinpath("templates/workflow.yaml").read_bytes()
    path = schema_path()
    return (f"{MODELINE}{path}\n".encode() if path else b"") + template


def write_schema(path: str) -> dict[str, Any]:
    """`cpf schema --output FILE`: the schema written to FILE (replaced if it exists)."""
    target = Path(path)
    with store.persisting(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        store.write_file_atomically(target, schema_text().encode("utf-8"))
    line = f"{MODELINE}{target.resolve()}"
    return envelope.envelope(
        "schema",
        ok=True,
        status="completed",
        exit_code=0,
        result={"file": str(target), "modeline": line},
    )
