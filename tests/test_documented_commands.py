"""Every command the README and the experiment pages show runs as written (placeholders filled in).

The commands are read out of the Markdown: each ``python train.py …`` / ``python eval.py …`` is composed with Hydra
exactly as the entry point would (a sweep's first value standing in for the sweep) and its whole config resolved, so
an override of a key that does not exist, an interpolation that cannot resolve or a missing config option fails here;
each ``make …`` is dry-run (``make -n``). The docs cannot drift from the code again.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT, compose_config
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

PAGES = [ROOT / "README.md", *sorted((ROOT / "experiments").glob("*/README.md")), ROOT / "experiments" / "README.md"]
COMMAND = re.compile(r"(?:^|`)((?:python (?:train|eval)\.py|make [a-z][\w-]*)(?:\\\n|[^`\n])*)", re.MULTILINE)
#: Commands the pages show on purpose as mistakes (the "What happens when…" table): they must fail to compose.
SHOWN_AS_MISTAKES = {"python train.py backbone=nope"}
PLACEHOLDER = re.compile(r"<[^<>\n]*>|/path/to/[\w.\-/]*|/data/[\w.\-/]*")


def documented_commands() -> list[tuple[str, str]]:
    """(page, command) for every command line in the pages, in code blocks and inline code alike."""
    found = []
    for page in PAGES:
        for match in COMMAND.finditer(page.read_text()):
            command = match.group(1).replace("\\\n", " ")
            command = re.split(r"\s+#\s", command)[0].strip()  # drop a trailing shell comment
            command = command.rstrip("`.,;:)")
            found.append((str(page.relative_to(ROOT)), command))
    return found


COMMANDS = documented_commands()


def _fill(text: str, tmp_path: Path) -> str:
    return PLACEHOLDER.sub(lambda m: str(tmp_path / "placeholder"), text)


def _first_of_sweeps(overrides: list[str]) -> list[str]:
    """``k=a,b`` → ``k=a`` (compose takes one value; the sweep's other values compose the same way)."""
    parser = OverridesParser.create()
    out = []
    for text in overrides:
        override = parser.parse_override(text)
        if override.is_sweep_override():
            value = next(iter(override.sweep_string_iterator()))
            text = f"{override.get_key_element()}={value}"
        out.append(text)
    return out


def test_the_pages_show_commands() -> None:
    scripts = {c.split()[1] for _, c in COMMANDS if c.startswith("python")}
    assert {"train.py", "eval.py"} <= scripts and len(COMMANDS) > 20


@pytest.mark.parametrize(("page", "command"), [c for c in COMMANDS if c[1].startswith("python")], ids=str)
def test_documented_python_command_composes(page: str, command: str, tmp_path: Path) -> None:
    words = shlex.split(_fill(command, tmp_path))
    script, args = words[1], words[2:]
    for flag in ("--cfg", "-c", "--package", "-p"):  # Hydra's flags that take a value
        while flag in args:
            index = args.index(flag)
            del args[index : index + 2]
    overrides = [w for w in args if not w.startswith("-")]
    assert all("=" in w for w in overrides), f"{page}: not an override in {command!r}"
    if command in SHOWN_AS_MISTAKES:
        with pytest.raises(Exception, match="backbone"):
            compose_config(Path(script).stem, overrides, tmp_path / "run")
        return
    cfg = compose_config(Path(script).stem, _first_of_sweeps(overrides), tmp_path / "run")
    OmegaConf.to_container(cfg, resolve=True)  # every interpolation resolves (hydra's own node included)


@pytest.mark.parametrize(("page", "command"), [c for c in COMMANDS if c[1].startswith("make")], ids=str)
def test_documented_make_command_exists(page: str, command: str, tmp_path: Path) -> None:
    words = shlex.split(_fill(command, tmp_path))
    proc = subprocess.run(["make", "-n", *words[1:]], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"{page}: `{command}` -> {proc.stderr.strip()}"
