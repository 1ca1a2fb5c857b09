"""``python -m internet_plus.tools.protocol_effects``: the measured effects of the protocol departures that
docs/fidelity.md quotes."""

from __future__ import annotations

from pathlib import Path

import pytest

from internet_plus.tools import protocol_effects

ROOT = Path(__file__).resolve().parents[1]


def test_protocol_effects_known_answers() -> None:
    wrists = protocol_effects.wrist_rule_effect(samples=50)
    assert wrists["ring_mcp"]["wrist_error"] == pytest.approx(0.0, abs=1e-9)  # the premise: ring_mcp is exact
    assert all(m["wrist_error"] > 5.0 for rule, m in wrists.items() if rule != "ring_mcp")
    assert protocol_effects.carve_out() == {"RHD": (41_258, 2_063), "STB": (15_000, 750)}
    effects = protocol_effects.pooled_vs_per_joint(samples=300)
    stb = effects["all joints (STB-like)"]
    assert stb["pooled"] == pytest.approx(stb["per_joint"], abs=0.05)  # every keypoint scored (almost) equally often
    assert effects["visible only (RHD-like)"]["per_joint"] > effects["visible only (RHD-like)"]["pooled"]


@pytest.mark.slow
def test_protocol_effects_tool_prints_the_documented_tables() -> None:
    doc = (ROOT / "docs" / "fidelity.md").read_text()
    for line in protocol_effects.rows():
        assert line in doc, line
