"""The formal properties of the hardware units: one ``Property`` per (unit configuration, claim).

Each property builds a top-level module: the unit, the generic stream contract of
``formal.harness`` bound to its ``i``/``o`` ports, and for the DSU the argmin specification
checked on one solver-chosen block. ``PROPERTIES`` is the list ``make formal`` proves;
``QUICK`` the subset ``make test`` runs. The depth of every bounded proof is part of the property
(``depth``: cycles from reset, enough for a beat to enter, wait out the longest back-pressure the
bound allows and leave); formal/README.md lists them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Array, Assert, Cat, Const, Module, Signal

from golden.formats import CODE_BITS
from hw import Book, DecoderConfig, DSUConfig, FrontEndConfig, MACArrayConfig, TwoStageConfig, UnitConfig
from hw import build_unit, unit_timing
from hw.common import tree_reduce
from hw.layouts import selector_in_layout

from .harness import stream_contract, track_transaction

__all__ = ["OPEN", "PROPERTIES", "QUICK", "Property"]


@dataclass(frozen=True)
class Property:
    name: str
    claim: str
    build: Callable[[], tuple[Module, list]]  # (top module, free input ports)
    depth: int
    mode: str = "bmc"  # "bmc" (bounded, `depth` cycles) or "prove" (k-induction, unbounded)
    engine: str = "smtbmc yices"  # the SymbiYosys engine line

    @property
    def config_name(self) -> str:
        return self.name.split(":")[0]


#: Jobs each unit can hold at once (the ``owed`` bound of the contract): the selectors hold a block
#: in the cost stage and one in the output register; the MAC array's three stages can each carry a
#: finished job; the one-register units hold one.
def _capacity(config: UnitConfig) -> int:
    if isinstance(config, (DSUConfig, TwoStageConfig)):
        return 2
    if isinstance(config, MACArrayConfig):  # issue 10: outputs in flight are bounded by the output FIFO's credit
        from hw.mac_array import MACArray

        return MACArray.output_depth(config)
    return 1


def _ports(unit) -> list:
    return [unit.i.valid, unit.i.payload.as_value(), unit.o.ready]


def _contract(config: UnitConfig):
    def build():
        m = Module()
        m.submodules.dut = unit = build_unit(config)
        timing = unit_timing(config)
        completes = (lambda p: p.last) if isinstance(config, MACArrayConfig) else None
        stream_contract(m, unit.i, unit.o, latency=timing.latency, capacity=_capacity(config), completes=completes)
        return m, _ports(unit)

    return build


def _dsu_argmin(config: DSUConfig):
    """On any block: the chosen dialect is allowed, costs no more than any allowed dialect and
    strictly less than every allowed lower id; the codes are ``(s << 3) | IDX[d][u]``; the exponent
    passes through. (An all-zero mask is outside the contract and gives dialect 0.)"""

    def build():
        m = Module()
        m.submodules.dut = unit = build_unit(config)
        timing = unit_timing(config)
        contract = stream_contract(m, unit.i, unit.o, latency=timing.latency, capacity=_capacity(config))
        tracked = track_transaction(m, unit.i, unit.o, contract, selector_in_layout(config))
        book = config.book.formatbook
        err, idx = np.asarray(book.err_table), np.asarray(book.idx_table)
        block = tracked.payload
        cost_bits = (config.block * int(err.max())).bit_length()
        costs = []
        for d in range(book.num_dialects):
            table = Array(Const(int(v), book.err_bits) for v in err[d])
            terms = []
            for i in range(config.block):
                term = Signal(book.err_bits, name=f"spec_err_{d}_{i}")
                m.d.comb += term.eq(table[block.ucodes[i]])
                terms.append(term)
            cost = Signal(cost_bits, name=f"spec_cost_{d}")
            m.d.comb += cost.eq(tree_reduce(terms, lambda a, b: a + b))
            costs.append(cost)
        chosen = unit.o.payload.dialect
        chosen_cost = Signal(cost_bits, name="spec_chosen_cost")
        m.d.comb += chosen_cost.eq(Array(costs)[chosen])
        with m.If(tracked.arrived & (block.mask != 0)):
            m.d.comb += Assert(block.mask.bit_select(chosen, 1))
            for d in range(book.num_dialects):
                with m.If(block.mask[d]):
                    m.d.comb += Assert(chosen_cost <= costs[d])
                    with m.If(chosen > d):
                        m.d.comb += Assert(chosen_cost < costs[d])
        with m.If(tracked.arrived):
            m.d.comb += Assert(unit.o.payload.exponent == block.exponent)
            # IDX as one table indexed by {dialect, u} (the unit's own encoder ROM is built the same
            # way from golden's idx_table; here the constants come straight from golden).
            ubits = len(block.ucodes[0])
            flat = [0] * (book.num_dialects << ubits)
            for d in range(book.num_dialects):
                for u in range(idx.shape[1]):
                    flat[(d << ubits) | u] = int(idx[d, u])
            idx_table = Array(Const(v, CODE_BITS - 1) for v in flat)
            for i in range(config.block):
                index = Signal(CODE_BITS - 1, name=f"spec_index_{i}")
                m.d.comb += index.eq(idx_table[Cat(block.ucodes[i], chosen)])
                m.d.comb += Assert(unit.o.payload.codes[i] == Cat(index, block.signs[i]))
        return m, _ports(unit) + [tracked.pick]

    return build


#: Unit configurations the stream contract is proved on (small blocks keep the solver quick; the
#: logic is the same generator at every block size).
CONTRACT_CONFIGS: tuple[UnitConfig, ...] = (
    FrontEndConfig(block=16),
    DSUConfig(book=Book.FB32, block=16),
    DSUConfig(book=Book.FB32, block=16, dialects_per_cycle=8),
    DSUConfig(book=Book.DIALECTFP4_16, block=16),
    TwoStageConfig(block=16),
    DecoderConfig(lanes=2),
    MACArrayConfig(rows=1, cols=1, block=16),
)


def _contract_depth(config: UnitConfig) -> int:
    timing = unit_timing(config)
    # Reset, fill the pipeline, stall, drain: a few beats' worth of cycles past the latency bound.
    return max(12, 2 * timing.latency + 3 * timing.initiation_interval + 6)


PROPERTIES: tuple[Property, ...] = tuple(
    Property(f"{c.name}:stream-contract",
             "valid held until ready, payload stable while stalled, reset returns to idle, "
             "no beat duplicated (nothing out unless owed), no beat lost (owed <= capacity, an output "
             "within `latency` cycles of ready while owed)",
             _contract(c), _contract_depth(c))
    for c in CONTRACT_CONFIGS
)

#: Stated but not proved by `make formal`: with the cost sums recomputed from the tracked block,
#: Yices had not finished BMC step 3 after 10 minutes on the shared machine (the solver must
#: rediscover that two adder trees over 16 x 16 table lookups agree). Run with ``--only``.
OPEN: tuple[Property, ...] = (
    Property(f"{DSUConfig(book=Book.DIALECTFP4_16, block=16).name}:argmin",
             "the chosen dialect is allowed, of minimum cost among the allowed ones, ties to the lowest id; "
             "codes (s << 3) | IDX[d][u]; exponent passed through",
             _dsu_argmin(DSUConfig(book=Book.DIALECTFP4_16, block=16)), 4),
    Property(f"{DSUConfig(book=Book.FB32, block=16).name}:argmin", "as above, FB32",
             _dsu_argmin(DSUConfig(book=Book.FB32, block=16)), 4),
)

#: The subset `make test` proves (seconds each).
QUICK = tuple(p for p in PROPERTIES if p.config_name in ("front_end_b16", "decoder_fb32_dialectfp4_e2m1_l2"))
