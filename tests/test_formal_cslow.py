"""Formal proofs of the C-slow MAC array against its L = 1 reference (formal/cslow.py): each can fail.

The proofs themselves run in ``make formal`` (``ring_adder_l2:equivalence`` also in the quick subset of
tests/test_formal_units.py); here every proof is shown to catch a mutant of what it proves: a cut set
whose stage drops a bit, a value that crosses a cut without its register (a retiming bug), a term
pipeline that does the same, an adder whose +0 is not an identity, a ring one register short, a ring
that ignores a job's first beat.
"""

from __future__ import annotations

import pytest
from amaranth.hdl import Module, Signal

import hw.mac_array
from formal import cslow
from formal.properties import PROPERTIES, QUICK, Property
from formal.run import prove, tools_missing
from hw.float32 import ADDER_HOOKS, TERM_HOOKS


@pytest.fixture(autouse=True)
def _tools():
    missing = tools_missing()
    if missing:
        pytest.skip(missing)


def _register_all(m: Module, tag: str, *, bypass: str | None = None, drop_top_of: str | None = None):
    """A cut hook that registers every value, except that ``bypass`` crosses unregistered and
    ``drop_top_of`` loses its top bit in its register."""

    def cut(values: dict) -> dict:
        out = {}
        for name, value in values.items():
            if name == bypass:
                out[name] = value
                continue
            reg = Signal(value.shape(), name=f"{tag}_{name}")
            m.d.sync += reg.eq(value[:-1] if name == drop_top_of else value)
            out[name] = reg
        return out

    return cut


def _adder_hooks(m: Module, at: int, **mutation):
    none = lambda values: values  # noqa: E731
    return tuple(_register_all(m, f"mut_a{k}", **mutation) if k == at else none for k in range(ADDER_HOOKS))


def _outcome(prop: Property, tmp_path) -> str:
    outcome = prove(prop, root=tmp_path)
    assert outcome.status in ("PASS", "FAIL"), f"{prop.name}: {outcome.status}, see {outcome.directory}/sby.log"
    return outcome.status


def test_every_ring_cut_set_is_registered_and_the_l2_proof_is_quick():
    names = {p.name for p in PROPERTIES}
    for interleave in cslow.ADDER_INTERLEAVES:
        assert f"ring_adder_l{interleave}:equivalence" in names
    # L >= 8 all share the seven-hook cut set the L = 8 proof covers.
    assert cslow.adder_registers(8) == cslow.adder_registers(12) == ADDER_HOOKS
    assert [cslow.adder_registers(L) for L in range(1, 8)] == list(range(7))
    assert "ring_adder_l2:equivalence" in {p.name for p in QUICK}


def test_the_register_mutant_itself_is_a_correct_pipeline(tmp_path):
    """The mutants below differ from a correct one-register cut only by their mutation."""
    prop = Property("mut-good", "x", cslow.adder_equivalence(2, cut_hooks=lambda m: _adder_hooks(m, 3)), 2)
    assert _outcome(prop, tmp_path) == "PASS"


def test_the_adder_proof_catches_a_stage_that_drops_a_bit(tmp_path):
    hooks = lambda m: _adder_hooks(m, 3, drop_top_of="total")  # noqa: E731
    assert _outcome(Property("mut-drop", "x", cslow.adder_equivalence(2, cut_hooks=hooks), 2), tmp_path) == "FAIL"


def test_the_adder_proof_catches_a_value_that_skips_its_cut(tmp_path):
    hooks = lambda m: _adder_hooks(m, 1, bypass="distance")  # noqa: E731
    assert _outcome(Property("mut-skip", "x", cslow.adder_equivalence(2, cut_hooks=hooks), 2), tmp_path) == "FAIL"


def test_the_term_proof_catches_a_value_that_skips_its_cut(tmp_path):
    def hooks(m):
        return tuple(_register_all(m, f"mut_t{k}", bypass="sticky" if k == 2 else None) for k in range(TERM_HOOKS))

    assert _outcome(Property("mut-term", "x", cslow.term_equivalence(16, cut_hooks=hooks), 4), tmp_path) == "FAIL"


def test_the_nvfp4_round_proof_catches_a_value_that_skips_its_cut(tmp_path):
    from hw.float32 import ROUND_HOOKS

    def hooks(m):
        return tuple(_register_all(m, f"mut_r{k}", bypass="sticky" if k == 2 else None) for k in range(ROUND_HOOKS))

    prop = Property("mut-round", "x", cslow.nvfp4_round_equivalence(16, cut_hooks=hooks), 5)
    assert _outcome(prop, tmp_path) == "FAIL"


def test_the_identity_proof_catches_an_adder_that_flushes_subnormals(tmp_path, monkeypatch):
    real = cslow.add_binary32

    def flushing(m, a, b, prefix, cuts=None):
        total = real(m, a, b, prefix)
        out = Signal(32, name=f"{prefix}_flushed")
        m.d.comb += out.eq(total)
        with m.If(total[23:31] == 0):
            m.d.comb += out.eq(total & 0x80000000)
        return out

    monkeypatch.setattr(cslow, "add_binary32", flushing)
    assert _outcome(Property("mut-flush", "x", cslow.adder_identity(), 1), tmp_path) == "FAIL"


@pytest.mark.slow
@pytest.mark.parametrize("interleave", [4, 8])
def test_the_ring_adder_is_proved_for_the_tile_interleaves(interleave, tmp_path):
    prop = next(p for p in PROPERTIES if p.name == f"ring_adder_l{interleave}:equivalence")
    assert _outcome(prop, tmp_path) == "PASS"


def test_the_adder_cut_hooks_are_the_hardwares(monkeypatch):
    """The properties build the real ``hw.mac_array.adder_cuts``: a changed cut set changes the proof."""
    monkeypatch.setitem(hw.mac_array.ADDER_CUTS, 2, (0, 3))
    assert cslow.adder_registers(2) == 2


# Part 2: the ring order (formal/cslow.py ``ring_order``: the real array and PE control, tag arithmetic).
def _ring_property(interleave: int, depth: int) -> Property:
    config = next(c for c, _ in cslow.RING_CONFIGS if c.interleave == interleave)
    return Property(f"mut-ring-l{interleave}", "x", cslow.ring_order(config), depth)


def test_the_ring_model_keeps_the_hardware_ring_length():
    """The tag adder passes through the real cut hooks: the ring is as long as the hardware's (L)."""
    for interleave in (1, 2, 4, 8):
        assert cslow.adder_registers(interleave) + 1 + max(0, interleave - ADDER_HOOKS - 1) == interleave


def test_the_ring_order_proof_catches_a_ring_one_register_short(tmp_path, monkeypatch):
    real = hw.mac_array.adder_cuts
    monkeypatch.setattr(hw.mac_array, "adder_cuts", lambda m, interleave, prefix: real(m, interleave - 1, prefix))
    assert _outcome(_ring_property(2, 16), tmp_path) == "FAIL"


def test_the_ring_order_proof_catches_a_ring_that_ignores_first(tmp_path, monkeypatch):
    """A ring whose slot does not restart from +0 at a job's first beat (``start`` ignored)."""

    def ring_without_start(m, term, start, done_in, interleave, done_port):
        ring = Signal(32, name="ring")
        total = hw.mac_array.add_binary32(m, ring, term, "add", cuts=hw.mac_array.adder_cuts(m, interleave, "add"))
        loop = hw.mac_array._register(m, total, "ring_0")
        m.d.comb += ring.eq(loop)
        done = done_in
        for k in range(interleave):
            done = hw.mac_array._register(m, done, f"done_{k}")
        m.d.comb += done_port.eq(done)
        return ring

    monkeypatch.setattr(hw.mac_array, "_adder_ring", ring_without_start)
    assert _outcome(_ring_property(2, 16), tmp_path) == "FAIL"


@pytest.mark.slow
def test_the_ring_order_proof_passes_on_the_real_ring_at_a_short_depth(tmp_path):
    assert _outcome(_ring_property(2, 16), tmp_path) == "PASS"


def test_the_tag_model_is_only_seen_by_the_thread_that_elaborates_with_it():
    """``python -m formal`` builds in threads: a MAC array elaborated elsewhere meanwhile stays real."""
    import threading

    real = hw.mac_array.add_binary32
    names = {}

    def elaborate(tag):
        m = Module()
        m._MustUse__silence = True
        names[tag] = hw.mac_array.add_binary32(m, Signal(32), Signal(32), tag, cuts=(lambda v: v,) * ADDER_HOOKS)
        names[tag] = getattr(names[tag], "name", None)

    with cslow._abstract_arithmetic():
        other = threading.Thread(target=elaborate, args=("other",))
        other.start()
        other.join()
        elaborate("model")
    assert names["other"] == "other_bits"  # the real adder's result signal
    assert names["model"] is None  # the tag model: an expression, not the real adder's result signal
    assert hw.mac_array.add_binary32 is real
