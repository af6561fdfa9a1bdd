"""``watchdog check``: shipped rules pass; broken rule files fail naming file, line, rule, field."""

from __future__ import annotations

from pathlib import Path

import pytest

from watchdog.cli import main

FIXTURES = Path(__file__).parent / "fixtures" / "rules"
ROOT = Path(__file__).parent.parent


class TestCheckRules:
    def test_default_pack_passes(self, capsys: pytest.CaptureFixture[str]) -> None:
        """The shipped default pack validates with exit code 0."""
        assert main(["check", "--rules", str(ROOT / "rules" / "default.yaml")]) == 0
        assert "12 rule(s)" in capsys.readouterr().out

    def test_packaged_default_is_the_repo_default(self) -> None:
        """The pack inside the package is the repository's rules/default.yaml."""
        from watchdog.yamlfile import default_rules_path

        assert default_rules_path().read_bytes() == (ROOT / "rules" / "default.yaml").read_bytes()

    @pytest.mark.parametrize(
        ("fixture", "expected"),
        [
            (
                "typo-key.yaml",
                [
                    "typo-key.yaml:6",
                    "rule 'error-rate-critical'",
                    "'rules[0].treshold'",
                    "unknown key",
                ],
            ),
            (
                "bad-duration.yaml",
                ["bad-duration.yaml:13", "rule 'latency-critical'", "sustain.for", "'90s'"],
            ),
            ("bad-severity.yaml", ["bad-severity.yaml:7", "rule 'db-cpu'", "severity", "'P9'"]),
            ("rollback-p2.yaml", ["rollback-p2.yaml:3", "rule 'minor'", "needs severity P0 or P1"]),
            ("duplicate-name.yaml", ["duplicate-name.yaml:4", "already used on line 3"]),
            ("not-yaml.yaml", ["not-yaml.yaml:5", "not valid YAML"]),
            ("duplicate-key.yaml", ["duplicate-key.yaml:7", "appears twice (first on line 6)"]),
            ("bad-op.yaml", ["bad-op.yaml:4", "flowchart.resolve_period", "bad-op.yaml:8", "'=>'"]),
        ],
    )
    def test_broken_pack_names_file_line_rule_field(
        self, fixture: str, expected: list[str], capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A broken pack exits 1 with a message naming where and what, and no traceback."""
        assert main(["check", "--rules", str(FIXTURES / fixture)]) == 1
        err = capsys.readouterr().err
        for text in expected:
            assert text in err
        assert "Traceback" not in err

    def test_missing_file(self, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
        """A missing rules file is one clear line, exit 1."""
        assert main(["check", "--rules", str(tmp_path / "nope.yaml")]) == 1
        assert "file not found" in capsys.readouterr().err


class TestModuleEntryPoint:
    def test_python_dash_m(self) -> None:
        """``python -m watchdog check`` runs the same command line."""
        import subprocess
        import sys

        proc = subprocess.run(
            [sys.executable, "-m", "watchdog", "check", "--rules", str(FIXTURES / "typo-key.yaml")],
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 1
        assert "treshold" in proc.stderr
