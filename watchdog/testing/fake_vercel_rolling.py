"""The rolling release of the fake Vercel project: stages, approval, abort, completion.

No I/O: :class:`FakeRollingRelease` is the state machine behind the fake's
``/v1/projects/{id}/rolling-release`` routes (:mod:`watchdog.testing.fake_vercel` serves
them). It answers in the documented shape (``{"rollingRelease": {...} | null}`` with
``state``, ``currentDeployment``, ``canaryDeployment``, ``stages``, ``activeStage``,
``nextStage``, ``advancementType``, ``startedAt``/``updatedAt`` in ms). Where Vercel's docs
are silent the fake takes a side and lets a test choose the other:

- a stage with ``requireApproval`` waits for approve-stage; a timed one advances once its
  ``duration`` has passed, read here as **seconds** (the docs say seconds and minutes);
- approve-stage with a ``nextStageIndex`` that is not the active stage's next, another
  canary, or no active rollout is a 400 ``bad_request`` (the docs name no error);
- an abort (the rollback to the base) flips ``state`` to ABORTED at once, or only when the
  rollback job succeeds (``abort_flips="after_job"``), or never (``abort_sticks``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True)
class FakeStage:
    """One configured stage: the canary's share, and whether it waits for approval."""

    percent: float
    approval: bool = False
    #: seconds before a timed stage advances (None: the final stage, or a manual one)
    duration: float | None = None


class FakeRollingRelease:
    """One project's rolling release, moved by approve-stage, time, abort and complete."""

    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now
        self.state: Literal["ACTIVE", "COMPLETE", "ABORTED"] | None = None
        self.canary: dict[str, Any] | None = None
        self.base: dict[str, Any] | None = None
        self.stages: list[FakeStage] = []
        self.manual = False
        self.active: int | None = None
        self.paused = False
        self.started_at = 0.0
        self.updated_at = 0.0
        self.stage_since = 0.0
        self.abort_flips: Literal["at_once", "after_job"] = "at_once"
        #: the rollback job succeeds but the rollout stays ACTIVE (Vercel did not stop it)
        self.abort_sticks = False
        #: called with the canary's id when the rollout completes (it serves production)
        self.on_complete: Callable[[str], None] | None = None

    # ----------------------------------------------------------------- scripting

    def start(
        self,
        canary: Mapping[str, Any],
        base: Mapping[str, Any],
        stages: list[FakeStage],
        *,
        manual: bool = False,
    ) -> None:
        """Start rolling ``canary`` out over ``base``, at the first stage."""
        now = self._now()
        self.state = "ACTIVE"
        self.canary, self.base = dict(canary), dict(base)
        self.stages = list(stages)
        self.manual = manual
        self.active = 0
        self.paused = False
        self.started_at = self.updated_at = self.stage_since = now

    def advance(self) -> None:
        """The active stage moves on (an approval, a timed advance, a human)."""
        assert self.active is not None
        self.active += 1
        self.stage_since = self.updated_at = self._now()
        if self.active == len(self.stages) - 1:
            self.state = "COMPLETE"
            if self.on_complete is not None and self.canary is not None:
                self.on_complete(self.canary["uid"])

    def aborted(self) -> None:
        if self.abort_sticks:
            return
        self.state = "ABORTED"
        self.updated_at = self._now()

    def tick(self) -> None:
        """Advance every timed stage whose duration has passed."""
        while self.state == "ACTIVE" and self.active is not None and not self.paused:
            stage = self.stages[self.active]
            if stage.approval or self.manual or stage.duration is None:
                return
            if self._now() - self.stage_since < stage.duration:
                return
            self.advance()

    # ----------------------------------------------------------------- the API

    def approve(self, body: object) -> tuple[int, str]:
        """approve-stage: (status, error message); 200 with an empty message on success."""
        if not isinstance(body, dict):
            return 400, "the body must be a JSON object"
        nxt, canary = body.get("nextStageIndex"), body.get("canaryDeploymentId")
        if isinstance(nxt, bool) or not isinstance(nxt, int) or not isinstance(canary, str):
            return 400, "nextStageIndex (number) and canaryDeploymentId (string) are required"
        if self.state != "ACTIVE" or self.active is None or self.canary is None:
            return 400, "there is no active rolling release"
        if canary != self.canary["uid"]:
            return 400, f"{canary} is not the canary of the active rolling release"
        if nxt != self.active + 1:
            return 400, f"stage {nxt} is not the next stage (the active stage is {self.active})"
        self.advance()
        return 200, ""

    def take_abort(self, to: str) -> bool:
        """A rollback request during the rollout stops it (Vercel's docs: "This stops the
        rollout and routes 100% of traffic back to that deployment")."""
        if self.state != "ACTIVE":
            return False
        if self.abort_flips == "at_once":
            self.aborted()
        return True

    def job_succeeded(self) -> None:
        if self.state == "ACTIVE" and self.abort_flips == "after_job":
            self.aborted()

    def body(self) -> dict[str, Any]:
        self.tick()
        if self.state is None or self.canary is None or self.base is None:
            return {"rollingRelease": None}
        active = self.active if self.state != "ABORTED" else None
        nxt = active + 1 if active is not None and self.state == "ACTIVE" else None
        current = self.canary if self.state == "COMPLETE" else self.base
        return {
            "rollingRelease": {
                "state": self.state,
                "substate": "PAUSED" if self.paused else None,
                "currentDeployment": _short(current),
                "canaryDeployment": _short(self.canary),
                "queuedDeploymentId": None,
                "advancementType": "manual-approval" if self.manual else "automatic",
                "stages": [self._stage(i) for i in range(len(self.stages))],
                "activeStage": self._stage(active) if active is not None else None,
                "nextStage": self._stage(nxt) if nxt is not None else None,
                "startedAt": int(self.started_at * 1000),
                "updatedAt": int(self.updated_at * 1000),
            }
        }

    def _stage(self, index: int) -> dict[str, Any]:
        stage = self.stages[index]
        final = index == len(self.stages) - 1
        return {
            "index": index,
            "isFinalStage": final,
            "targetPercentage": stage.percent,
            "requireApproval": stage.approval,
            "duration": None if final or stage.approval else stage.duration,
        }


def _short(dep: Mapping[str, Any]) -> dict[str, Any]:
    """A deployment as the rolling release shows it: no ``meta``, ``id`` not ``uid``."""
    return {
        "id": dep["uid"],
        "name": dep["name"],
        "url": dep["url"],
        "createdAt": dep["createdAt"],
        "readyState": dep["readyState"],
        "target": dep["target"],
    }
