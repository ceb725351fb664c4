"""Run the command line as ``python -m maestro_ml_async.cli``."""

from . import main

main()
