"""Bad config input gets a one-line error naming file, field and fix: never a traceback, a
hang, an echoed secret or a silently accepted value that breaks the daemon at run time."""

from __future__ import annotations

from pathlib import Path

import pytest

from watchdog.cli import main

BASE = """\
targets:
  - name: web
    sources:
      - kind: health
        url: https://example.com/api/health
"""


def write(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def check(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["check", "--config", str(path)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


#: a secret written as a bare YAML number (or date, boolean) must not be read back to the user
NUMBER = "20260817123456789"

SECRET_FIELDS = {
    "server.api_token": f"server:\n  api_token: {NUMBER}\n",
    "heartbeat.url": f"heartbeat:\n  url: {NUMBER}\n",
    "sentry_dsn": f"sentry_dsn: {NUMBER}\n",
    "pager.routing_key": f"pager:\n  kind: pagerduty\n  routing_key: {NUMBER}\n",
    "alertmanager bearer_token": (
        f"pager:\n  kind: alertmanager\n  base_url: https://am.example.com\n"
        f"  bearer_token: {NUMBER}\n"
    ),
    "chat.webhook_url": f"chat:\n  kind: slack\n  webhook_url: {NUMBER}\n",
}
TARGET_SECRETS = {
    "deployer.token": (
        f"    deployer:\n      kind: vercel\n      token: {NUMBER}\n"
        "      project_id: prj\n      production_domain: example.com\n"
    ),
    "sentry token": (
        f"      - kind: sentry\n        org: acme\n        project: web\n        token: {NUMBER}\n"
    ),
    "supabase secret_key": (
        f"      - kind: supabase\n        project_ref: abc\n        secret_key: {NUMBER}\n"
    ),
    "flags token": (
        "    flags:\n      - kind: unleash\n        base_url: https://u.example.com\n"
        f"        token: {NUMBER}\n        features: [f]\n"
    ),
}


class TestSecretsNeverEchoed:
    @pytest.mark.parametrize("field", sorted(SECRET_FIELDS))
    def test_top_level_secret_as_number(
        self, field: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A secret given as a bare number is refused with how to write it, not its value."""
        code, out = check(write(tmp_path, BASE + SECRET_FIELDS[field]), capsys)
        assert code == 1
        assert NUMBER not in out
        assert NUMBER[:8] not in out
        assert "a secret must be text: quote it" in out

    @pytest.mark.parametrize("field", sorted(TARGET_SECRETS))
    def test_target_secret_as_number(
        self, field: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The same inside a target: deployer, sources, flags."""
        code, out = check(write(tmp_path, BASE + TARGET_SECRETS[field]), capsys)
        assert code == 1
        assert NUMBER not in out
        assert NUMBER[:8] not in out
        assert "a secret must be text" in out

    @pytest.mark.parametrize("value", ["true", "2026-08-17", "1.5", "0017", "[a, b]", "{a: 1}"])
    def test_other_yaml_types(
        self, value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Booleans, dates, floats, octals, lists and mappings are refused, never quoted."""
        code, out = check(write(tmp_path, BASE + f"server:\n  api_token: {value}\n"), capsys)
        assert code == 1
        assert "field 'server.api_token': a secret must be text" in out
        assert "(got" not in out
