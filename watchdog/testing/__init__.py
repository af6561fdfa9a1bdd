"""Test support shipped with the package: a fake clock and fake external APIs.

The fakes are real aiohttp applications on loopback that speak the documented request and
response shapes (EXTERNAL-APIS.md); the test suite and ``watchdog demo`` both use them.
"""
