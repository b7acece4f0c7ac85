"""checkpointflow: run YAML workflows as deterministic, resumable state machines."""

__version__ = "2.0.0"
