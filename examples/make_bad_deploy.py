"""Regenerate examples/bad-deploy.jsonl: a deployment whose error rate climbs until rollback.

Run: python examples/make_bad_deploy.py > examples/bad-deploy.jsonl
"""

import json

lines: list[dict[str, object]] = [
    {"t": 0, "target": "web", "event": "deploy", "deployment": "dpl_1"}
]


def error_rate(t: int) -> float:
    if t < 600:
        return 0.002  # dpl_1: healthy
    if t < 900:
        return 0.02  # dpl_2: above the 1% warning line
    if t < 1020:
        return 0.08  # above the 5% rollback line
    return 0.003  # rolled back to dpl_1


for t in range(0, 1800, 30):
    if t == 600:
        lines.append({"t": t, "target": "web", "event": "deploy", "deployment": "dpl_2"})
    if t == 1020:
        lines.append(
            {"t": t, "target": "web", "event": "deploy", "deployment": "dpl_1", "rollback": True}
        )
    lines.append({"t": t, "target": "web", "signal": "health_up", "value": 1})
    lines.append(
        {"t": t, "target": "web", "signal": "error_rate", "value": error_rate(t), "requests": 4000}
    )
    lines.append({"t": t, "target": "web", "signal": "latency_p95_s", "value": 0.4})
    if t in (660, 690):
        # the error-rate source timed out twice: unknown, neither fires nor clears anything
        lines[-2]["value"] = None
        lines[-2]["reason"] = "provider_error"
        del lines[-2]["requests"]

for line in lines:
    print(json.dumps(line))
