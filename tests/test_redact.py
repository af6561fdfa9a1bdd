"""The one redaction function: every form of every configured secret, in every shape of data."""

from __future__ import annotations

import base64
import json
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, quote_plus

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from watchdog import logs
from watchdog.actions.pagerduty import PagerDutyConfig
from watchdog.actions.slack import SlackConfig
from watchdog.actions.vercel import VercelConfig
from watchdog.config import HeartbeatSettings, ServerSettings, Settings, StoreSettings, TargetConfig
from watchdog.redact import NO_SECRETS, Redactor, dsn_password, secret_field_names
from watchdog.sources import HealthSourceConfig, SupabaseSourceConfig
from watchdog.store.base import ActionStatus

TOKEN = "canary/Tok+en=42_zq"
WEBHOOK = "https://hooks.slack.com/services/T0/B0/canaryWebhook"


def settings() -> Settings:
    return Settings(
        store=StoreSettings(url="postgresql://watchdog:pg%2Fpass%40word@db:5432/w"),
        server=ServerSettings(api_token=SecretStr("canary-api-token")),
        heartbeat=HeartbeatSettings(url=SecretStr("https://hc-ping.example.com/canary-uuid")),
        pager=PagerDutyConfig(routing_key=SecretStr("canaryroutingkey00000000000000aa")),
        chat=SlackConfig(webhook_url=SecretStr(WEBHOOK)),
        targets=[
            TargetConfig(
                name="web",
                sources=[
                    HealthSourceConfig(url="https://example.com/api/health"),
                    SupabaseSourceConfig(
                        project_ref="abc", secret_key=SecretStr("sb_secret_canary123")
                    ),
                ],
                deployer=VercelConfig(
                    token=SecretStr(TOKEN), project_id="prj_1", production_domain="example.com"
                ),
            )
        ],
    )


class TestForms:
    redactor = Redactor([("vercel_token", TOKEN)])

    @pytest.mark.parametrize(
        "form",
        [
            TOKEN,
            quote(TOKEN, safe=""),
            quote(TOKEN),
            quote_plus(TOKEN),
            re.sub("%[0-9A-F]{2}", lambda m: m.group(0).lower(), quote(TOKEN, safe="")),
            json.dumps(TOKEN)[1:-1],
        ],
    )
    def test_raw_and_encoded(self, form: str) -> None:
        """The raw value and its URL-encoded and JSON-escaped forms are all replaced."""
        out = self.redactor.text(f"Vercel said: bad token {form}!")
        assert out == "Vercel said: bad token [redacted:vercel_token]!"

    @pytest.mark.parametrize("user", ["", "a", "ab", "service_role", "api"])
    @pytest.mark.parametrize("encode", [base64.b64encode, base64.urlsafe_b64encode])
    def test_base64_and_basic_auth(self, user: str, encode: object) -> None:
        """Base64 of the secret alone or of ``user:secret`` (HTTP Basic), in either alphabet,
        whatever the user's length (alignment): no run of characters encoding it survives."""
        plain = f"{user}:{TOKEN}" if user else TOKEN
        encoded = encode(plain.encode()).decode()  # type: ignore[operator]
        out = self.redactor.text(f"Authorization: Basic {encoded}")
        assert "[redacted:vercel_token]" in out
        leftover = out.split("Basic ", 1)[1].replace("[redacted:vercel_token]", "")
        # at most the characters that encode the user's own bytes are left
        assert len(leftover) <= len(base64.b64encode(f"{user}:".encode()).decode().rstrip("="))

    def test_url_secret_parts(self) -> None:
        """A secret URL is caught whole, without its scheme, or as its path alone."""
        redactor = Redactor([("slack_webhook_url", WEBHOOK)])
        text = (
            f"POST {WEBHOOK} and hooks.slack.com/services/T0/B0/canaryWebhook and "
            "/services/T0/B0/canaryWebhook"
        )
        assert redactor.text(text) == (
            "POST [redacted:slack_webhook_url] and [redacted:slack_webhook_url] and "
            "[redacted:slack_webhook_url]"
        )

    def test_url_secret_parts_encoded(self) -> None:
        """The path of a secret URL is caught URL-encoded too (a URL quoted in a query)."""
        redactor = Redactor([("slack_webhook_url", WEBHOOK)])
        path = "/services/T0/B0/canaryWebhook"
        for form in (quote(path, safe=""), quote_plus(path)):
            assert redactor.text(f"next={form}") == "next=[redacted:slack_webhook_url]"

    def test_short_values_and_empty_redactor(self) -> None:
        """Values under four characters are not secrets worth blanking words for; a redactor
        with nothing to hide returns its input unchanged."""
        assert Redactor([("x", "abc")]).text("abc") == "abc"
        assert not NO_SECRETS
        assert NO_SECRETS.text("anything") == "anything"

    def test_a_dsn_hides_its_password_not_its_user_or_database(self) -> None:
        """``postgresql://watchdog:…@db/watchdog``: the user and database name are words every
        metric name holds; only the password (and the URL as a whole) is a secret."""
        redactor = Redactor(
            [("store_url", "postgresql://watchdog:pg%2Fpass%40word@db:5432/watchdog")]
        )
        line = 'watchdog_polls_total{target="web"} 1.0 /watchdog'
        assert redactor.text(line) == line
        assert (
            redactor.text("auth failed for pg/pass@word") == "auth failed for [redacted:store_url]"
        )
        assert "pass" not in redactor.text(
            "postgresql://watchdog:pg%2Fpass%40word@db:5432/watchdog"
        )

    @pytest.mark.parametrize(
        ("url", "quoted"),
        [
            # a Sentry DSN: the key is the user
            (
                "https://0123456789abcdef0123@o1.ingest.sentry.io/678",
                "sentry_key=0123456789abcdef0123",
            ),
            # a ping URL with credentials: the path still matters
            ("https://user:tok3n-value@hc-ping.com/5f1e-uuid-path", "GET /5f1e-uuid-path"),
        ],
    )
    def test_other_urls_keep_their_user_and_path_secret(self, url: str, quoted: str) -> None:
        """Only a database DSN with a password gives up its user and database name (found in
        review: a Sentry DSN's key and a ping URL's path would have leaked)."""
        redacted = Redactor([("s", url)]).text(f"upstream said: {quoted}")
        assert "[redacted:s]" in redacted
        assert quoted.split("=")[-1].split(" ")[-1] not in redacted

    def test_longest_first(self) -> None:
        """A secret inside another is replaced as the longer one, not in pieces."""
        redactor = Redactor([("short", "canary-1"), ("long", "canary-1-and-more")])
        assert redactor.text("x canary-1-and-more y canary-1") == (
            "x [redacted:long] y [redacted:short]"
        )


REDACTOR = Redactor(
    [
        ("vercel_token", TOKEN),
        ("chat_webhook_url", WEBHOOK),
        ("store_url", "postgresql://watchdog:pg%2Fpass%40word@db:5432/w"),
    ]
)


class TestOnlyWhatCanMatch:
    """``text`` matches only the alternatives whose needle the text holds: the same result as
    the whole pattern, found by substring search first (the whole alternation over a
    megabytes-long /metrics exposition took seconds on the event loop)."""

    @staticmethod
    def whole(redactor: Redactor, text: str) -> str:
        whole = re.compile("|".join(pattern for _, pattern in redactor._alternatives))
        return whole.sub(redactor._replacement, text)

    @given(
        st.lists(
            st.sampled_from(
                [
                    TOKEN,
                    quote(TOKEN, safe=""),
                    json.dumps(TOKEN)[1:-1],
                    base64.b64encode(f"u:{TOKEN}".encode()).decode(),
                    base64.urlsafe_b64encode(f"xy{TOKEN}".encode()).decode(),
                    WEBHOOK,
                    "/services/T0/B0/canaryWebhook",
                    "pg/pass@word",
                    'watchdog_polls_total{target="web",source="sentry"} 12.0\n',
                    "=",
                    "A",
                    " ",
                ]
            )
            | st.text(max_size=8),
            max_size=12,
        )
    )
    def test_same_as_the_whole_pattern(self, parts: list[str]) -> None:
        text = "".join(parts)
        assert REDACTOR.text(text) == self.whole(REDACTOR, text)

    def test_a_large_clean_text_is_returned_as_it_is(self) -> None:
        text = 'watchdog_signal_unknown_total{target="t1",reason="no_data"} 0.0\n' * 20_000
        assert REDACTOR.text(text) is text

    def test_a_secret_in_a_large_text_is_still_found(self) -> None:
        text = "x" * 500_000 + TOKEN + "y" * 500_000
        assert REDACTOR.text(text) == "x" * 500_000 + "[redacted:vercel_token]" + "y" * 500_000


@dataclass(frozen=True)
class Record:
    status: ActionStatus
    error: str | None
    detail: dict[str, object]
    at: datetime
    path: tuple[str, ...] = ()


class TestData:
    redactor = Redactor([("vercel_token", TOKEN)])

    def test_nested_records(self) -> None:
        """Strings inside dataclasses, dicts (keys too), lists and tuples are redacted;
        enums and datetimes keep their type."""
        at = datetime(2026, 8, 20, tzinfo=UTC)
        record = Record(
            ActionStatus.FAILED,
            f"Vercel answered 500: {TOKEN}",
            {"body": [TOKEN, 1, None], TOKEN: {"deep": (TOKEN,)}},
            at,
            ("a", TOKEN),
        )
        out = self.redactor.data(record)
        assert out.status is ActionStatus.FAILED
        assert out.at is at
        assert out.error == "Vercel answered 500: [redacted:vercel_token]"
        assert out.detail == {
            "body": ["[redacted:vercel_token]", 1, None],
            "[redacted:vercel_token]": {"deep": ("[redacted:vercel_token]",)},
        }
        assert out.path == ("a", "[redacted:vercel_token]")

    def test_unchanged_is_the_same_object(self) -> None:
        """Data without a secret is returned as is (no copies on the hot path)."""
        record = Record(ActionStatus.INTENT, None, {"a": ["b"]}, datetime.now(UTC))
        assert self.redactor.data(record) is record

    def test_error_in_place(self) -> None:
        """An exception keeps its type and attributes; only its message changes."""
        exc = ValueError(f"token {TOKEN} refused")
        assert self.redactor.error(exc) is exc
        assert str(exc) == "token [redacted:vercel_token] refused"


class TestFromSettings:
    def test_every_secret_with_its_label(self) -> None:
        """Every SecretStr of the settings, and the store DSN's password, labelled by the
        field it came from."""
        redactor = settings().redactor()
        assert redactor.labels == {
            "server_api_token",
            "heartbeat_url",
            "pagerduty_routing_key",
            "slack_webhook_url",
            "supabase_secret_key",
            "vercel_token",
            "store_password",
        }
        assert redactor.text("pg/pass@word and sb_secret_canary123") == (
            "[redacted:store_password] and [redacted:supabase_secret_key]"
        )

    @pytest.mark.parametrize(
        ("url", "password"),
        [
            ("postgresql://u:p%40ss@h/db", "p@ss"),
            ("postgresql://h/db?user=u&password=s3cret", "s3cret"),
            ("postgresql://u@h/db", None),
            ("sqlite:////var/lib/w.db", None),
        ],
    )
    def test_dsn_password(self, url: str, password: str | None) -> None:
        """The password of a database URL, from its user-info or its query, decoded."""
        assert dsn_password(url) == password

    def test_secret_field_names(self) -> None:
        """Every field typed as a secret anywhere under Settings is known by name."""
        names = secret_field_names(Settings)
        assert {"api_token", "routing_key", "webhook_url", "token", "secret_key"} <= names
        assert {"bearer_token", "password", "secret_headers", "sentry_dsn", "url"} <= names
        assert "name" not in names


class TestLogs:
    def test_structlog_lines(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Every value of a log line, a traceback included, is redacted before rendering."""
        logs.configure("info", "json", Redactor([("vercel_token", TOKEN)]))
        log = structlog.get_logger("t")
        try:
            raise RuntimeError(f"boom {TOKEN}")
        except RuntimeError:
            log.exception("call_failed", error=f"Vercel: {TOKEN}", extra={"k": [TOKEN]})
        err = capsys.readouterr().err
        assert TOKEN not in err
        assert quote(TOKEN, safe="") not in err
        line = json.loads(err.strip().splitlines()[-1])
        assert line["error"] == "Vercel: [redacted:vercel_token]"
        assert line["extra"] == {"k": ["[redacted:vercel_token]"]}
        assert "boom [redacted:vercel_token]" in line["exception"]

    def test_stdlib_logging(self, capsys: pytest.CaptureFixture[str]) -> None:
        """A library's own log record (asyncio, aiohttp) is redacted the same way."""
        logs.configure("info", "json", Redactor([("vercel_token", TOKEN)]))
        logging.getLogger("asyncio").error("Task exception: %s", f"CallError({TOKEN})")
        err = capsys.readouterr().err
        assert TOKEN not in err
        assert "CallError([redacted:vercel_token])" in err
