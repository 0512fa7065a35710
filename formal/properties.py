"""The formal properties of the hardware units: one ``Property`` per (unit configuration, claim).

Each property builds a top-level module: the unit, the generic stream contract of
``formal.harness`` bound to its ``i``/``o`` ports; the DSU's selection claim is proved in parts
(``formal.argmin``: the argmin with the costs as cut points, the ERR lookups), unbounded where
k-induction closes. ``PROPERTIES`` is the list ``make formal`` proves;
``QUICK`` the subset ``make test`` runs. The depth of every bounded proof is part of the property
(``depth``: cycles from reset, enough for a beat to enter, wait out the longest back-pressure the
bound allows and leave); formal/README.md lists them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from amaranth.hdl import Module

from hw import Book, DecoderConfig, DSUConfig, FrontEndConfig, MACArrayConfig, TwoStageConfig, UnitConfig
from hw import build_unit, unit_timing
from hw.layouts import selector_in_layout
from hw.tile import TileConfig, TileFormat
from hw.tile_front_end import InputFloat

from .argmin import dsu_argmin, dsu_cost_tree, dsu_costs, dsu_err_lookup
from .equivalence import lockstep_equivalence
from .harness import stream_contract
from .pipelined import COST_POINT_CUTS, pipelined_dsu_argmin, pipelined_dsu_costs, pipelined_dsu_err_lookup
from .pipelined import pipelined_dsu_transport
from .tile import tile_output_contract

__all__ = ["OPEN", "PROPERTIES", "QUICK", "Property"]


@dataclass(frozen=True)
class Property:
    name: str
    claim: str
    build: Callable[[], tuple[Module, list]]  # (top module, free input ports)
    depth: int
    mode: str = "bmc"  # "bmc" (bounded, `depth` cycles) or "prove" (k-induction, unbounded)
    engine: str = "smtbmc yices"  # the SymbiYosys engine line
    #: Yosys selections made formal cut points (``cutpoint``: driven by ``$anyseq``, free every cycle).
    cutpoints: tuple[str, ...] = ()

    @property
    def config_name(self) -> str:
        return self.name.split(":")[0]


#: Jobs each unit can hold at once (the ``owed`` bound of the contract): the selectors hold a block
#: in the cost stage and one in the output register; the MAC array's three stages can each carry a
#: finished job; the one-register units hold one.
def _capacity(config: UnitConfig) -> int:
    if isinstance(config, (DSUConfig, TwoStageConfig)) and config.pipeline_stages is not None:  # the skid FIFO's credit
        return unit_timing(config).latency + 1
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
    # Issue 10's pipelined units: the free-running DSU with its skid FIFO, the C-slow MAC array.
    DSUConfig(book=Book.DIALECTFP4_16, block=16, pipeline_stages=3),
    MACArrayConfig(rows=1, cols=1, block=16, interleave=2, output_depth=2),  # a short FIFO: its credit bites
)


#: Contracts bounded below the formula, with the reason: the default MAC array (latency 10 and an
#: 11-beat output FIFO since issue 10) had proved steps 0-25 after 7.5 minutes, and step 26 had not
#: finished after 11 more (2026-12-02 00:13, load ~3); with issue 10's new PE datapath (02:22) it
#: proved steps 0-23 in 21 minutes at load ~8 and step 24 had not finished after 9 more (02:47-03:17
#: run). The C-slow configuration with a 2-beat FIFO covers the credit path at the full formula depth.
CONTRACT_DEPTH_LIMITS = {"mac_array_r1_c1_b16": 24}


def _contract_depth(config: UnitConfig) -> int:
    timing = unit_timing(config)
    # Reset, fill the pipeline, stall, drain: a few beats' worth of cycles past the latency bound.
    depth = max(12, 2 * timing.latency + 3 * timing.initiation_interval + 6)
    return min(depth, CONTRACT_DEPTH_LIMITS.get(config.name, depth))


PROPERTIES: tuple[Property, ...] = tuple(
    Property(f"{c.name}:stream-contract",
             "valid held until ready, payload stable while stalled, reset returns to idle, "
             "no beat duplicated (nothing out unless owed), no beat lost (owed <= capacity, an output "
             "within `latency` cycles of ready while owed)",
             _contract(c), _contract_depth(c))
    for c in CONTRACT_CONFIGS
)

#: The DSU's selection claim, decomposed (formal/argmin.py): the argmin with the costs as free inputs
#: (cut points), the ERR lookups against golden's table. All close by k-induction (mode ``prove``:
#: unbounded); the 4-pass unit's argmin at k = 1 (see ``_argmin_property``).
ARGMIN_CONFIGS: tuple[DSUConfig, ...] = (
    DSUConfig(book=Book.FB32, block=16),
    DSUConfig(book=Book.DIALECTFP4_16, block=16),
    DSUConfig(book=Book.FB32, block=16, dialects_per_cycle=8),
)
COST_CUTS = ("top/w:dut.cost_*",)
TERM_CUTS = ("top/w:dut.err_*",)


def _argmin_property(config: DSUConfig) -> Property:
    claim = ("costs cut (free ranks): the chosen dialect is allowed, of minimum cost among the allowed ones, "
             "ties to the lowest id (all-zero mask: 0); the output beat carries it, the exponent and "
             "(s << 3) | IDX[d][u]; the cost stage holds the accepted beat")
    if config.passes == 1:
        return Property(f"{config.name}:argmin", claim, dsu_argmin(config), 3, mode="prove", cutpoints=COST_CUTS)
    # Several passes: k-induction at k = 1 closes with the carried best and the pass's records asserted
    # (and asserted to be ranks too); at k = 2 it had not finished after 2.5 minutes.
    return Property(f"{config.name}:argmin", claim + "; the carried best of earlier passes is their argmin",
                    dsu_argmin(config), 1, mode="prove", cutpoints=COST_CUTS)


ARGMIN_PROPERTIES: tuple[Property, ...] = tuple(_argmin_property(c) for c in ARGMIN_CONFIGS) + tuple(
    Property(f"{c.name}:err-lookup", "every lane's ERR read is golden's err_table entry of its code, for the "
             "dialect its candidate costs in this pass", dsu_err_lookup(c), 2, mode="prove")
    for c in ARGMIN_CONFIGS
) + tuple(
    Property(f"{c.name}:costs", "every cost_k is the exact sum of golden's ERR over the held block's codes, for the "
             "dialect it costs in this pass (balanced evaluation order; no overflow)", dsu_costs(c), 2, mode="prove")
    for c in ARGMIN_CONFIGS
)

#: The tile's output-side contract (formal/tile.py): three streams, not one-to-one.
TILE_CONFIGS: tuple[TileConfig, ...] = (
    TileConfig(format=TileFormat.MXFP4, rows=1, cols=1, block=32, input=InputFloat.BF16, buffer_blocks=2, interleave=1),
)
TILE_PROPERTIES: tuple[Property, ...] = tuple(
    Property(f"tile_{c.format.value}_r{c.rows}_c{c.cols}_b{c.block}:output-contract",
             "a and w held while stalled (assumed); o held and unchanged while stalled, idle after reset, never more "
             "output beats than weight beats taken (asserted); k_blocks, col_groups held in range",
             tile_output_contract(c), 20)
    for c in TILE_CONFIGS
)

#: Equivalence of the pipelined DSU to the two-register DSU (formal/pipelined.py): the pipelined unit is
#: held to the same complete spec the two-register one is proved against (a spec that determines every
#: output beat: both units compute the same stream function). ``:argmin`` and ``:err-lookup`` close by
#: k-induction; ``:costs`` is BMC at depth c + 1, complete for its feed-forward cone (see the module);
#: the skid FIFO's order (``:transport``) is bounded.
PIPELINED_DSU_CONFIGS: tuple[DSUConfig, ...] = (
    DSUConfig(book=Book.DIALECTFP4_16, block=16, pipeline_stages=3),
    DSUConfig(book=Book.FB32, block=16, pipeline_stages=4),
)
#: ``:transport`` is proved on the first only: the skid FIFO and its credit are the same generator
#: (``hw.pipeline.skid_output``) in every pipelined unit, only its depth follows the cut count.
TRANSPORT_CONFIGS = PIPELINED_DSU_CONFIGS[:1]


def _pipelined_properties(config: DSUConfig) -> tuple[Property, ...]:
    from .pipelined import cuts_before_cost_point

    cuts = unit_timing(config).latency - 1
    before = cuts_before_cost_point(config)
    transport = (
        Property(f"{config.name}:transport", "costs cut: the output beat of any solver-picked input beat is the last "
                 "cut register's value `cuts` cycles after its handshake (the skid FIFO keeps order)",
                 pipelined_dsu_transport(config), _contract_depth(config), cutpoints=COST_POINT_CUTS),
    ) if config in TRANSPORT_CONFIGS else ()
    return (
        Property(f"{config.name}:err-lookup", "every ERR ROM read at the input is golden's err_table entry of its "
                 "lane's code", pipelined_dsu_err_lookup(config), 2, mode="prove"),
        Property(f"{config.name}:costs", "at the adder trees' roots every cost is the exact sum of the "
                 "ERR reads of the block that entered `c` cycles earlier (c = cuts before that point); the "
                 "pipeline carries that block's ucodes and mask there", pipelined_dsu_costs(config), before + 1),
        Property(f"{config.name}:argmin", "costs cut (free ranks): the last cut register holds the two-register "
                 "DSU's spec beat of the block that entered `cuts` cycles earlier (allowed, minimum-cost, ties to "
                 "the lowest id, exponent, (s << 3) | IDX[d][u]) over the costs its block showed",
                 pipelined_dsu_argmin(config), cuts + 2, mode="prove", cutpoints=COST_POINT_CUTS),
    ) + transport


PIPELINED_PROPERTIES: tuple[Property, ...] = tuple(p for c in PIPELINED_DSU_CONFIGS for p in _pipelined_properties(c))

PROPERTIES = PROPERTIES + ARGMIN_PROPERTIES + PIPELINED_PROPERTIES + TILE_PROPERTIES

#: Stated but not proved by `make formal` (run with ``--only``): the cost adder trees against a plain
#: left-to-right sum of their (cut, free) ERR terms. Yices had not finished the first step after 7
#: minutes: the miter of a balanced tree and a chain of 16 adders needs associativity, which bit-level
#: SAT has to rediscover. ``:costs`` proves the same sums against golden's table with a balanced
#: evaluation order instead (exact integers, so the order is immaterial).
OPEN: tuple[Property, ...] = tuple(
    Property(f"{c.name}:cost-tree", "each cost_k is the plain sum of its lanes' ERR terms (terms cut)",
             dsu_cost_tree(c), 2, mode="prove", cutpoints=TERM_CUTS)
    for c in ARGMIN_CONFIGS[:2]
) + (
    # Issue 10's pipelined DSU against the two-register DSU as a lockstep miter (formal/equivalence.py):
    # BMC had not finished step 3, the first compared output, after 10 minutes. Superseded by the
    # spec-based equivalence of PIPELINED_PROPERTIES (formal/pipelined.py).
    Property("dsu_dialectfp4_b16_p16_s1:equivalence",
             "fed the same beats in the same cycles, under independent back-pressure, the pipelined DSU hands "
             "out the same output beat as the two-register DSU for any solver-picked input beat",
             lockstep_equivalence(DSUConfig(book=Book.DIALECTFP4_16, block=16, pipeline_stages=1),
                                  DSUConfig(book=Book.DIALECTFP4_16, block=16),
                                  selector_in_layout(DSUConfig(book=Book.DIALECTFP4_16, block=16))), 6),
)

#: The subset `make test` proves (seconds each).
QUICK = tuple(p for p in PROPERTIES if p.config_name in ("front_end_b16", "decoder_fb32_dialectfp4_e2m1_l2")
              or p.name == "dsu_dialectfp4_b16_p16:argmin")

# --- issue 11 (part B): the two-stage selector against its spec, both forms (formal/two_stage.py), and the
# tile's input side (formal/tile.py). Appended; the lists above are unchanged.
from .tile import tile_input_contract  # noqa: E402
from .two_stage import ENCODED_CUTS, pipelined_two_stage_spec, two_stage_spec, two_stage_transport  # noqa: E402

#: The two-register selector and two pipelined ones: 3 cuts, and the tile's 4 (``dsu_stages = 4``) over 13 levels.
TWO_STAGE_CONFIGS: tuple[TwoStageConfig, ...] = (TwoStageConfig(block=16), TwoStageConfig(block=16, pipeline_stages=3),
                                                 TwoStageConfig(block=16, pipeline_stages=4))
#: ``:transport`` on the 3-cut unit only: at 4 cuts (latency 5, depth 19) BMC proved steps 0-17 and step 18 had
#: not finished after 5 minutes (load 6-8); ``hw.pipeline.skid_output`` is the same generator at every depth.
TWO_STAGE_TRANSPORT_CONFIGS = TWO_STAGE_CONFIGS[1:2]


def _two_stage_properties(config: TwoStageConfig) -> tuple[Property, ...]:
    claim = ("the output beat is the spec's (NUMERICS 2.2 from golden's tables): pair from the block maximum, "
             "B only with strictly more codes in its range, all-zero -> 0, exponent, (s << 3) | IDX[d][u]")
    if config.pipeline_stages is None:
        # Induction closes at k = 2; depth 4 so that the cover reaches an output beat of dialect B.
        return (Property(f"{config.name}:spec", claim + "; the cost stage holds the accepted beat",
                         two_stage_spec(config), 4, mode="prove"),)
    cuts = unit_timing(config).latency - 1
    latency = unit_timing(config).latency
    spec = Property(f"{config.name}:spec", "the last cut register, when valid, holds the spec beat of the block that "
                    "entered `cuts` cycles earlier; " + claim, pipelined_two_stage_spec(config), cuts + 2, mode="prove")
    if config not in TWO_STAGE_TRANSPORT_CONFIGS:
        return (spec,)
    return (
        spec,
        Property(f"{config.name}:transport", "encoded cut: the output beat of any solver-picked input beat is the "
                 "last cut register's value `cuts` cycles after its handshake (the skid FIFO keeps order); with the "
                 "stream contract (capacity latency + 1)", two_stage_transport(config),
                 max(12, 2 * latency + 3 + 6), cutpoints=ENCODED_CUTS),
    )


TWO_STAGE_PROPERTIES: tuple[Property, ...] = tuple(p for c in TWO_STAGE_CONFIGS for p in _two_stage_properties(c))

#: The tile's input side on the output contract's configuration (k_blocks <= 2, col_groups <= 2, L = 1) and on
#: the same tile C-slow, L = 2 (each block read col_groups x 2 times).
TILE_INPUT_CONFIGS: tuple[TileConfig, ...] = TILE_CONFIGS + (
    TileConfig(format=TileFormat.MXFP4, rows=1, cols=1, block=32, input=InputFloat.BF16, buffer_blocks=2, interleave=2),
)
TILE_INPUT_PROPERTIES: tuple[Property, ...] = tuple(
    Property(f"tile_{c.format.value}_r{c.rows}_c{c.cols}_b{c.block}{'' if c.interleave == 1 else f'_l{c.interleave}'}"
             ":input-contract",
             "a and w held while stalled (assumed); a: buffer writes <= a beats taken <= writes + in-flight bound, a "
             "write within the quantizer latency while one is in flight and the bank is free; buffer: no read of an "
             "unwritten block or past col_groups x L reads, no overwrite before col_groups x L reads; w: MAC beats "
             "<= w beats taken <= MAC beats + edge credit, a MAC beat within the edge latency while one is in flight "
             "and the array is ready", tile_input_contract(c), 20)
    for c in TILE_INPUT_CONFIGS
)

PROPERTIES = PROPERTIES + TWO_STAGE_PROPERTIES + TILE_INPUT_PROPERTIES

# Issue 11: the C-slow MAC array against its L = 1 reference (formal/cslow.py). Part 1: every cut set of
# the ring adder (L = 2..7 from ADDER_CUTS, L >= 8: all seven hooks) and the PE's term pipeline equal
# their combinational functions S cycles later (BMC at depth S + 1, complete: feed-forward pipelines);
# the +0 identity the idle ring slots rely on (combinational).
from .cslow import ADDER_INTERLEAVES, adder_equivalence, adder_identity, adder_registers, term_equivalence  # noqa: E402

CSLOW_ADDER_PROPERTIES: tuple[Property, ...] = tuple(
    Property(f"ring_adder_l{L}:equivalence", f"the ring adder with L = {L}'s cut set ({adder_registers(L)} registers) "
             "equals the combinational add_binary32 of the operands S cycles earlier (no reset between); every cut "
             "register holds the combinational values at its hook", adder_equivalence(L), adder_registers(L) + 1)
    for L in ADDER_INTERLEAVES
) + tuple(
    Property(f"pe_term_b{block}:equivalence", "the PE's term_to_binary32 with its three cut registers equals the "
             "combinational one of the (acc, shift) of 3 cycles earlier", term_equivalence(block), 4)
    for block in (16, 32)
) + (
    Property("ring_adder:identity", "y + (+0) = y for every y but -0 and non-canonical NaNs; +0 + t = t but for "
             "t = -0 (+0) and NaNs (canonical)", adder_identity(), 1),
)
PROPERTIES = PROPERTIES + CSLOW_ADDER_PROPERTIES
QUICK = QUICK + tuple(p for p in CSLOW_ADDER_PROPERTIES if p.name == "ring_adder_l2:equivalence")

# Part 2: the real array and PE control with the tag model of the arithmetic (formal/cslow.py ``ring_order``):
# every finished output is the K-order fold of one job's terms, in the jobs' `last` order (bounded).
from .cslow import RING_CONFIGS, ring_order  # noqa: E402

CSLOW_RING_PROPERTIES: tuple[Property, ...] = tuple(
    Property(f"{c.name}:ring-order", "arithmetic replaced by an order-recording tag combine through the real cut "
             "registers: every finished PE output is the K-order fold of one job's terms (beat n -> slot n mod L, a "
             "job from a slot's first beat to its last), in the order of the jobs' last beats", ring_order(c), depth)
    for c, depth in RING_CONFIGS
)
PROPERTIES = PROPERTIES + CSLOW_RING_PROPERTIES

# The NVFP4 PE's 4-cut rounding (its term pipeline; the same C-slow ring follows it).
from .cslow import nvfp4_round_equivalence  # noqa: E402

CSLOW_NVFP4_PROPERTIES: tuple[Property, ...] = tuple(
    Property(f"nvfp4_pe_round_b{block}:equivalence", "the NVFP4 PE's round_to_binary32 with its four cut registers "
             "equals the combinational one of the (magnitude, exponent, sign) of 4 cycles earlier",
             nvfp4_round_equivalence(block), 5)
    for block in (16, 32)
)
PROPERTIES = PROPERTIES + CSLOW_NVFP4_PROPERTIES

# The stream contract on the units the lists above leave out: the E4M3 (scaled) front-end, the tile's
# float front-end and E2M1 encoder (MXFP4's quantizer), the NVFP4 MAC array with its scale path (C-slow,
# a 2-beat output FIFO so the credit bites), the FB32 DSU at the tile's 4 cuts and the pipelined
# two-stage selector at 4 cuts (their own contracts; the transport proofs include one at 3 cuts).
from hw import ScaledFrontEndConfig  # noqa: E402
from hw.tile_front_end import E2M1Encoder, E2M1EncoderConfig, FloatFrontEnd, FloatFrontEndConfig, InputFloat  # noqa: E402


def _tile_unit_contract(unit_class, config):
    def build():
        m = Module()
        m.submodules.dut = unit = unit_class(config)
        stream_contract(m, unit.i, unit.o, latency=unit_class.timing(config).latency, capacity=1)
        return m, _ports(unit)

    return build


MORE_CONTRACT_CONFIGS: tuple[UnitConfig, ...] = (
    ScaledFrontEndConfig(block=16),
    MACArrayConfig(rows=1, cols=1, block=16, interleave=2, output_depth=2, nvfp4=True),
    DSUConfig(book=Book.FB32, block=16, pipeline_stages=4),
    TwoStageConfig(block=16, pipeline_stages=4),
)


MORE_CONTRACT_PROPERTIES: tuple[Property, ...] = tuple(
    Property(f"{c.name}:stream-contract", PROPERTIES[0].claim, _contract(c), _contract_depth(c))
    for c in MORE_CONTRACT_CONFIGS
) + tuple(
    Property(f"{c.name}:stream-contract", PROPERTIES[0].claim, _tile_unit_contract(cls, c),
             max(12, 2 * cls.timing(c).latency + 3 * cls.timing(c).initiation_interval + 6))
    for cls, c in ((FloatFrontEnd, FloatFrontEndConfig(block=16, input=InputFloat.BF16)),
                   (E2M1Encoder, E2M1EncoderConfig(block=16)))
)
PROPERTIES = PROPERTIES + MORE_CONTRACT_PROPERTIES
