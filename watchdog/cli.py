"""The ``watchdog`` command line.

Every user error ends in a short message on stderr and exit code 1, never a traceback: the
person reading it at 3 a.m. needs the file, the line and the fix.

So that on-call does not retype flags, ``WATCHDOG_URL`` (the running daemon, for the API
commands), ``WATCHDOG_API_TOKEN`` / ``WATCHDOG_API_TOKEN_FILE`` (its token) and
``WATCHDOG_CONFIG`` (the config file, for ``run``, ``check``, ``postmortem`` and ``drill``)
stand in for ``--url``, ``--token-file`` and ``--config``; a flag given wins.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from watchdog import __version__
from watchdog.core.rules import RulePack
from watchdog.yamlfile import FileError, default_rules_path, load_rule_packs

if TYPE_CHECKING:
    from watchdog.config import Settings


Command = Callable[[argparse.Namespace], int]
_COMMANDS: dict[str, Command] = {}

DEFAULT_URL = "http://127.0.0.1:8080"


def command(name: str) -> Callable[[Command], Command]:
    def register(func: Command) -> Command:
        _COMMANDS[name] = func
        return func

    return register


def fail(message: str) -> int:
    print(f"watchdog: {message}", file=sys.stderr)
    return 1


def load_rules(paths: Sequence[str | Path] | None) -> RulePack:
    """The named rule packs merged into one, or the built-in default pack."""
    return load_rule_packs([Path(p) for p in paths] if paths else [default_rules_path()])


def _names(paths: Sequence[str | Path]) -> str:
    return ", ".join(str(p) for p in paths)


@command("check")
def cmd_check(args: argparse.Namespace) -> int:
    """Validate a config and/or a rule pack; exit 1 naming file, line, rule and field."""
    problems: list[str] = []
    checked: list[str] = []
    warnings: list[str] = []
    rules_paths: list[str | Path] = list(args.rules or [])
    if args.config:
        from watchdog.config import load_settings

        try:
            settings = load_settings(Path(args.config))
        except FileError as exc:
            problems.extend(str(p) for p in exc.problems)
        else:
            checked.append(f"config {args.config}: {len(settings.targets)} target(s)")
            rules_paths = rules_paths or list(settings.rule_files())
            from watchdog.daemon.wiring import config_gaps

            warnings = [gap.consequence for gap in config_gaps(settings)]
    if rules_paths or not args.config:
        try:
            pack = load_rules(rules_paths)
        except FileError as exc:
            problems.extend(str(p) for p in exc.problems)
        else:
            names = _names(rules_paths or [default_rules_path()])
            checked.append(f"rules {names}: {len(pack.rules)} rule(s)")
    if problems:
        for problem in problems:
            print(problem, file=sys.stderr)
        print(f"watchdog check: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    for line in checked:
        print(f"ok: {line}")
    for line in warnings:  # valid, but the daemon will warn the same at start-up
        print(f"warning: {line}")
    return 0


@command("replay")
def cmd_replay(args: argparse.Namespace) -> int:
    """Backtest a JSON Lines trace through the engine; print each change of decision."""
    from watchdog.replay import TraceError, replay_file

    try:
        pack = load_rules(args.rules)
    except FileError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    try:
        replay_file(args.trace, pack, sys.stdout, explain=args.explain)
    except TraceError as exc:
        sys.stdout.flush()
        where = "" if str(exc).startswith(args.trace) else f"{args.trace}: "
        return fail(f"{where}{exc}")
    return 0


def _settings(path: str) -> Settings | None:
    from watchdog.config import load_settings

    try:
        return load_settings(Path(path))
    except FileError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return None


@command("run")
def cmd_run(args: argparse.Namespace) -> int:
    """Run the daemon until SIGTERM/SIGINT."""
    import asyncio

    from watchdog import logs as wlog
    from watchdog.daemon.main import serve

    settings = _settings(args.config)
    if settings is None:
        return 1
    try:
        pack = load_rules(args.rules or settings.rule_files())
    except FileError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    redactor = settings.redactor()
    wlog.configure(settings.log.level, settings.log.format, redactor)
    try:
        return asyncio.run(serve(settings, pack))
    except KeyboardInterrupt:
        return 0
    except Exception as exc:  # start-up failed (port in use, store unreachable or too new)
        return fail(redactor.text(f"cannot start: {type(exc).__name__}: {exc}"))


def _api(
    args: argparse.Namespace,
    method: str,
    path: str,
    body: dict[str, object] | None,
    show: Callable[[object], str] | None = None,
) -> int:
    """Call the running daemon's HTTP API and print its answer (as JSON, or through ``show``)."""
    import json

    from watchdog.cli_api import ApiCallError, call_api

    try:
        status, data = call_api(args.url, getattr(args, "token_file", None), method, path, body)
    except ApiCallError as exc:
        return fail(str(exc))
    if status >= 400 or show is None:
        print(json.dumps(data, indent=2))
    else:
        print(show(data), end="")
    if status >= 400:
        return fail(f"the watchdog answered {status}")
    return 0


@command("status")
def cmd_status(args: argparse.Namespace) -> int:
    """Show what the running daemon sees and decides, per target (``--json``: the raw view)."""
    if args.json:
        return _api(args, "GET", "/api/status", None)
    from watchdog.status_text import render_status_text

    def show(data: object) -> str:
        if not isinstance(data, dict):
            return f"unexpected answer: {data!r}\n"
        return render_status_text(data, args.url)

    return _api(args, "GET", "/api/status", None, show)


@command("hold")
def cmd_hold(args: argparse.Namespace) -> int:
    """Suppress automatic rollback for a target for a while (pages still go out)."""
    duration = args.duration_arg or args.duration
    return _api(
        args,
        "POST",
        "/api/hold",
        {"target": args.target, "duration": duration, "reason": args.reason},
    )


@command("ack")
def cmd_ack(args: argparse.Namespace) -> int:
    """Acknowledge a P1 page: fix forward (hold rollback for the window) or roll back now."""
    return _api(args, "POST", "/api/ack", {"target": args.target, "decision": args.decision})


@command("declare")
def cmd_declare(args: argparse.Namespace) -> int:
    """Declare an incident (e.g. a security vulnerability): takes the rollback path."""
    return _api(args, "POST", "/api/declare", {"target": args.target, "reason": args.reason})


@command("kill-switch")
def cmd_kill_switch(args: argparse.Namespace) -> int:
    """Turn automatic actions off (on) or back on (off)."""
    return _api(args, "POST", "/api/kill-switch", {"on": args.state == "on", "reason": args.reason})


@command("postmortem")
def cmd_postmortem(args: argparse.Namespace) -> int:
    """Render an incident's post-mortem draft (Markdown) from the store's records."""
    import asyncio

    from watchdog.daemon.history import postmortem_of
    from watchdog.redact import Redactor, dsn_password
    from watchdog.store.factory import store_from_url

    url = args.store
    if url is None:
        if args.config is None:
            return fail("give --config FILE (to find the store) or --store URL")
        settings = _settings(args.config)
        if settings is None:
            return 1
        url = settings.store.url
        redactor = settings.redactor()
    else:
        password = dsn_password(url)
        redactor = Redactor([("store_password", password)] if password else [])

    async def render() -> str | None:
        store = store_from_url(url)
        await store.open()
        try:
            return await postmortem_of(store, args.incident, redactor)
        finally:
            await store.close()

    try:
        text = asyncio.run(render())
    except Exception as exc:  # a store that cannot be opened: say which and why
        return fail(redactor.text(f"cannot read the store: {type(exc).__name__}: {exc}"))
    if text is None:
        return fail(f"no incident {args.incident!r} in the store")
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {args.output}")
    else:
        print(text)
    return 0


@command("drill")
def cmd_drill(args: argparse.Namespace) -> int:
    """The quarterly rollback drill on a staging target: roll back, verify, time, restore."""
    import asyncio
    import json

    import aiohttp

    from watchdog.actions.vercel import VercelDeployer
    from watchdog.actions.verify import Verifier
    from watchdog.clock import SystemClock
    from watchdog.drill import (
        DrillExit,
        DrillReport,
        drill_record,
        report_json,
        report_markdown,
        run_drill,
    )
    from watchdog.store.factory import store_from_url
    from watchdog.store.redacting import RedactingStore

    settings = _settings(args.config)
    if settings is None:
        return DrillExit.CANNOT_RUN
    redactor = settings.redactor()
    target = next((t for t in settings.targets if t.name == args.target), None)
    if target is None:
        names = ", ".join(t.name for t in settings.targets)
        fail(f"no target {args.target!r} in {args.config} (targets: {names})")
        return DrillExit.CANNOT_RUN
    if target.environment != "staging":
        fail(
            f"target {target.name!r} is not marked 'environment: staging': a drill rolls the "
            "target back for real, so it only runs against staging"
        )
        return DrillExit.CANNOT_RUN
    if target.deployer is None:
        fail(f"target {target.name!r} has no deployer configured")
        return DrillExit.CANNOT_RUN
    deployer_config = target.deployer

    async def drill() -> DrillReport:
        clock = SystemClock()
        store = store_from_url(settings.store.url)
        await store.open()
        try:
            async with aiohttp.ClientSession() as session:
                deployer = VercelDeployer(deployer_config, session, clock)
                verifier = Verifier(target.verify, session, clock)
                report = await run_drill(
                    deployer,
                    verifier,
                    clock,
                    target_name=target.name,
                    store=RedactingStore(store, redactor),
                )
        finally:
            await store.close()
        return report

    report = asyncio.run(drill())
    markdown = redactor.text(report_markdown(report))
    print(markdown)
    if args.report_dir:
        out = Path(args.report_dir)
        out.mkdir(parents=True, exist_ok=True)
        stem = f"drill-{target.name}-{drill_record(report).id}"
        (out / f"{stem}.md").write_text(markdown, encoding="utf-8")
        (out / f"{stem}.json").write_text(
            redactor.text(json.dumps(report_json(report), indent=2, default=str)),
            encoding="utf-8",
        )
        print(f"wrote {out / stem}.md and .json")
    return int(report.exit_code)


@command("demo")
def cmd_demo(args: argparse.Namespace) -> int:
    """Run the real daemon against a simulated production, on loopback."""
    import asyncio

    from watchdog import logs as wlog
    from watchdog.demo import run_demo

    wlog.configure("error" if not args.verbose else "info", "console")
    if args.serve_standins:
        from watchdog.demo import serve_standins

        try:
            asyncio.run(serve_standins(args.host, args.port, scenario=args.scenario))
        except KeyboardInterrupt:
            return 0
        return 0
    return asyncio.run(run_demo(args.scenario, speed=args.speed))


def _add_api_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        default=os.environ.get("WATCHDOG_URL") or DEFAULT_URL,
        help=f"the running watchdog (default: $WATCHDOG_URL, else {DEFAULT_URL})",
    )
    parser.add_argument(
        "--token-file",
        default=os.environ.get("WATCHDOG_API_TOKEN_FILE") or None,
        help="file holding the API token (default: $WATCHDOG_API_TOKEN_FILE, "
        "else the token in $WATCHDOG_API_TOKEN)",
    )


def _add_config(parser: argparse.ArgumentParser, what: str, *, required: bool = False) -> None:
    """``--config``, defaulting to $WATCHDOG_CONFIG (required only when that is unset too)."""
    env = os.environ.get("WATCHDOG_CONFIG") or None
    parser.add_argument(
        "--config",
        default=env,
        required=required and env is None,
        help=f"{what} (default: $WATCHDOG_CONFIG)",
    )


_RULES_HELP = "rule pack YAML, repeat to merge several (default: the built-in pack)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="watchdog",
        description="Watch a production web app and roll it back by its written procedure.",
    )
    parser.add_argument("--version", action="version", version=f"watchdog {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    check = sub.add_parser("check", help="validate a config file and/or a rule pack")
    _add_config(check, "daemon config YAML")
    check.add_argument("--rules", action="append", help=_RULES_HELP)

    rep = sub.add_parser("replay", help="backtest a JSON Lines trace (never acts)")
    rep.add_argument("trace", help="trace file (JSON Lines), or - for stdin")
    rep.add_argument("--rules", action="append", help=_RULES_HELP)
    rep.add_argument(
        "--explain", action="store_true", help="also print the flowchart path and incident"
    )

    from watchdog.scenarios import SCENARIOS

    demo = sub.add_parser(
        "demo",
        help="run the daemon against a simulated production (no accounts needed)",
        description="Scenarios: "
        + "; ".join(f"{name}: {text}" for name, text in SCENARIOS.items()),
    )
    demo.add_argument("--scenario", choices=sorted(SCENARIOS), default="bad-deploy")
    demo.add_argument(
        "--speed", type=float, default=12.0, help="divide every rule duration by this"
    )
    demo.add_argument("--verbose", action="store_true", help="also show the daemon's logs")
    demo.add_argument(
        "--serve-standins",
        action="store_true",
        help="only serve the simulated production (for deploy/compose.yaml), forever",
    )
    demo.add_argument("--host", default="127.0.0.1", help="with --serve-standins")
    demo.add_argument("--port", type=int, default=9000, help="with --serve-standins")

    pm = sub.add_parser("postmortem", help="render an incident's post-mortem draft")
    pm.add_argument("incident", help="incident id (see /api/incidents)")
    _add_config(pm, "daemon config (to find the store)")
    pm.add_argument("--store", help="store URL instead of --config, e.g. sqlite:///w.db")
    pm.add_argument("--output", help="write the Markdown here instead of stdout")

    drill = sub.add_parser(
        "drill",
        help="quarterly rollback drill on a staging target",
        description="Roll a staging target back, verify, time it against the procedure's "
        "3-minute target, restore, and report.",
        epilog="exit status: 0 passed; 1 the drill could not run (config, target not staging, "
        "no deployer); 2 usage error; 3 the drill failed, staging as it was; 4 staging may not "
        "serve what it did before the drill: restore it by hand now (see the report)",
    )
    _add_config(drill, "daemon config YAML", required=True)
    drill.add_argument("--target", required=True, help="a target marked 'environment: staging'")
    drill.add_argument("--report-dir", help="also write the report as Markdown and JSON here")

    run = sub.add_parser("run", help="run the daemon")
    _add_config(run, "daemon config YAML", required=True)
    run.add_argument(
        "--rules",
        action="append",
        help="rule pack YAML, repeat to merge several (default: from config, else built-in)",
    )

    status = sub.add_parser("status", help="show the running daemon's view, one block per target")
    status.add_argument("--json", action="store_true", help="print /api/status as it is")
    _add_api_options(status)

    hold = sub.add_parser(
        "hold",
        help="hold automatic rollback for a target (0s ends a hold)",
        description="Hold automatic rollback (pages still go out): watchdog hold web 30m "
        "--reason '...'. A duration of 0s ends the hold early.",
    )
    hold.add_argument("target")
    hold.add_argument("duration_arg", nargs="?", metavar="DURATION", help="e.g. 30m, 2h, 0s")
    hold.add_argument(
        "--duration", default="30m", help="the same, as an option (default: %(default)s)"
    )
    hold.add_argument("--reason", default="", help="shown in pages and the audit trail")
    _add_api_options(hold)

    ack = sub.add_parser("ack", help="acknowledge a page: fix_forward or rollback")
    ack.add_argument("target")
    ack.add_argument("--decision", choices=["fix_forward", "rollback"], default="fix_forward")
    _add_api_options(ack)

    declare = sub.add_parser("declare", help="declare an incident: roll back now")
    declare.add_argument("target")
    declare.add_argument("--reason", required=True, help="e.g. 'security vulnerability CVE-...'")
    _add_api_options(declare)

    kill = sub.add_parser("kill-switch", help="no automatic actions (on) / resume (off)")
    kill.add_argument("state", choices=["on", "off"])
    kill.add_argument("--reason", default="")
    _add_api_options(kill)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    # logs go to stderr, and only warnings, unless a command sets up its own (run, demo):
    # stdout is for the command's output (post-mortems, replay decisions, JSON)
    from watchdog import logs as wlog

    wlog.configure("warning", "console")
    try:
        return _COMMANDS[args.command](args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
