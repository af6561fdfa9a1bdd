"""The ``watchdog`` command line.

Every user error ends in a short message on stderr and exit code 1, never a traceback: the
person reading it at 3 a.m. needs the file, the line and the fix.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from watchdog import __version__
from watchdog.core.rules import RulePack
from watchdog.yamlfile import FileError, default_rules_path, load_rule_pack

Command = Callable[[argparse.Namespace], int]
_COMMANDS: dict[str, Command] = {}


def command(name: str) -> Callable[[Command], Command]:
    def register(func: Command) -> Command:
        _COMMANDS[name] = func
        return func

    return register


def fail(message: str) -> int:
    print(f"watchdog: {message}", file=sys.stderr)
    return 1


def load_rules(path: str | None) -> RulePack:
    return load_rule_pack(Path(path) if path else default_rules_path())


@command("check")
def cmd_check(args: argparse.Namespace) -> int:
    """Validate a config and/or a rule pack; exit 1 naming file, line, rule and field."""
    problems: list[str] = []
    checked: list[str] = []
    rules_path = args.rules
    if args.config:
        from watchdog.config import load_settings

        try:
            settings = load_settings(Path(args.config))
        except FileError as exc:
            problems.extend(str(p) for p in exc.problems)
        else:
            checked.append(f"config {args.config}: {len(settings.targets)} target(s)")
            rules_path = rules_path or (str(settings.rules) if settings.rules else None)
    if rules_path or not args.config:
        try:
            pack = load_rules(rules_path)
        except FileError as exc:
            problems.extend(str(p) for p in exc.problems)
        else:
            checked.append(f"rules {rules_path or default_rules_path()}: {len(pack.rules)} rule(s)")
    if problems:
        for problem in problems:
            print(problem, file=sys.stderr)
        print(f"watchdog check: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    for line in checked:
        print(f"ok: {line}")
    return 0


@command("replay")
def cmd_replay(args: argparse.Namespace) -> int:
    """Backtest a JSON Lines trace through the engine; print each change of decision."""
    from watchdog.replay import TraceError, replay

    try:
        pack = load_rules(args.rules)
    except FileError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    try:
        stream = sys.stdin if args.trace == "-" else open(args.trace, encoding="utf-8")  # noqa: SIM115
    except OSError as exc:
        return fail(f"cannot read trace {args.trace}: {exc.strerror}")
    try:
        with stream:
            replay(stream, pack, sys.stdout, explain=args.explain)
    except TraceError as exc:
        sys.stdout.flush()
        return fail(f"{args.trace}: {exc}")
    except UnicodeDecodeError:
        return fail(f"{args.trace}: not UTF-8 text")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="watchdog",
        description="Watch a production web app and roll it back by its written procedure.",
    )
    parser.add_argument("--version", action="version", version=f"watchdog {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    check = sub.add_parser("check", help="validate a config file and/or a rule pack")
    check.add_argument("--config", help="daemon config YAML")
    check.add_argument("--rules", help="rule pack YAML (default: the built-in pack)")

    rep = sub.add_parser("replay", help="backtest a JSON Lines trace (never acts)")
    rep.add_argument("trace", help="trace file (JSON Lines), or - for stdin")
    rep.add_argument("--rules", help="rule pack YAML (default: the built-in pack)")
    rep.add_argument(
        "--explain", action="store_true", help="also print the flowchart path and incident"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return _COMMANDS[args.command](args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
