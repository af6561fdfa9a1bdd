"""rollback-watchdog: watch a production web app, decide by its rollback procedure, act.

The import package is named ``watchdog``, like an unrelated filesystem-events library:
install rollback-watchdog in its own virtual environment.
"""

__version__ = "0.1.0"
#: checked by the ``watchdog`` command: another project's ``__init__.py`` has no such name
__distribution__ = "rollback-watchdog"
