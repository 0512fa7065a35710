"""The mutation check's list (``sim.mutants``): every mutant still applies to the current source,
changes it, and names killer tests that exist. (``make mutants`` runs the kills themselves.)"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from sim.mutants import MUTANTS, REPO, MutantError, apply_mutant


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.name for m in MUTANTS])
def test_mutant_applies_exactly_once(mutant, tmp_path):
    shutil.copytree(REPO / "hw", tmp_path / "hw")
    before = (tmp_path / mutant.file).read_text()
    apply_mutant(mutant, tmp_path)
    after = (tmp_path / mutant.file).read_text()
    assert after != before
    compile(after, mutant.file, "exec")  # still Python


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.name for m in MUTANTS])
def test_killers_exist(mutant):
    assert mutant.killers and mutant.why
    for node in mutant.killers:
        path, _, name = node.partition("::")
        function = re.sub(r"\[.*\]$", "", name)
        assert re.search(rf"^def {function}\(", (REPO / path).read_text(), re.M), f"{node} does not exist"


def test_a_stale_mutant_is_reported(tmp_path):
    shutil.copytree(REPO / "hw", tmp_path / "hw")
    stale = MUTANTS[0].__class__("stale", "hw/mac_array.py", "no such snippet", "x", ("t",), "why")
    with pytest.raises(MutantError, match="stale"):
        apply_mutant(stale, tmp_path)


def test_names_are_unique():
    assert len({m.name for m in MUTANTS}) == len(MUTANTS)
