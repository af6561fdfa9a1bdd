"""Several rule packs merged into one (the config's ``rules:`` list, repeated ``--rules``):
every file's rules in order, names unique across files, one file's flowchart parameters."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from watchdog.cli import main
from watchdog.config import load_settings
from watchdog.yamlfile import FileError, default_rules_path, load_rule_pack, load_rule_packs

TEAM = """version: 1
description: team extras
rules:
  - name: checkout-latency
    signal: latency_p95_s
    op: ">"
    threshold: 1.5
    sustain: {for: 5m}
    severity: investigate
"""
TARGETS = (
    "targets:\n  - name: web\n    sources:\n      - {kind: health, url: 'https://x.example/h'}\n"
)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


class TestMerge:
    def test_rules_of_every_file_in_order(self, tmp_path: Path) -> None:
        """The merged pack has the default rules, then the team's; the default flowchart."""
        default = load_rule_pack(default_rules_path())
        merged = load_rule_packs([default_rules_path(), write(tmp_path, "team.yaml", TEAM)])
        assert [r.name for r in merged.rules] == [
            *(r.name for r in default.rules),
            "checkout-latency",
        ]
        assert merged.flowchart == default.flowchart
        assert merged.rule("checkout-latency").sustain.for_ == timedelta(minutes=5)

    def test_flowchart_comes_from_the_file_that_sets_it(self, tmp_path: Path) -> None:
        """The flowchart parameters are taken from whichever file sets them, not the first."""
        team = write(tmp_path, "team.yaml", TEAM)
        merged = load_rule_packs([team, default_rules_path()])
        assert merged.flowchart == load_rule_pack(default_rules_path()).flowchart
        assert merged.rules[0].name == "checkout-latency"

    def test_duplicate_name_across_files_names_both(self, tmp_path: Path) -> None:
        """A rule name used in two files is an error naming the second file's line and the
        first file's."""
        clash = write(tmp_path, "team.yaml", TEAM.replace("checkout-latency", "latency-critical"))
        with pytest.raises(FileError) as caught:
            load_rule_packs([default_rules_path(), clash])
        (problem,) = caught.value.problems
        text = str(problem)
        assert text.startswith(f"{clash}:4: rule 'latency-critical': field 'rules[0].name': ")
        assert f"already defined in {default_rules_path()}:" in text

    def test_two_flowcharts_are_refused(self, tmp_path: Path) -> None:
        """Two files setting flowchart parameters is an error naming both."""
        other = write(tmp_path, "team.yaml", TEAM + "flowchart:\n  cooldown: 1h\n")
        with pytest.raises(FileError, match=rf"{other}:10: field 'flowchart': .*already set in"):
            load_rule_packs([default_rules_path(), other])

    def test_problems_of_every_file_are_listed(self, tmp_path: Path) -> None:
        """A broken file does not hide another broken file's problems."""
        a = write(tmp_path, "a.yaml", TEAM.replace("severity: investigate", "severity: P9"))
        b = write(tmp_path, "b.yaml", "version: 1\nrules: []\n")
        with pytest.raises(FileError) as caught:
            load_rule_packs([a, b])
        files = {p.file for p in caught.value.problems}
        assert files == {str(a), str(b)}


class TestConfigAndCli:
    def test_config_lists_several_packs(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`rules:` may be a list; `watchdog check` validates the merged pack."""
        team = write(tmp_path, "team.yaml", TEAM)
        config = write(
            tmp_path, "c.yaml", f"rules:\n  - {default_rules_path()}\n  - {team}\n{TARGETS}"
        )
        assert load_settings(config).rule_files() == [default_rules_path(), team]
        assert main(["check", "--config", str(config)]) == 0
        assert "13 rule(s)" in capsys.readouterr().out

    def test_check_reports_a_clash_between_configured_packs(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A clash between the config's packs fails check with exit 1 and both file names."""
        clash = write(tmp_path, "team.yaml", TEAM.replace("checkout-latency", "system-down"))
        config = write(
            tmp_path, "c.yaml", f"rules:\n  - {default_rules_path()}\n  - {clash}\n{TARGETS}"
        )
        assert main(["check", "--config", str(config)]) == 1
        err = capsys.readouterr().err
        assert str(clash) in err
        assert str(default_rules_path()) in err

    def test_run_loads_every_configured_pack(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`watchdog run` reads every pack of the list: a clash in the second stops start-up
        with exit 1 before anything runs."""
        clash = write(tmp_path, "team.yaml", TEAM.replace("checkout-latency", "system-down"))
        config = write(
            tmp_path,
            "c.yaml",
            f"rules:\n  - {default_rules_path()}\n  - {clash}\nstore:\n  url: memory://\n"
            + TARGETS,
        )
        assert main(["run", "--config", str(config)]) == 1
        assert "'system-down' is already defined in" in capsys.readouterr().err

    def test_empty_list_is_refused(self, tmp_path: Path) -> None:
        """`rules: []` is a config error, not a silent fallback to the default pack."""
        config = write(tmp_path, "c.yaml", f"rules: []\n{TARGETS}")
        with pytest.raises(FileError, match=r"c.yaml:1: field 'rules': an empty list"):
            load_settings(config)

    def test_repeated_rules_option(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`--rules A --rules B` checks the merged pack."""
        team = write(tmp_path, "team.yaml", TEAM)
        assert main(["check", "--rules", str(default_rules_path()), "--rules", str(team)]) == 0
        assert "13 rule(s)" in capsys.readouterr().out
