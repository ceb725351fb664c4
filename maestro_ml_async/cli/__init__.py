"""The ``maestro-ml`` command line, built on typer and rich.

Install it with ``pip install 'maestro-ml-async[cli]'``. Every command goes
through the public `AsyncMaestroClient`. Connection settings come from the
global options, then from the same ``MAESTRO_ML_*`` and ``MLFLOW_*``
variables that the SDK reads.
"""

from __future__ import annotations

__all__ = ["main"]


def main() -> None:
    """Run the command line (the ``maestro-ml`` entry point)."""
    from ._app import run

    run()
