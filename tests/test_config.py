"""Daemon settings: the example config validates, the environment wins, errors name the line."""

from __future__ import annotations

from pathlib import Path

import pytest

from watchdog.cli import main
from watchdog.config import load_settings
from watchdog.yamlfile import FileError

EXAMPLE = Path(__file__).parent.parent / "deploy" / "config.example.yaml"
SECRETS = (
    "api_token",
    "heartbeat_url",
    "pagerduty_routing_key",
    "slack_webhook_url",
    "smoke_token",
    "sentry_token",
    "supabase_secret_key",
    "vercel_token",
)
CANARY = "canary-secret-7f3a9c"


@pytest.fixture
def example(tmp_path: Path) -> Path:
    """The shipped example with its secret files pointed at a temporary directory."""
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    for name in SECRETS:
        value = "https://hc-ping.example.com/x" if name == "heartbeat_url" else f"{CANARY}-{name}"
        if name == "slack_webhook_url":
            value = f"https://hooks.slack.com/services/T0/B0/{CANARY}"
        (secrets / name).write_text(value + "\n")
    rules = EXAMPLE.parent.parent / "rules" / "default.yaml"
    text = (
        EXAMPLE.read_text()
        .replace("/run/secrets/watchdog/", f"{secrets}/")
        .replace("/etc/watchdog/rules/default.yaml", str(rules))
    )
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


class TestExample:
    def test_example_config_is_valid(
        self, example: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The fully commented example passes `watchdog check`."""
        assert main(["check", "--config", str(example)]) == 0
        assert "1 target(s)" in capsys.readouterr().out

    def test_secret_files_are_read_and_hidden(self, example: Path) -> None:
        """${file:...} secrets are read, trailing newline stripped, and never shown in repr."""
        settings = load_settings(example)
        assert settings.server.api_token is not None
        assert settings.server.api_token.get_secret_value() == f"{CANARY}-api_token"
        assert CANARY not in repr(settings)
        assert CANARY not in str(settings.model_dump())

    def test_environment_wins(self, example: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """WATCHDOG_* variables override the file, nested sections with '__'."""
        monkeypatch.setenv("WATCHDOG_SHADOW", "false")
        monkeypatch.setenv("WATCHDOG_STORE__URL", "memory://")
        settings = load_settings(example)
        assert settings.shadow is False
        assert settings.store.url == "memory://"
        assert settings.server.port == 8080  # untouched keys keep the file's value


class TestErrors:
    def write(self, tmp_path: Path, text: str) -> Path:
        path = tmp_path / "c.yaml"
        path.write_text(text)
        return path

    def test_unknown_key_names_line(self, tmp_path: Path) -> None:
        """A typo in a nested key names the file, line and field."""
        path = self.write(
            tmp_path,
            "targets:\n  - name: web\n    sources:\n      - kind: health\n"
            "        url: https://x.example/api/health\n        intervall: 10s\n",
        )
        with pytest.raises(FileError) as info:
            load_settings(path)
        text = str(info.value)
        assert f"{path}:6" in text
        assert "intervall" in text
        assert "unknown key" in text

    def test_missing_env_reference(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """${env:NAME} for an unset variable is an error with the line."""
        monkeypatch.delenv("NOPE_TOKEN", raising=False)
        path = self.write(
            tmp_path,
            "server:\n  api_token: ${env:NOPE_TOKEN}\ntargets:\n  - name: web\n    sources:\n"
            "      - {kind: health, url: 'https://x.example/h'}\n",
        )
        with pytest.raises(
            FileError, match=r"c.yaml:2: field 'server.api_token': environment variable NOPE_TOKEN"
        ):
            load_settings(path)

    def test_no_targets(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A config without targets fails check with exit 1."""
        path = self.write(tmp_path, "shadow: true\n")
        assert main(["check", "--config", str(path)]) == 1
        assert "targets" in capsys.readouterr().err

    def test_duplicate_target_names(self, tmp_path: Path) -> None:
        """Two targets with one name are refused."""
        target = "  - name: web\n    sources:\n      - {kind: health, url: 'https://x.example/h'}\n"
        with pytest.raises(FileError, match="used twice"):
            load_settings(self.write(tmp_path, "targets:\n" + target + target))


class TestStoreUrl:
    def test_unknown_scheme_is_a_config_error(self, tmp_path: Path) -> None:
        """A store URL with an unsupported scheme is refused at check time, with its line."""
        path = tmp_path / "c.yaml"
        path.write_text(
            "store:\n  url: mysql://db/x\ntargets:\n  - name: web\n    sources:\n"
            "      - {kind: health, url: 'https://x.example/h'}\n"
        )
        with pytest.raises(FileError, match=r"c.yaml:2: field 'store.url': unsupported"):
            load_settings(path)


class TestLeaderRequired:
    """``leader.required`` (set by the Helm chart's HA mode) refuses a store replicas do not
    share: on SQLite or memory every replica would lead and act on its own."""

    def write(self, tmp_path: Path, store_url: str | None) -> Path:
        store = f"store:\n  url: {store_url}\n" if store_url else ""
        path = tmp_path / "c.yaml"
        path.write_text(
            f"{store}leader:\n  required: true\ntargets:\n  - name: web\n    sources:\n"
            "      - {kind: health, url: 'https://x.example/h'}\n"
        )
        return path

    @pytest.mark.parametrize("url", [None, "sqlite:///var/lib/w.db", "memory://"])
    def test_unshared_store_is_refused(
        self, tmp_path: Path, url: str | None, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The default SQLite, an explicit SQLite or memory store fails check, naming the field
        and the fix."""
        path = self.write(tmp_path, url)
        assert main(["check", "--config", str(path)]) == 1
        err = capsys.readouterr().err
        assert f"{path}:{3 if url else 1}: field 'leader': leader.required is true" in err
        assert "WATCHDOG_STORE__URL" in err
        assert "postgresql://" in err

    def test_run_refuses_to_start(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """`watchdog run` exits 1 with the same one line before starting anything."""
        assert main(["run", "--config", str(self.write(tmp_path, None))]) == 1
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert "leader.required is true but store.url is a sqlite:// store" in line

    def test_postgres_from_the_environment_is_accepted(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The DSN the chart passes as WATCHDOG_STORE__URL satisfies it (the environment wins
        over the file's SQLite URL)."""
        monkeypatch.setenv("WATCHDOG_STORE__URL", "postgresql://w:pw@db.internal/w")
        settings = load_settings(self.write(tmp_path, "sqlite:///var/lib/w.db"))
        assert settings.leader.required is True
        assert settings.store.url.startswith("postgresql://")

    def test_off_by_default(self, tmp_path: Path) -> None:
        """Without it a single replica runs on SQLite as before."""
        path = tmp_path / "c.yaml"
        path.write_text(
            "targets:\n  - name: web\n    sources:\n      - {kind: health, url: 'https://x.example/h'}\n"
        )
        assert load_settings(path).leader.required is False
