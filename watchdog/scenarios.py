"""The demo's scenarios (kept apart so the command line can list them cheaply)."""

SCENARIOS: dict[str, str] = {
    "bad-deploy": "a deployment whose error rate climbs past 5%: detect, roll back, verify",
    "outage": "a deployment whose health endpoint fails: P0, roll back at once",
    "latency": "a deployment with p95 above 5 s: roll back after the sustain period",
    "slow-db": "database CPU above 90%: page (warning), never roll back",
    "feature-down": "a key feature breaks: P1 page, a human acks 'fix forward', a fix ships",
    "canary": "a Vercel rolling release whose 10% canary fails 8% of requests against its "
    "base's 0.2%: caught at the first stage by the baseline comparison, the rollout aborted",
}
