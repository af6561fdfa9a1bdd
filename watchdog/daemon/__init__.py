"""The long-running service: scheduler, runtime wiring, HTTP surface."""
