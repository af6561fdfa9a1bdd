"""Side effects: pages, chat, rollbacks and feature-flag switches.

One module per vendor (``vercel``, ``pagerduty``, ``alertmanager``, ``slack``, ``flags``), the
small protocols they implement in ``base``, verification in ``verify``, and the
``dispatcher`` that orders them, journals them write-ahead and owns the retries.
"""
