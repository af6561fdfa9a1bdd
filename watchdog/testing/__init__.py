"""Test support shipped with the package: a fake clock and fake external APIs.

The fakes are real aiohttp applications on loopback that speak the documented request and
response shapes (EXTERNAL-APIS.md), all built on one base (:mod:`watchdog.testing.server`:
recording, scripted faults, lifecycle); the test suite and ``watchdog demo`` both use them.
"""
