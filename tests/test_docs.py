"""The docs stay true: the CLI reference is current and the README shows the two commands."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_cli_reference_is_current():
    spec = importlib.util.spec_from_file_location("gen_cli", ROOT / "docs" / "gen_cli.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    assert (ROOT / "docs" / "cli.md").read_text() == gen.generate(), "run: python docs/gen_cli.py"


def test_readme_shows_the_two_commands_and_ci_runs_the_tests():
    readme = (ROOT / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_every_plugin_has_a_page():
    import re

    section = (ROOT / "pyproject.toml").read_text().split("[project.entry-points.artforge]")[1].split("\n[")[0]
    names = re.findall(r"^(\w+) = ", section, re.M)
    assert {"hsv", "palette", "ascii", "sigil", "saml"} <= set(names)
    for name in names:
        assert (ROOT / "docs" / "plugins" / f"{name}.md").is_file(), f"docs/plugins/{name}.md is missing"
        assert f"docs/plugins/{name}.md" in (ROOT / "README.md").read_text(), f"README does not link {name}"


def test_pictures_linked_from_docs_exist():
    import re

    for page in [ROOT / "README.md", *(ROOT / "docs").rglob("*.md")]:
        for link in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", page.read_text()):
            assert (page.parent / link).is_file(), f"{page.relative_to(ROOT)} links a missing picture {link}"
