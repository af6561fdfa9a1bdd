"""Marks this ``watchdog`` package as rollback-watchdog's.

The ``watchdog`` command (``rollback_watchdog_launcher``) looks for this module before it
imports anything else from the package: the filesystem-events library of the same import name
has no such module, so a clash is reported in one line instead of an ImportError traceback.
"""

DISTRIBUTION = "rollback-watchdog"
