"""rollback-watchdog: watch a production web app, decide by its rollback procedure, act.

The import package is named ``watchdog``, like an unrelated filesystem-events library:
install rollback-watchdog in its own virtual environment.
"""

__version__ = "0.1.0"
