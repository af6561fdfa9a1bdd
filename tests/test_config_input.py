"""Bad config input gets a one-line error naming file, field and fix: never a traceback, a
hang, an echoed secret or a silently accepted value that breaks the daemon at run time."""

from __future__ import annotations

import os
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
    @pytest.mark.parametrize("field", sorted(SECRET_FIELDS | TARGET_SECRETS))
    def test_secret_as_number(
        self, field: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A secret given as a bare number (top level, or in a target's deployer, sources
        and flags) is refused with how to write it, never with its value."""
        text = SECRET_FIELDS.get(field) or TARGET_SECRETS[field]
        code, out = check(write(tmp_path, BASE + text), capsys)
        assert code == 1
        assert NUMBER not in out
        assert NUMBER[:8] not in out
        assert "a secret must be text: quote it" in out

    @pytest.mark.parametrize("value", ["true", "2026-08-17", "1.5", "0017", "[a, b]", "{a: 1}"])
    def test_other_yaml_types(
        self, value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Booleans, dates, floats, octals, lists and mappings are refused, never quoted."""
        code, out = check(write(tmp_path, BASE + f"server:\n  api_token: {value}\n"), capsys)
        assert code == 1
        assert "field 'server.api_token': a secret must be text" in out
        assert "(got" not in out


def make_file(path: Path, content: bytes | str | None) -> Path:
    """``path`` as a file with ``content``, a FIFO (``"fifo"``), a directory (``"dir"``) or
    nothing at all (None)."""
    if content == "fifo":
        os.mkfifo(path)
    elif content == "dir":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    return path


def one_problem(out: str, *expected: str) -> None:
    """Exactly the problem lines asked for, no traceback."""
    assert "Traceback" not in out
    for text in expected:
        assert text in out, out


class TestFiles:
    """The config file (and a rule pack, read the same way) is bounded in every dimension."""

    @pytest.mark.parametrize("flag", ["--config", "--rules"])
    def test_too_big(self, flag: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A file over 1 MiB is refused before parsing (a 40 MB file used to take minutes)."""
        path = write(tmp_path, BASE + "# padding\n" * 120_000)
        code = main(["check", flag, str(path)])
        out = capsys.readouterr().err
        assert code == 1
        one_problem(out, f"{path}: file is", "bytes; at most 1048576 are read")

    @pytest.mark.timeout(10)
    @pytest.mark.parametrize("flag", ["--config", "--rules"])
    def test_fifo(self, flag: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A FIFO (nobody writing to it) is refused at once instead of blocking forever."""
        path = tmp_path / "fifo.yaml"
        os.mkfifo(path)
        assert main(["check", flag, str(path)]) == 1
        one_problem(capsys.readouterr().err, "is a FIFO, socket or device, not a regular file")

    def test_directory(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A directory is named as one."""
        assert main(["check", "--config", str(tmp_path)]) == 1
        one_problem(capsys.readouterr().err, "is a directory")

    def test_not_utf8(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """Latin-1 (or UTF-16) text says where the first bad byte is and what to do."""
        path = tmp_path / "c.yaml"
        path.write_bytes(BASE.encode() + "# café\n".encode("latin-1"))
        code, out = check(path, capsys)
        assert code == 1
        one_problem(out, "not UTF-8 text (byte 0xe9 at offset", "save it as UTF-8")

    @pytest.mark.parametrize("flag", ["--config", "--rules"])
    def test_deep_nesting(
        self, flag: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Deep nesting is a sentence, not a RecursionError."""
        path = write(tmp_path, "a: " + "[" * 5000 + "]" * 5000 + "\n")
        assert main(["check", flag, str(path)]) == 1
        one_problem(capsys.readouterr().err, ":1: nested more than 64 levels deep")

    @pytest.mark.timeout(10)
    @pytest.mark.parametrize("flag", ["--config", "--rules"])
    def test_alias_bomb(
        self, flag: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A billion laughs (nine levels of nine aliases) is refused in well under a second."""
        lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x]"]
        for i in range(1, 9):
            lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]")
        path = write(tmp_path, "\n".join(lines) + "\n")
        assert main(["check", flag, str(path)]) == 1
        one_problem(capsys.readouterr().err, "expands to more than 100000 values")

    def test_small_aliases_still_work(self, tmp_path: Path) -> None:
        """Ordinary anchors and merge keys stay usable."""
        from watchdog.config import load_settings

        text = BASE + (
            "      - &probe\n        kind: health\n        name: again\n"
            "        url: https://example.com/b\n"
            "      - <<: *probe\n        name: third\n"
        )
        assert len(load_settings(write(tmp_path, text)).targets[0].sources) == 3

    @pytest.mark.parametrize(
        ("text", "key"),
        [
            ("1: x\n" + BASE, "key 1"),
            (BASE + "on: true\n", "key on"),
            (BASE + "2026-01-01: x\n", "key 2026-01-01"),
            (BASE + "? [a, b]\n: x\n", "found unhashable key"),
        ],
    )
    def test_keys_must_be_text(
        self, text: str, key: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A number, boolean, date or collection as a key is named with how to quote it
        (a numeric top-level key used to end in a TypeError traceback)."""
        code, out = check(write(tmp_path, text), capsys)
        assert code == 1
        one_problem(out, key if "unhashable" in key else f"{key} is not text: quote it")


class TestReferences:
    """``${env:..}`` and ``${file:..}`` name something that is set, readable and not empty."""

    @pytest.mark.parametrize(
        ("value", "message"),
        [
            ("${env:}", "${env:} names no environment variable"),
            ("${file:}", "${file:} names no file"),
            ("${ env:X }", "looks like a reference but is not one"),
            ("token-${env:HOME}", "looks like a reference but is not one"),
            ("${ENV:HOME}", "looks like a reference but is not one"),
            ("${env:HOME", "looks like a reference but is not one"),
            (
                "${env:WATCHDOG_TEST_UNSET_VAR}",
                "environment variable WATCHDOG_TEST_UNSET_VAR is not set",
            ),
            (
                "${env:WATCHDOG_TEST_EMPTY_VAR}",
                "environment variable WATCHDOG_TEST_EMPTY_VAR is empty",
            ),
        ],
    )
    def test_bad_references(
        self,
        value: str,
        message: str,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """Each is an error naming the field, never a literal token or an empty secret."""
        monkeypatch.setenv("WATCHDOG_TEST_EMPTY_VAR", "  ")
        code, out = check(write(tmp_path, BASE + f"server:\n  api_token: '{value}'\n"), capsys)
        assert code == 1
        one_problem(out, "c.yaml:7: field 'server.api_token': " + message)

    @pytest.mark.timeout(10)
    @pytest.mark.parametrize(
        ("content", "message"),
        [
            (b"", "is empty: write the value into it"),
            (b"\n\n", "is empty: write the value into it"),
            (b"\xff\xfesecret", "is not UTF-8 text (byte 0xff at offset 0)"),
            (b"x" * 70_000, "bytes; at most 65536 are read"),
            (None, "secret file not found"),
            ("fifo", "is a FIFO, socket or device, not a regular file"),
            ("dir", "is a directory"),
        ],
    )
    def test_bad_secret_files(
        self,
        content: bytes | str | None,
        message: str,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """An empty, non-UTF-8, oversized, missing, FIFO or directory secret file is one
        error naming the file and the field (a FIFO used to hang start-up)."""
        secret = make_file(tmp_path / "api_token", content)
        code, out = check(
            write(tmp_path, BASE + f"server:\n  api_token: ${{file:{secret}}}\n"), capsys
        )
        assert code == 1
        one_problem(out, f"field 'server.api_token': {secret}: ", message)

    def test_crlf_secret_file(self, tmp_path: Path) -> None:
        """A secret file saved on Windows loses its CRLF, as one with LF loses its LF."""
        from watchdog.config import load_settings

        secret = tmp_path / "api_token"
        secret.write_bytes(b"the-token\r\n")
        settings = load_settings(
            write(tmp_path, BASE + f"server:\n  api_token: ${{file:{secret}}}\n")
        )
        assert settings.server.api_token is not None
        assert settings.server.api_token.get_secret_value() == "the-token"


class TestEnvironment:
    """A bad ``WATCHDOG_*`` variable is named, with what it must hold; its value is not."""

    @pytest.mark.parametrize(
        ("name", "value", "message"),
        [
            (
                "WATCHDOG_TARGETS",
                '[{"name":',
                "environment variable WATCHDOG_TARGETS: field 'targets': not valid JSON",
            ),
            (
                "WATCHDOG_TARGETS",
                '{"a": 1}',
                "environment variable WATCHDOG_TARGETS: field 'targets': Input should be a valid",
            ),
            (
                "WATCHDOG_LEADER__TTL",
                "abc",
                "environment variable WATCHDOG_LEADER__TTL: field 'leader.ttl': invalid duration",
            ),
            (
                "WATCHDOG_SERVER__PORT",
                "http",
                "environment variable WATCHDOG_SERVER__PORT: field 'server.port'",
            ),
        ],
    )
    @pytest.mark.parametrize("command", ["check", "run"])
    def test_bad_variable(
        self,
        name: str,
        value: str,
        message: str,
        command: str,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """``check`` and ``run`` both exit 1 with the variable's name (a malformed
        WATCHDOG_TARGETS used to be a SettingsError traceback)."""
        monkeypatch.setenv(name, value)
        code = main([command, "--config", str(write(tmp_path, BASE))])
        out = capsys.readouterr().err
        assert code == 1
        one_problem(out, message)


VERCEL = (
    "    deployer:\n      kind: vercel\n      token: t0k3n-abcdef\n      project_id: prj\n"
    "      production_domain: example.com\n"
)
PD = "pager:\n  kind: pagerduty\n  routing_key: k3y-abcdefgh\n"
AM = "pager:\n  kind: alertmanager\n  base_url: https://am.example.com\n"
SLACK = "chat:\n  kind: slack\n  webhook_url: https://hooks.slack.com/services/T/B/x\n"
UNLEASH = (
    "    flags:\n      - kind: unleash\n        base_url: https://u.example.com\n"
    "        token: t0k3n-abcdef\n        features: [f]\n"
)


def health(extra: str) -> str:
    return BASE.replace(
        "        url: https://example.com/api/health\n",
        f"        url: https://example.com/api/health\n{extra}",
    )


#: (kind, config text, what the one-line error says); every one of these used to be accepted,
#: crash with a traceback or hang
MALFORMED: list[tuple[str, str, str]] = [
    # URLs the daemon calls are http(s), have a host and carry no credentials
    (
        "url",
        BASE + VERCEL + "      base_url: not a url\n",
        "deployer.base_url': a URL cannot contain spaces",
    ),
    (
        "url",
        BASE + VERCEL + "      base_url: ftp://api.vercel.com\n",
        "expected an http:// or https:// URL, got 'ftp",
    ),
    (
        "url",
        BASE + VERCEL + "      base_url: https://user:pw@api.vercel.com\n",
        "do not put credentials in the URL",
    ),
    ("url", BASE + VERCEL + "      base_url: https://\n", "the URL has no host"),
    (
        "url",
        BASE + VERCEL + "      base_url: https://user:s3cr3t@api vercel.com\n",
        "a URL cannot contain spaces or control characters\n",
    ),
    ("url", BASE + VERCEL + "      base_url: https://api.vercel.com:http\n", "not a valid URL"),
    (
        "url",
        BASE + VERCEL + "      dashboard_url: vercel.com/acme\n",
        "deployer.dashboard_url': expected an http",
    ),
    ("url", BASE + PD + "  base_url: events.pagerduty.com\n", "pager.base_url': expected an http"),
    (
        "url",
        BASE + PD + "  deployment_url: vercel.com/{deployment}\n",
        "pager.deployment_url': expected an http",
    ),
    (
        "url",
        BASE + PD + "  runbook_url: 'wiki page'\n",
        "pager.runbook_url': a URL cannot contain spaces",
    ),
    (
        "url",
        BASE + AM.replace("https://am.example.com", "am:9093"),
        "pager.base_url': expected an http",
    ),
    (
        "url",
        BASE + AM + "  generator_url: /incidents/{incident}\n",
        "pager.generator_url': expected an http",
    ),
    (
        "url",
        BASE + "chat:\n  kind: slack\n  webhook_url: hooks.slack.com/services/T/B/x\n",
        "chat.webhook_url': expected an http:// or https:// URL",
    ),
    (
        "url",
        BASE + "chat:\n  kind: slack\n  webhook_url: https://u:p@hooks.slack.com/x\n",
        "chat.webhook_url': do not put credentials",
    ),
    ("url", BASE + "heartbeat:\n  url: hc-ping.com/uuid\n", "heartbeat.url': expected an http"),
    (
        "url",
        BASE + UNLEASH.replace("https://u.example.com", "u.example.com"),
        "flags[0].base_url': expected an http",
    ),
    (
        "url",
        BASE + "    verify:\n      health_url: /api/health\n",
        "verify.health_url': expected an http",
    ),
    ("url", BASE + "    runbook_url: runbook\n", "runbook_url': expected an http"),
    (
        "url",
        BASE + "server:\n  public_url: watchdog.internal\n",
        "server.public_url': expected an http",
    ),
    (
        "url",
        health("").replace("https://example.com/api/health", "https://example.com/a b"),
        "a URL cannot contain spaces",
    ),
    # periods and timeouts have a floor: 0s is a busy loop, "no timeout" or a lapsed lease
    (
        "duration",
        BASE + "scheduler:\n  tick: 0s\n",
        "scheduler.tick': 0s is too short: the chores would run in a busy loop; "
        "use at least 0.1s (and at most 366d)",
    ),
    ("duration", BASE + "scheduler:\n  tick: 10ms\n", "scheduler.tick': 0.01s is too short"),
    (
        "duration",
        BASE + "scheduler:\n  deploy_poll: 0s\n",
        "scheduler.deploy_poll': 0s is too short",
    ),
    (
        "duration",
        BASE + "leader:\n  ttl: 0s\n",
        "leader.ttl': 0s is too short: the lease would lapse before it can be renewed; "
        "use at least 1s",
    ),
    (
        "duration",
        BASE + "scheduler:\n  tick: 10s\nleader:\n  ttl: 15s\n",
        "leader.ttl (15s) must be at least twice scheduler.tick (10s)",
    ),
    ("duration", BASE + "heartbeat:\n  interval: 0s\n", "heartbeat.interval': 0s is too short"),
    (
        "duration",
        BASE + "store:\n  retention: 0s\n",
        "store.retention': 0s is too short: the audit trail would be pruned",
    ),
    (
        "duration",
        health("        timeout: 0s\n"),
        "timeout 0s is too short: every request would time out (and 0s means none at all); "
        "use at least 0.01s",
    ),
    (
        "duration",
        health("        interval: 1ms\n        timeout: 0.5ms\n"),
        "interval 0.001s is too short",
    ),
    ("duration", BASE + PD + "  request_timeout: 0s\n", "pager.request_timeout': 0s is too short"),
    ("duration", BASE + AM + "  repost_interval: 0s\n", "pager.repost_interval': 0s is too short"),
    (
        "duration",
        BASE + SLACK + "  update_interval: 1s\n",
        "chat.update_interval': 1s is too short: people would be flooded",
    ),
    (
        "duration",
        BASE + SLACK + "  request_timeout: 0s\n",
        "chat.request_timeout': 0s is too short",
    ),
    (
        "duration",
        BASE + VERCEL + "      poll_interval: 0s\n",
        "deployer.poll_interval': 0s is too short: it would poll in a busy loop",
    ),
    (
        "duration",
        BASE + VERCEL + "      job_timeout: 0s\n",
        "deployer.job_timeout': 0s is too short",
    ),
    (
        "duration",
        BASE + VERCEL + "      request_timeout: 0s\n",
        "deployer.request_timeout': 0s is too short",
    ),
    (
        "duration",
        BASE + "    verify:\n      verify_timeout: 0s\n",
        "verify.verify_timeout': 0s is too short",
    ),
    (
        "duration",
        BASE + "    verify:\n      poll_interval: 0s\n",
        "verify.poll_interval': 0s is too short",
    ),
    (
        "duration",
        BASE + UNLEASH + "        request_timeout: 0s\n",
        "flags[0].request_timeout': 0s is too short",
    ),
    (
        "duration",
        BASE + "dispatcher:\n  retry_deadline: 0s\n",
        "dispatcher.retry_deadline': 0s is too short",
    ),
    (
        "duration",
        BASE + "dispatcher:\n  update_interval: 0s\n",
        "dispatcher.update_interval': 0s is too short",
    ),
    # and a ceiling, with the range in the message; a huge number never overflows
    (
        "duration",
        BASE + "scheduler:\n  tick: 999999999d\n",
        "duration '999999999d' is too long: durations may be at most 366d",
    ),
    (
        "duration",
        BASE + "scheduler:\n  tick: " + "9" * 400 + "\n",
        "is too long: durations may be at most 366d",
    ),
    (
        "duration",
        BASE + "scheduler:\n  tick: .inf\n",
        "a duration must be a finite number of seconds",
    ),
    (
        "duration",
        BASE + "scheduler:\n  tick: -5\n",
        "a duration must be a finite number of seconds, 0 or more",
    ),
    ("duration", BASE + "scheduler:\n  tick: true\n", "not a boolean"),
    (
        "duration",
        BASE + "store:\n  retention: 400d\n",
        "is too long: durations may be at most 366d",
    ),
    # times are bounded too
    (
        "time",
        BASE + "freezes:\n  - start: 9999-12-31T00:00:00Z\n    end: 9999-12-31T23:00:00Z\n",
        "freeze times must be from 2000-01-01 to before 2100-01-01",
    ),
    (
        "time",
        BASE + "freezes:\n  - start: 0001-01-01T00:00:00Z\n    end: 0001-01-02T00:00:00Z\n",
        "freeze times must be from 2000-01-01",
    ),
    (
        "time",
        BASE + "freezes:\n  - start: 2026-01-01T00:00:00Z\n    end: 2036-01-01T00:00:00Z\n",
        "a freeze may last at most 366 days",
    ),
    # secrets are never empty
    ("secret", BASE + "server:\n  api_token: ''\n", "server.api_token': the secret is empty"),
    ("secret", BASE + "server:\n  api_token: '   '\n", "server.api_token': the secret is empty"),
    ("secret", BASE + PD.replace("k3y-abcdefgh", "''"), "pager.routing_key': the secret is empty"),
    (
        "secret",
        BASE + "chat:\n  kind: slack\n  webhook_url: ''\n",
        "chat.webhook_url': the secret is empty",
    ),
    ("secret", BASE + VERCEL.replace("t0k3n-abcdef", "''"), "deployer.token': the secret is empty"),
    (
        "secret",
        BASE + "      - kind: sentry\n        org: a\n        project: w\n        token: ''\n",
        "the secret is empty",
    ),
    # numbers too long for Python to read
    (
        "number",
        BASE + "scheduler:\n  max_concurrency: " + "9" * 5000 + "\n",
        "a number is too long to read",
    ),
]


class TestMalformed:
    @pytest.mark.timeout(10)
    @pytest.mark.parametrize(
        ("kind", "text", "message"),
        MALFORMED,
        ids=[f"{k}-{i}" for i, (k, _, _) in enumerate(MALFORMED)],
    )
    def test_one_line_error(
        self, kind: str, text: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Each malformed value is exit 1 with one line naming file, line and field, and the
        fix or the allowed range."""
        code, out = check(write(tmp_path, text), capsys)
        assert code == 1, out
        one_problem(out, message)
        assert "c.yaml:" in out
        assert out.count("\n") == 2, out  # the problem and the count

    def test_the_floors_themselves_are_fine(self, tmp_path: Path) -> None:
        """The shortest allowed values validate (tests and the demo use them)."""
        from watchdog.config import load_settings

        text = (
            BASE.replace(
                "        url: https://example.com/api/health\n",
                "        url: https://example.com/api/health\n        interval: 100ms\n"
                "        timeout: 10ms\n",
            )
            + "scheduler:\n  tick: 100ms\n  deploy_poll: 1s\nleader:\n  ttl: 1s\n"
            + "heartbeat:\n  url: https://hc-ping.com/x\n  interval: 1s\nstore:\n  retention: 1h\n"
        )
        settings = load_settings(write(tmp_path, text))
        assert settings.leader.ttl.total_seconds() == 1


class TestTokenFile:
    @pytest.mark.timeout(10)
    @pytest.mark.parametrize(
        ("content", "message"),
        [
            ("fifo", "token file is a FIFO"),
            (b"\n", "token file is empty"),
            (b"\xff", "token file is not UTF-8 text"),
            (None, "token file not found"),
        ],
    )
    def test_bad_token_file(
        self,
        content: bytes | str | None,
        message: str,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """``--token-file`` is read like a secret file: a FIFO, an empty or a non-UTF-8
        file is one line and exit 1, before any request."""
        token = make_file(tmp_path / "token", content)
        code = main(["status", "--url", "http://127.0.0.1:9", "--token-file", str(token)])
        assert code == 1
        one_problem(capsys.readouterr().err, message)
