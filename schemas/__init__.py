"""The JSON Schemas of checkpointflow: workflow document, envelope, state and event."""
