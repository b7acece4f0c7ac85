"""`python -m checkpointflow` is the same as `cpf`."""

from checkpointflow.cli import main

main()
