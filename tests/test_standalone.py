"""The repository stands alone: a clone has every file its code, tests and docs point to.

Nothing tracked points outside the repository for the reference facts (they are restated in ``docs/reference/``),
every section a docstring or doc cites there exists, and the real sample files the tests read are in the fixtures
with their attribution.
"""

from __future__ import annotations

import re
import subprocess

import pytest
from conftest import REAL_SAMPLES, ROOT

REFERENCE = ROOT / "docs" / "reference"
PAGES = {
    "internet": "internet.md",
    "datasets": "datasets.md",
    "modules": "modules.md",
    "design_notes": "design_notes.md",
}
#: "internet §5.3", "datasets §B.4", "`docs/reference/design_notes.md` §5.1", "modules §5.6", ...
CITATION = re.compile(
    r"(?:docs/reference/)?\b(internet|datasets|modules|design_notes)(?:\.md)?`{0,2} ?§ ?([0-9A-F](?:\.[0-9]+)?)"
)


def _tracked_text_files() -> list[str]:
    names = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    return [
        n
        for n in names
        if n.endswith((".py", ".md", ".yaml", ".yml", ".toml", ".ipynb", ".txt", ".cfg")) or n == "Makefile"
    ]


def _headings(page: str) -> set[str]:
    """The section numbers of a reference page: "5.3" from "### 5.3 …", "B.4" from "### B.4 …", "7.2" from
    "- **7.2 …", "3.1" from "1. **3.1 …"."""
    numbers = set()
    for line in (REFERENCE / page).read_text().splitlines():
        match = re.match(r"^(?:\d+\.\s+)?(?:#+\s*|\*\*|- \*\*|)(?:§\s*)?([0-9A-F](?:\.[0-9]+)*)[.)\s*]", line.strip())
        if match:
            numbers.add(match.group(1).rstrip("."))
    return numbers


def test_nothing_tracked_points_outside_the_repository() -> None:
    outside = ["../" + "shared", "shared" + "/spec", "shared" + "/real_samples", "shared" + "/paper"]
    offenders = []
    for name in _tracked_text_files():
        text = (ROOT / name).read_text(errors="replace")
        offenders += [f"{name}: {needle}" for needle in outside if needle in text]
    assert not offenders, "files that point outside the repository:\n" + "\n".join(offenders)


def test_every_cited_reference_section_exists() -> None:
    headings = {key: _headings(page) for key, page in PAGES.items()}
    missing = []
    cited = 0
    for name in _tracked_text_files():
        if name.startswith("docs/reference/"):
            continue
        for match in CITATION.finditer((ROOT / name).read_text(errors="replace")):
            key, section = match.groups()
            cited += 1
            if section not in headings[key]:
                missing.append(f"{name}: {key} §{section}")
    assert cited > 50  # the code really cites these pages
    assert not missing, "citations of sections that docs/reference does not have:\n" + "\n".join(sorted(set(missing)))


@pytest.mark.parametrize("page", [*PAGES.values(), "conventions.md"])
def test_reference_pages_exist_and_stand_alone(page: str) -> None:
    text = (REFERENCE / page).read_text()
    assert len(text.splitlines()) > 20
    assert "shared" + "/" not in text


def test_the_real_samples_are_in_the_fixtures_with_their_attribution() -> None:
    expected = {
        "rhd": {"00111.png", "01111.png", "11111.png", "test_rhd.json"},
        "interhand2.6m": {
            "image2017.jpg",
            "image29590.jpg",
            "image44669.jpg",
            "image69148.jpg",
            "test_interhand2.6m_camera.json",
            "test_interhand2.6m_data.json",
            "test_interhand2.6m_joint_3d.json",
        },
    }
    for folder, files in expected.items():
        assert {p.name for p in (REAL_SAMPLES / folder).iterdir()} == files
    readme = (REAL_SAMPLES / "README.md").read_text()
    assert "MMPose" in readme and "Apache" in readme


def _architecture_tree() -> set[str]:
    """The file paths named by the tree in docs/architecture.md (two spaces of indent per folder level)."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    block = text.split("```\nsrc/internet_plus/\n", 1)[1].split("```", 1)[0]
    stack: list[str] = []
    paths = set()
    for line in block.splitlines():
        stripped = line.lstrip(" ")
        if not stripped or len(line) - len(stripped) > 2 * (len(stack) + 1):
            continue  # a continuation line of a description
        depth = (len(line) - len(stripped)) // 2 - 1
        name = stripped.split()[0]
        stack = stack[:depth]
        if name.endswith("/"):
            stack.append(name.rstrip("/"))
        else:
            paths.add("/".join([*stack, name]))
    return paths


def test_the_architecture_page_names_every_module() -> None:
    package = ROOT / "src" / "internet_plus"
    modules = {
        str(p.relative_to(package))
        for p in package.rglob("*.py")
        if p.read_text().strip()  # empty __init__.py files only mark packages
    }
    named = _architecture_tree()
    assert not modules - named, f"modules missing from docs/architecture.md: {sorted(modules - named)}"
    assert not named - modules, f"docs/architecture.md names files that do not exist: {sorted(named - modules)}"


def test_lightning_is_imported_as_pytorch_lightning() -> None:
    """The project depends on the ``pytorch-lightning`` distribution and imports ``pytorch_lightning`` (and its
    ``lightning_fabric``), never the ``lightning`` umbrella package: mixing the two namespaces breaks isinstance
    checks between their classes."""
    umbrella = re.compile(r"^\s*(?:import lightning\b|from lightning\.)|_target_: lightning\.", re.MULTILINE)
    offenders = [
        n for n in _tracked_text_files() if not n.startswith("docs/") and umbrella.search((ROOT / n).read_text())
    ]
    assert not offenders, offenders
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"pytorch-lightning>=' in pyproject and '"lightning>=' not in pyproject
