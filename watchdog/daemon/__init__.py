"""The async shell: the running daemon around the pure engine (see docs/architecture.md)."""

from watchdog.daemon.lifecycle import Daemon

__all__ = ["Daemon"]
