"""Reading YAML files so that every error names the file, the line and the field.

Rule packs and the daemon's config are both YAML validated by pydantic. Pydantic reports a
location such as ``('rules', 3, 'sustain', 'for')``; this module keeps the line of every node
so that ``watchdog check`` can say ``rules/x.yaml:41: rule 'latency-critical', field
'sustain.for': ...`` instead of a traceback.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from watchdog.core.rules import RulePack

Loc = tuple[str | int, ...]
M = TypeVar("M", bound=BaseModel)

#: a config or rule pack is a few kilobytes; anything near this is a mistake (or an attack)
MAX_YAML_BYTES: Final = 1 << 20
#: nodes once aliases are expanded: a real file has hundreds, an alias bomb billions
MAX_YAML_NODES: Final = 100_000
#: nesting depth: the deepest real config is under ten levels
MAX_YAML_DEPTH: Final = 64

_STR_TAG: Final = "tag:yaml.org,2002:str"
_MERGE_TAG: Final = "tag:yaml.org,2002:merge"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a file, phrased for the person who has to fix it."""

    file: str
    line: int | None
    field: str
    message: str
    rule: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        parts = [where]
        if self.rule:
            parts.append(self.rule if " " in self.rule else f"rule {self.rule!r}")
        if self.field:
            parts.append(f"field {self.field!r}")
        return ": ".join(parts) + f": {self.message}"


class FileError(Exception):
    """A file could not be used; ``problems`` lists every problem found, not just the first."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys: YAML silently keeps the last one otherwise."""


def _positions(node: yaml.Node, loc: Loc, out: dict[Loc, int]) -> None:
    out[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
            _positions(value_node, (*loc, key), out)
            # a field's error points at its key's line, not at where its value starts
            out[(*loc, key)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _positions(item, (*loc, index), out)


def _duplicate_keys(node: yaml.Node, loc: Loc, file: str) -> Iterable[Problem]:
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in seen:
                yield Problem(
                    file,
                    line,
                    _dotted((*loc, key)),
                    f"key {key!r} appears twice (first on line {seen[key]}); keep one",
                )
            seen[key] = line
            yield from _duplicate_keys(value_node, (*loc, key), file)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from _duplicate_keys(item, (*loc, index), file)


def _dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


def read_text_file(path: Path, *, max_bytes: int, what: str = "file") -> str:
    """The whole of a small UTF-8 text file, or a :class:`FileError` saying why not.

    Only a regular file is opened (after following symlinks, as mounted secrets are): a FIFO
    or a device would block the daemon's start-up forever, a directory cannot be read. The
    file is opened non-blocking and checked again on the open descriptor, so it cannot be
    swapped for a FIFO in between. More than ``max_bytes`` is refused, not truncated.
    """
    file = str(path)

    def problem(message: str) -> FileError:
        return FileError([Problem(file, None, "", message)])

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise problem(f"{what} not found: check the path") from None
    except IsADirectoryError:
        raise problem(f"{what} is a directory: point it at a file") from None
    except OSError as exc:
        raise problem(f"cannot open the {what}: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = "a directory" if stat.S_ISDIR(info.st_mode) else "a FIFO, socket or device"
            raise problem(f"{what} is {kind}, not a regular file: point it at a file")
        if info.st_size > max_bytes:
            raise problem(
                f"{what} is {info.st_size} bytes; at most {max_bytes} are read: is this the "
                "right file?"
            )
        with os.fdopen(fd, "rb", closefd=True) as handle:
            fd = -1
            raw = handle.read(max_bytes + 1)
    except OSError as exc:
        raise problem(f"cannot read the {what}: {exc.strerror or exc}") from None
    finally:
        if fd >= 0:
            os.close(fd)
    if len(raw) > max_bytes:
        raise problem(f"{what} is over {max_bytes} bytes: is this the right file?")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise problem(
            f"{what} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}): "
            "save it as UTF-8"
        ) from None


def _check_size(text: str, file: str) -> None:
    """Refuse a document that nests too deeply or expands (through aliases) to too many nodes,
    before anything builds it: an alias bomb expands to billions of nodes from a few lines.

    Works on the event stream with a stack, so it neither recurses nor expands anything:
    each anchor's expanded size is remembered and an alias adds it.
    """
    sizes: dict[str, int] = {}
    #: per open collection: its expanded size so far and its anchor
    stack: list[list[Any]] = []
    total = 0
    for event in yaml.parse(text, Loader=_LineLoader):
        line = event.start_mark.line + 1 if event.start_mark is not None else None
        if isinstance(event, yaml.CollectionStartEvent):
            if len(stack) >= MAX_YAML_DEPTH:
                message = f"nested more than {MAX_YAML_DEPTH} levels deep: flatten it"
                raise FileError([Problem(file, line, "", message)])
            stack.append([1, event.anchor])
            continue
        if isinstance(event, yaml.CollectionEndEvent):
            size, anchor = stack.pop()
        elif isinstance(event, yaml.ScalarEvent):
            size, anchor = 1, event.anchor
        elif isinstance(event, yaml.AliasEvent):
            size, anchor = sizes.get(event.anchor or "", 1), None
        else:
            continue
        if anchor:
            sizes[anchor] = size
        if stack:
            stack[-1][0] += size
        else:
            total += size
        if total + sum(open_size for open_size, _ in stack) > MAX_YAML_NODES:
            message = (
                f"expands to more than {MAX_YAML_NODES} values (through aliases '*name'?): "
                "write it out or shorten it"
            )
            raise FileError([Problem(file, line, "", message)])


def _text_keys(node: yaml.Node, loc: Loc, file: str) -> Iterable[Problem]:
    """Every mapping key must be text: YAML reads ``1:``, ``on:`` or ``2026-01-01:`` as a
    number, a boolean or a date, which no field name is."""
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag in (_STR_TAG, _MERGE_TAG):
                yield from _text_keys(value_node, (*loc, str(key_node.value)), file)
                continue
            shown = key_node.value if isinstance(key_node, yaml.ScalarNode) else "a collection"
            yield Problem(
                file,
                key_node.start_mark.line + 1,
                _dotted(loc),
                f"key {shown!s:.40} is not text: quote it ('{shown!s:.40}') or fix the indentation",
            )
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from _text_keys(item, (*loc, index), file)


def read_yaml(path: Path) -> tuple[Any, dict[Loc, int]]:
    """Parse ``path``; return the data and a map from location to line number.

    Bounded in every way an input can make it hang or crash: the file must be a regular
    UTF-8 file of at most :data:`MAX_YAML_BYTES`, nest at most :data:`MAX_YAML_DEPTH`
    levels and expand to at most :data:`MAX_YAML_NODES` values; every key must be text.
    """
    file = str(path)
    text = read_text_file(path, max_bytes=MAX_YAML_BYTES)
    try:
        _check_size(text, file)
        node = yaml.compose(text, Loader=_LineLoader)
        data = yaml.load(text, Loader=_LineLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else None
        raise FileError(
            [Problem(file, line, "", f"not valid YAML: {exc.problem or exc}; fix the syntax")]
        ) from None
    except yaml.YAMLError as exc:
        raise FileError([Problem(file, None, "", f"not valid YAML: {exc}")]) from None
    except ValueError:
        # PyYAML's int() of a number over Python's 4300-digit limit
        raise FileError(
            [Problem(file, None, "", "a number is too long to read (over 4300 digits)")]
        ) from None
    except RecursionError:  # the depth check above should have caught it first
        raise FileError(
            [Problem(file, None, "", "nested too deeply to read: flatten it")]
        ) from None
    positions: dict[Loc, int] = {}
    if node is not None:
        problems = list(_text_keys(node, (), file)) or list(_duplicate_keys(node, (), file))
        if problems:
            raise FileError(problems)
        _positions(node, (), positions)
    return data, positions


def _line_for(loc: Loc, positions: dict[Loc, int]) -> int | None:
    for end in range(len(loc), -1, -1):
        line = positions.get(loc[:end])
        if line is not None:
            return line
    return None


_FIXES = {
    "extra_forbidden": "unknown key: remove it or check its spelling",
    "missing": "this field is required: add it",
}


#: a secret field given a number, a boolean or a date: say how to write it, never what it was
_NOT_TEXT = (
    "a secret must be text: quote it in YAML ('...'); a bare number, true/false or a date "
    "is not read as text (and a number loses leading zeros)"
)


def problems_from_validation(
    exc: ValidationError,
    file: str,
    data: Any,
    positions: dict[Loc, int],
    rule_name: Callable[[Any, Loc], str | None] | None = None,
    secret_fields: frozenset[str] = frozenset(),
    source: Callable[[Loc], str | None] | None = None,
) -> list[Problem]:
    """Turn pydantic's errors into :class:`Problem` lines with file, line, rule and field.

    A field named in ``secret_fields`` (or inside one) never has its input quoted: the
    message says what is wrong and how to fix it, whatever type the value had. ``source``
    names where a value came from when not from the file (an environment variable).
    """
    problems = []
    for err in exc.errors(include_url=False):
        loc: Loc = tuple(err["loc"])
        # pydantic adds the union member/discriminator tag to the location; keep real keys only
        loc = _strip_tags(loc, data)
        secret = any(part in secret_fields for part in loc if isinstance(part, str))
        message = _FIXES.get(err["type"], str(err["msg"]))
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        if secret and err["type"] == "string_type":
            message = _NOT_TEXT
        elif (
            not secret
            and err["type"] not in _FIXES
            and err["type"] != "value_error"
            and "input" in err
        ):
            shown = repr(err["input"])
            if len(shown) <= 60 and not isinstance(err["input"], dict | list):
                message = f"{message} (got {shown})"
        rule = rule_name(data, loc) if rule_name else None
        origin = source(loc) if source else None
        if origin is not None:
            problems.append(Problem(f"environment variable {origin}", None, _dotted(loc), message))
        else:
            problems.append(Problem(file, _line_for(loc, positions), _dotted(loc), message, rule))
    return problems


def _strip_tags(loc: Loc, data: Any) -> Loc:
    """Drop location parts that are not keys of the data (pydantic's union/tag labels)."""
    out: list[str | int] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part in node:
            out.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            out.append(part)
            node = node[part]
        elif isinstance(node, dict) and isinstance(part, str) and node.get("kind") == part:
            continue  # a discriminated union's tag, not a key of the file
        elif isinstance(node, dict | list):
            # a missing or unknown key: keep it (it names the field), stop descending
            if isinstance(part, str) and not _looks_like_tag(part):
                out.append(part)
                node = _MISSING
        elif node is _MISSING:
            # below a key the file does not have (set from the environment): keep naming
            if not (isinstance(part, str) and _looks_like_tag(part)):
                out.append(part)
        else:
            break
    return tuple(out)


_MISSING: Final = object()


def _looks_like_tag(part: str) -> bool:
    return any(ch in part for ch in "[]()") or part in {"str", "int", "float", "bool", "list"}


def _rule_name(data: Any, loc: Loc) -> str | None:
    if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
        try:
            name = data["rules"][loc[1]].get("name")
        except (KeyError, IndexError, TypeError, AttributeError):
            return None
        return str(name) if name is not None else f"#{loc[1] + 1}"
    return None


def load_model(path: Path, model: type[M]) -> M:
    """Read ``path`` and validate it as ``model``; raise :class:`FileError` on any problem."""
    data, positions = read_yaml(path)
    return validate(path, data, positions, model)


def validate(path: Path, data: Any, positions: dict[Loc, int], model: type[M]) -> M:
    """Validate parsed YAML as ``model``, mapping errors to lines of ``path``."""
    if data is None:
        raise FileError([Problem(str(path), None, "", "the file is empty")])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise FileError(
            problems_from_validation(exc, str(path), data, positions, _rule_name)
        ) from None


def load_rule_pack(path: Path) -> RulePack:
    """Load and validate a rule pack file."""
    pack, _, _ = _load_pack(path)
    return pack


def load_rule_packs(paths: Sequence[Path]) -> RulePack:
    """Load one rule pack, or merge several into one: the rules of every file in order, rule
    names unique across the files, and the ``flowchart:`` parameters from the one file that
    sets them (the defaults when none does). Problems of every file are reported together."""
    if len(paths) == 1:
        return load_rule_pack(paths[0])
    if not paths:
        raise ValueError("no rule pack to load")
    problems: list[Problem] = []
    loaded: list[tuple[Path, RulePack, Any, dict[Loc, int]]] = []
    for path in paths:
        try:
            loaded.append((path, *_load_pack(path)))
        except FileError as exc:
            problems.extend(exc.problems)
    if problems:
        raise FileError(problems)
    first: dict[str, str] = {}
    flowchart: tuple[RulePack, str] | None = None
    for path, pack, data, positions in loaded:
        if "flowchart" in data:
            where = f"{path}:{_line_for(('flowchart',), positions)}"
            if flowchart is None:
                flowchart = (pack, where)
            else:
                problems.append(
                    Problem(
                        str(path),
                        _line_for(("flowchart",), positions),
                        "flowchart",
                        f"flowchart parameters are already set in {flowchart[1]}; "
                        "set them in one rule pack only",
                    )
                )
        for index, rule in enumerate(pack.rules):
            loc: Loc = ("rules", index, "name")
            line = _line_for(loc, positions)
            if rule.name in first:
                problems.append(
                    Problem(
                        str(path),
                        line,
                        _dotted(loc),
                        f"rule name {rule.name!r} is already defined in {first[rule.name]}; "
                        "names must be unique across rule packs",
                        rule.name,
                    )
                )
            else:
                first[rule.name] = f"{path}:{line}"
    if problems:
        raise FileError(problems)
    rules = tuple(rule for _, pack, _, _ in loaded for rule in pack.rules)
    description = "; ".join(pack.description for _, pack, _, _ in loaded if pack.description)
    if flowchart is None:
        return RulePack(description=description, rules=rules)
    return RulePack(description=description, flowchart=flowchart[0].flowchart, rules=rules)


def _load_pack(path: Path) -> tuple[RulePack, Any, dict[Loc, int]]:
    data, positions = read_yaml(path)
    rules = data.get("rules") if isinstance(data, dict) else None
    if isinstance(rules, list):
        # checked here, not only in the model, so the message points at the second rule
        first: dict[str, int] = {}
        dupes = []
        for index, rule in enumerate(rules):
            name = rule.get("name") if isinstance(rule, dict) else None
            if not isinstance(name, str):
                continue
            loc: Loc = ("rules", index, "name")
            if name in first:
                dupes.append(
                    Problem(
                        str(path),
                        _line_for(loc, positions),
                        _dotted(loc),
                        f"rule name {name!r} is already used on line {first[name]}; "
                        "names must be unique",
                        name,
                    )
                )
            else:
                first[name] = _line_for(loc, positions) or 0
        if dupes:
            raise FileError(dupes)
    return validate(path, data, positions, RulePack), data, positions


def default_rules_path() -> Path:
    """The default pack shipped inside the package (a copy of ``rules/default.yaml``)."""
    return Path(__file__).parent / "data" / "default.yaml"
