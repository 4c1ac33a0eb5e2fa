"""`just up` runs the product; it never installs or upgrades system packages (issue 8, item 11)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
SYSTEM_PACKAGE_MANAGERS = re.compile(r"\b(apt-get|apt|dpkg|yum|dnf|zypper|apk|brew|snap)\s+(install|add|upgrade|-i)\b")
RECIPE = re.compile(r"^([A-Za-z0-9_-]+)(?:\s+[^:]*)?:(?!=)\s*(.*)$")


def justfile_recipes() -> dict[str, tuple[list[str], list[str]]]:
    """Recipe name -> (its dependencies, its body lines)."""
    recipes: dict[str, tuple[list[str], list[str]]] = {}
    current: list[str] | None = None
    for line in (ROOT / "Justfile").read_text().splitlines():
        if line.startswith((" ", "\t")):
            if current is not None and line.strip():
                current.append(line.strip())
            continue
        current = None
        match = RECIPE.match(line)
        if match and not line.startswith(("set ", "#")):
            body: list[str] = []
            recipes[match.group(1)] = (match.group(2).split(), body)
            current = body
    return recipes


def commands_run_by(recipe: str, recipes: dict[str, tuple[list[str], list[str]]]) -> list[str]:
    deps, body = recipes[recipe]
    lines = [line for dep in deps for line in commands_run_by(dep, recipes)] + body
    # Follow the scripts a recipe runs, one level deep is all the Justfile uses.
    for line in list(lines):
        for script in re.findall(r"(?:scripts|libs)/[\w./-]+\.sh", line):
            lines.extend((ROOT / script).read_text().splitlines())
    return lines


def test_just_up_and_what_it_depends_on_install_no_system_packages() -> None:
    recipes = justfile_recipes()
    assert {"up", "setup", "models"} <= recipes.keys()
    offending = [line for line in commands_run_by("up", recipes) if SYSTEM_PACKAGE_MANAGERS.search(line)]
    assert offending == []


def test_the_cli_that_up_runs_calls_no_system_package_manager() -> None:
    sources = (ROOT / "libs" / "gyre-cli" / "gyre_cli").glob("*.py")
    offending = [p.name for p in sources if SYSTEM_PACKAGE_MANAGERS.search(p.read_text())]
    assert offending == []


def test_the_browser_for_the_tests_is_installed_by_the_test_setup() -> None:
    recipes = justfile_recipes()
    assert any(SYSTEM_PACKAGE_MANAGERS.search(line) for line in commands_run_by("test", recipes))
