"""The rollback target choice (pure): DESIGN §5 "Target", tested with plain data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from watchdog.core.targeting import Deployment, choose_target

T0 = datetime(2026, 8, 1, tzinfo=UTC)


def dep(
    dep_id: str,
    hours: float,
    *,
    state: str = "READY",
    candidate: bool | None = True,
    meta: dict[str, str] | None = None,
) -> Deployment:
    return Deployment(
        id=dep_id,
        created_at=T0 + timedelta(hours=hours),
        state=state,
        target="production",
        rollback_candidate=candidate,
        meta=meta or {},
    )


CURRENT = dep("dpl_cur", 10)
HISTORY = [dep("dpl_9", 9), dep("dpl_8", 8), dep("dpl_7", 7), dep("dpl_6", 6)]


class TestChooseTarget:
    @pytest.mark.parametrize(
        ("known_bad", "healthy", "expected"),
        [
            (set(), set(), "dpl_9"),
            ({"dpl_9"}, set(), "dpl_8"),
            ({"dpl_9", "dpl_8"}, set(), "dpl_7"),
            (set(), {"dpl_7"}, "dpl_7"),
            (set(), {"dpl_7", "dpl_8"}, "dpl_8"),
            ({"dpl_7"}, {"dpl_7"}, "dpl_9"),
        ],
    )
    def test_table(self, known_bad: set[str], healthy: set[str], expected: str) -> None:
        """The newest eligible deployment wins, seen-healthy beats newer, known-bad never wins."""
        choice = choose_target(CURRENT, HISTORY, known_bad, healthy)
        assert choice.target is not None
        assert choice.target.id == expected

    def test_skips_ineligible(self) -> None:
        """Not-READY, never-production, newer-than-current and current itself are skipped."""
        cands = [
            CURRENT,
            dep("dpl_new", 11),
            dep("dpl_9", 9, state="ERROR"),
            dep("dpl_8", 8, candidate=False),
            dep("dpl_7", 7),
        ]
        choice = choose_target(CURRENT, cands, set(), set())
        assert choice.target is not None
        assert choice.target.id == "dpl_7"

    def test_no_target(self) -> None:
        """With nothing older that served production, the choice is refused as no_target."""
        choice = choose_target(CURRENT, [dep("dpl_new", 11)], set(), set())
        assert choice.target is None
        assert choice.refused_by == "no_target"

    def test_all_known_bad(self) -> None:
        """When every candidate is known bad the refusal lists them."""
        choice = choose_target(CURRENT, HISTORY, {d.id for d in HISTORY}, set())
        assert choice.target is None
        assert choice.refused_by == "no_target"
        assert "dpl_9" in choice.reason

    def test_current_carries_migration(self) -> None:
        """A live deployment with a migration marker is never rolled back past."""
        current = dep("dpl_cur", 10, meta={"dbMigration": "20260801_add_col"})
        choice = choose_target(current, HISTORY, set(), set(), migration_key="dbMigration")
        assert choice.target is None
        assert choice.refused_by == "migration"
        assert "dpl_cur" in choice.reason

    def test_does_not_cross_migration(self) -> None:
        """Rolling back to the migration deployment is fine; past it is not."""
        history = [dep("dpl_9", 9), dep("dpl_8", 8, meta={"dbMigration": "yes"}), dep("dpl_7", 7)]
        ok = choose_target(CURRENT, history, {"dpl_9"}, set(), migration_key="dbMigration")
        assert ok.target is not None
        assert ok.target.id == "dpl_8"
        blocked = choose_target(
            CURRENT, history, {"dpl_9", "dpl_8"}, set(), migration_key="dbMigration"
        )
        assert blocked.target is None
        assert "dpl_8" in blocked.reason

    def test_migration_marker_false_is_ignored(self) -> None:
        """A marker set to "false" does not count as a migration."""
        current = dep("dpl_cur", 10, meta={"dbMigration": "false"})
        choice = choose_target(current, HISTORY, set(), set(), migration_key="dbMigration")
        assert choice.target is not None

    def test_hobby_only_previous(self) -> None:
        """On Hobby only the immediately previous deployment may be chosen."""
        ok = choose_target(CURRENT, HISTORY, set(), {"dpl_7"}, only_previous=True)
        assert ok.target is not None
        assert ok.target.id == "dpl_9"
        refused = choose_target(CURRENT, HISTORY, {"dpl_9"}, set(), only_previous=True)
        assert refused.target is None
        assert "previous" in refused.reason

    def test_excluded_gone(self) -> None:
        """A deployment that vanished (excluded) is skipped like a known-bad one."""
        choice = choose_target(CURRENT, HISTORY, set(), set(), exclude={"dpl_9"})
        assert choice.target is not None
        assert choice.target.id == "dpl_8"
