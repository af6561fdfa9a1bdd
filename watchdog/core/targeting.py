"""Which deployment to roll back to: the pure part of DESIGN §5 "Target".

No I/O: the deployer lists the candidates, the dispatcher passes them here with what the store
and the watchdog's own eyes know (deployments already rolled back from, deployments seen
healthy), and gets back the target or the reason there is none. Keeping this out of the
deployer means a second vendor cannot quietly choose differently, and the rule is tested with
plain data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final


@dataclass(frozen=True, slots=True)
class Deployment:
    """One deployment as the deployer sees it (Vercel: ``uid`` in lists, ``id`` elsewhere)."""

    id: str
    created_at: datetime | None = None
    state: str | None = None
    substate: str | None = None
    target: str | None = None
    url: str | None = None
    rollback_candidate: bool | None = None
    meta: Mapping[str, str] = field(default_factory=dict)
    inspector_url: str | None = None

    @property
    def commit(self) -> str | None:
        return self.meta.get("githubCommitSha") or None


@dataclass(frozen=True, slots=True)
class TargetChoice:
    """The deployment to roll back to, or why there is none (``refused_by`` names the rule)."""

    target: Deployment | None
    reason: str
    refused_by: str | None = None


@dataclass(frozen=True, slots=True)
class TargetPolicy:
    """A project's limits on the choice: a migration marker, a plan that only goes back one."""

    #: a deployment whose ``meta`` has this key (non-empty, not "false"/"0") carries a migration
    migration_key: str | None = None
    #: Hobby plans may only roll back to the immediately previous production deployment
    only_previous: bool = False

    def choose(
        self,
        current: Deployment,
        candidates: Sequence[Deployment],
        known_bad: Set[str],
        seen_healthy: Set[str],
        exclude: Set[str] = frozenset(),
    ) -> TargetChoice:
        return choose_target(
            current,
            candidates,
            known_bad,
            seen_healthy,
            migration_key=self.migration_key,
            only_previous=self.only_previous,
            exclude=exclude,
        )


_NEVER: Final = datetime.min.replace(tzinfo=UTC)


def _served_production(dep: Deployment) -> bool:
    """``isRollbackCandidate``; a row without the flag counts if its target is production."""
    if dep.rollback_candidate is None:
        return dep.target == "production"
    return dep.rollback_candidate


def _carries_migration(dep: Deployment, key: str | None) -> bool:
    if not key:
        return False
    value = dep.meta.get(key)
    return value is not None and value.strip().lower() not in ("", "false", "0", "no")


def choose_target(
    current: Deployment,
    candidates: Sequence[Deployment],
    known_bad: Set[str],
    seen_healthy: Set[str],
    *,
    migration_key: str | None = None,
    only_previous: bool = False,
    exclude: Set[str] = frozenset(),
) -> TargetChoice:
    """Pick the deployment to roll back to (DESIGN §5 "Target"), or say why there is none.

    Eligible: READY, older than ``current``, and it served production before
    (``isRollbackCandidate``; a row without the flag counts if its target is production).
    Known-bad and excluded (gone) deployments are skipped; among the rest a deployment the
    watchdog saw healthy wins over a newer unproven one.
    """
    if current.created_at is None:
        return TargetChoice(None, "the current deployment's creation time is unknown", "no_target")
    older = sorted(
        (
            c
            for c in candidates
            if c.id != current.id
            and c.created_at is not None
            and c.created_at < current.created_at
            and (c.state or "").upper() == "READY"
            and (
                c.rollback_candidate is True
                or (c.rollback_candidate is None and c.target == "production")
            )
        ),
        key=lambda c: c.created_at or _NEVER,
        reverse=True,
    )
    if not older:
        return TargetChoice(
            None, "no older READY deployment has served production", refused_by="no_target"
        )
    if only_previous:
        # Hobby plans can only go back to the immediately previous production deployment
        older = older[:1]
    allowed: list[Deployment] = []
    blocked_by: Deployment | None = current if _carries_migration(current, migration_key) else None
    if blocked_by is None:
        for cand in older:
            allowed.append(cand)
            if _carries_migration(cand, migration_key):
                # rolling back past this one would run code older than its schema migration
                blocked_by = cand
                break
    usable = [c for c in allowed if c.id not in known_bad and c.id not in exclude]
    healthy = [c for c in usable if c.id in seen_healthy]
    if healthy:
        return TargetChoice(healthy[0], f"{healthy[0].id} is the newest deployment seen healthy")
    if usable:
        return TargetChoice(usable[0], f"{usable[0].id} is the newest eligible deployment")
    if blocked_by is not None and not allowed:
        return TargetChoice(
            None,
            f"{blocked_by.id} carries a database migration ({migration_key}); rolling back past "
            "it needs a human (Method 3)",
            refused_by="migration",
        )
    skipped = ", ".join(c.id for c in allowed)
    why = "known bad or gone"
    if blocked_by is not None:
        why += f"; older ones are behind migration {blocked_by.id} ({migration_key})"
    if only_previous:
        why += "; this plan can only roll back to the previous production deployment"
    return TargetChoice(None, f"every eligible deployment ({skipped}) is {why}", "no_target")
