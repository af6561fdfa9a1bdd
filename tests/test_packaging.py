"""Packaging metadata and the README as a package index shows it (no repository around it).

The built artefacts themselves are checked by ``scripts/install-check.sh`` (wheel and sdist
built with no warnings, installed without extras into a fresh venv, run from outside the tree).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).parent.parent
REPO = "https://github.com/rollback-watchdog/rollback-watchdog"
README = (ROOT / "README.md").read_text()
INLINE = re.compile(r"\[[^\]]+\]\(([^)\s]+)\)")
REFERENCE_USE = re.compile(r"\[[^\]]+\]\[([^\]]+)\]")
REFERENCE_DEF = re.compile(r"^\[([^\]]+)\]:\s*(\S+)\s*$", re.MULTILINE)


def project() -> dict[str, object]:
    data: dict[str, object] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return data


def github_slug(heading: str) -> str:
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def readme_targets() -> list[str]:
    defs = dict(REFERENCE_DEF.findall(README))
    used = REFERENCE_USE.findall(README)
    assert set(used) <= set(defs), f"undefined references: {set(used) - set(defs)}"
    return INLINE.findall(README) + [defs[name] for name in used]


class TestReadmeLinks:
    def test_no_relative_links(self) -> None:
        """Every link is absolute or an anchor, so it works on a package index page."""
        relative = [t for t in readme_targets() if not t.startswith(("https://", "#"))]
        assert not relative

    def test_repository_links_name_existing_paths(self) -> None:
        """Each link into the repository names a file (blob) or folder (tree) that exists."""
        prefix = re.compile(rf"^{re.escape(REPO)}/(blob|tree)/main/(.+)$")
        found = 0
        for target in readme_targets():
            match = prefix.match(target)
            if not match:
                continue
            found += 1
            kind, path = match.groups()
            assert (ROOT / path).is_file() if kind == "blob" else (ROOT / path).is_dir(), target
        assert found >= 10

    def test_anchors_name_headings(self) -> None:
        """Every #anchor matches a heading (GitHub's slug rules)."""
        slugs = {github_slug(h) for h in re.findall(r"^#+ (.+)$", README, re.MULTILINE)}
        anchors = {t[1:] for t in readme_targets() if t.startswith("#")}
        assert anchors
        assert anchors <= slugs, anchors - slugs


class TestMetadata:
    def test_license_file_and_expression(self) -> None:
        """The MIT expression comes with the LICENSE file it promises."""
        assert project()["license"] == "MIT"
        assert project()["license-files"] == ["LICENSE"]
        text = (ROOT / "LICENSE").read_text()
        assert text.startswith("MIT License")
        assert "Copyright (c) 2026 rollback-watchdog contributors" in text

    def test_build_requirement_supports_the_license_expression(self) -> None:
        """setuptools understands `license = "MIT"` (PEP 639) from version 77."""
        build = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]
        assert "setuptools>=77" in build["requires"]

    def test_index_page_metadata(self) -> None:
        """Classifiers, authors and project URLs pointing at the repository are declared."""
        data = project()
        assert data["authors"] == [{"name": "rollback-watchdog contributors"}]
        classifiers = data["classifiers"]
        assert isinstance(classifiers, list)
        assert "Programming Language :: Python :: 3.11" in classifiers
        # a License classifier next to a license expression is an error under PEP 639
        assert not [c for c in classifiers if c.startswith("License ::")]
        urls = data["urls"]
        assert isinstance(urls, dict)
        assert urls["Homepage"] == REPO
        assert all(u.startswith(REPO) for u in urls.values())
