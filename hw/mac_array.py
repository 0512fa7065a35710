"""MAC array: ``rows x cols`` processing elements, output-stationary, bit-exact NUMERICS section 4.

Dataflow: every input beat is one K block: an activation block per row and a weight block per
column (decoded elements: sign + half-unit magnitude, and the biased E8M0 exponent byte). PE
``(r, c)`` forms

    acc  = sum_i (-1)^(s_a,i ^ s_w,i) * h_a,i * h_w,i         (stages 1-3: products, adder tree)
    term = fl32(acc * 2^(E_a + E_w - 2 * (127 + 1)))          (stages 4-7: one RNE rounding)
    y    = fl32(y + term)                                      (L-stage RNE adder, y starts at +0.0)

in increasing K order (the beat order). The PE is the same for every format: it sees signed
half-unit magnitudes and an exponent byte, whatever formatbook the decoders at the array edge read.
On the quarter grid (``MACArrayConfig.grid``, NUMERICS 8.4) the magnitudes are 5-bit quarter units
and the exponent offset is ``2 * (127 + 2)``: ``term = fl32(acc * 2^(e_a + e_w - 4))``.

**C-slow accumulation.** The K-order binary32 sum is a loop-carried dependency, so a pipelined adder
cannot take one job's terms back to back. Instead each PE interleaves ``L = interleave`` independent
outputs: the adder has ``L`` register stages and its output feeds its input, so the ring holds the
``L`` partial sums; beat ``n`` of a job group belongs to output (slot) ``n mod L``. Every output
still sees its own terms in K order, so the result is bit-exact. ``L = 1`` is the single-cycle adder.
A beat with ``last`` set ends its slot's K loop; a beat with ``first`` set (the first beat of a slot's
job, tracked here) starts it from +0.0. A slot that receives no beat in a cycle adds +0.0, which
leaves the partial sum's bits unchanged (``y`` is never -0: it starts at +0 and RNE sums of nonzero
terms are never -0).

**Flow control.** The PE registers load every cycle (no clock enable, no stall fanning out into the
array); valid/first/last bits travel with the data. ``i.ready`` is high when the beat's slot is at
the adder input (a free-running phase counter; in a gap-free stream always) and the output FIFO has
room for every output already in flight. Finished outputs go to that FIFO (one beat of ``rows x
cols`` binary32 words per slot, in slot order), so ``o`` back-pressure never stalls the PEs.

Timing: latency (handshake of a slot's ``last`` beat -> its output beat valid) ``9 + L`` (input
register, seven PE stages: products, partial sums, halves, the term in four steps; the L-stage
ring; the FIFO); NVFP4 ``16 + L`` (fourteen stages before the ring: products, partial sums, halves,
block-sum magnitude, two for the block-scale product, three for the tensor-scale product, the
term in five); initiation
interval 1 beat per cycle (``LATENCY`` / ``timing``). The NVFP4 scale path is ``hw.nvfp4``.
"""

from __future__ import annotations

from amaranth.hdl import Cat, ClockSignal, Const, Instance, Module, Mux, ResetSignal, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from golden.formats import EXPONENT_BIAS, EXPONENT_BITS, Grid

from .common import UnitTiming, tree_reduce
from .config import MACArrayConfig
from .float32 import ADDER_HOOKS, CANONICAL_NAN, ROUND_HOOKS, TERM_HOOKS, add_binary32, round_to_binary32, term_to_binary32, unpack_binary32
from .layouts import FLOAT32_BITS, mac_in_layout, mac_operand_layout, mac_out_layout
from .pipeline import SkidFIFO

__all__ = ["MACArray", "PRE_ADDER_STAGES", "ProcessingElement", "ProcessingElementInstance", "pe_module_name"]

#: A decoded element is h * 2^(e - 1) (h in half units), so a product of two carries 2^(e_a + e_w - 2);
#: in quarter units h * 2^(e - 2) (``Grid.shift``).
HALF_UNIT_EXPONENT = Grid.HALF.shift
#: Register stages of ``_partial_sums``: the signed products, the partial sums, two halves.
PRODUCT_STAGES = 3
#: Register stages before the adder ring: products, partial sums, halves, then the term in four steps
#: (block sum and magnitude | leading one | shifts | rounding and packing).
PRE_ADDER_STAGES = PRODUCT_STAGES + TERM_HOOKS + 1
#: Products summed in the second stage (one 4-input adder tree per partial sum).
PARTIAL_GROUP = 4


def _register(m: Module, value, name: str) -> Signal:
    reg = Signal.like(value, name=name) if isinstance(value, Signal) else Signal(value.shape(), name=name)
    m.d.sync += reg.eq(value)
    return reg


def _cut(m: Module, tag: str):
    """A ``cut(values) -> values`` hook that registers every value (used inside the binary32 logic)."""

    def cut(values: dict) -> dict:
        return {k: _register(m, v, f"{tag}_{k}") for k, v in values.items()}

    return cut


#: Cut points of ``add_binary32`` (hooks 0..6) used for each adder depth L (the ring register is the
#: L-th): hook 3 (after the add) first, then 5, 1, 4, 6; from L = 7 hook 0 splits the exponent
#: differences from their clamp (the L = 6 ring's critical path on ECP5, 70 MHz), from L = 8 hook 2
#: the alignment shift from the add.
ADDER_CUTS = {1: (), 2: (3,), 3: (3, 5), 4: (1, 3, 5), 5: (1, 3, 4, 5), 6: (1, 3, 4, 5, 6), 7: (0, 1, 3, 4, 5, 6)}


def adder_cuts(m: Module, interleave: int, prefix: str):
    """The seven hooks of ``add_binary32`` for an ``interleave``-stage adder (the last stage is the
    ring register the caller adds): ``L - 1`` of the seven cut points (all seven from L = 8 on)."""
    chosen = ADDER_CUTS.get(interleave, tuple(range(ADDER_HOOKS)))
    none = lambda values: values  # noqa: E731
    return tuple(_cut(m, f"{prefix}_a{k}") if k in chosen else none for k in range(ADDER_HOOKS))


def pe_module_name(block: int, interleave: int, grid: Grid = Grid.HALF) -> str:
    """Verilog module name of the PE (one module per (block, interleave, grid), shared by every array)."""
    return f"pe_b{block}{'' if grid is Grid.HALF else '_q'}_l{interleave}"


def _acc_bits(block: int, grid: Grid) -> int:
    """Signed width of a block's exact integer dot product (|acc| <= block * max_units^2)."""
    return (block * grid.max_units * grid.max_units).bit_length() + 1


def _pe_signature(block: int, grid: Grid = Grid.HALF) -> dict:
    operand = mac_operand_layout(block, grid)
    return {"a": In(operand), "w": In(operand), "valid": In(1), "first": In(1), "last": In(1),
            "y": Out(FLOAT32_BITS), "done": Out(1)}  # fmt: skip


class ProcessingElementInstance(wiring.Component):
    """The PE as a black-box ``Instance`` of module ``pe_module_name(block, interleave)``: hierarchical
    synthesis writes that module once (``rtl_gen.synth``) and the array instantiates it rows x cols times.
    Not simulatable by Amaranth; Verilator and Yosys read the PE's own Verilog beside the array's."""

    def __init__(self, block: int, interleave: int, nvfp4: bool = False, grid: Grid = Grid.HALF) -> None:
        self.block, self.interleave, self.nvfp4, self.grid = block, interleave, nvfp4, grid
        signature = _pe_signature(block, grid)
        if nvfp4:
            signature.update(scale_significand=In(24), scale_exponent=In(signed(EXPONENT_BITS + 2)), scale_inf=In(1), scale_nan=In(1))
        super().__init__(signature)

    def elaborate(self, platform) -> Module:
        m = Module()
        name = pe_module_name(self.block, self.interleave, self.grid)
        extra = {}
        if self.nvfp4:
            name = f"nvfp4_{name}"
            extra = dict(i_scale_significand=self.scale_significand, i_scale_exponent=self.scale_exponent,
                         i_scale_inf=self.scale_inf, i_scale_nan=self.scale_nan)  # fmt: skip
        m.submodules.pe = Instance(
            name,
            i_clk=ClockSignal(), i_rst=ResetSignal(), i_a=self.a.as_value(), i_w=self.w.as_value(),
            i_valid=self.valid, i_first=self.first, i_last=self.last, o_y=self.y, o_done=self.done, **extra,
        )  # fmt: skip
        return m


class ProcessingElement(wiring.Component):
    """One PE: ports ``a``, ``w`` (``mac_operand_layout``), ``valid``, ``first``, ``last`` in; ``y``
    (the adder ring's output, binary32 bits) and ``done`` (``y`` is a finished output) out."""

    def __init__(self, block: int, interleave: int, grid: Grid = Grid.HALF) -> None:
        self.block, self.interleave, self.grid = block, interleave, grid
        super().__init__(_pe_signature(block, grid))

    @property
    def name(self) -> str:
        return pe_module_name(self.block, self.interleave, self.grid)

    def elaborate(self, platform) -> Module:
        m = Module()
        block, interleave = self.block, self.interleave
        acc_bits = _acc_bits(block, self.grid)
        shift_bits = EXPONENT_BITS + 3
        shift_offset = 2 * (EXPONENT_BIAS + self.grid.shift)

        flags = Cat(self.valid, self.first, self.last)
        # Stages 1-3: signed products, partial sums, two halves.
        halves = _partial_sums(m, self.a, self.w, block, self.grid)
        shift0 = Signal(signed(shift_bits), name="shift_0")
        m.d.comb += shift0.eq(self.a.exponent + self.w.exponent - shift_offset)
        shift = _delay(m, shift0, "shift", PRODUCT_STAGES)
        flags_at = _delay(m, flags, "flags", PRODUCT_STAGES + TERM_HOOKS)
        # Stages 4-7: the block sum, then the term, one RNE rounding, in four steps.
        acc = Signal(signed(acc_bits), name="acc")
        m.d.comb += acc.eq(tree_reduce(halves, lambda x, y: x + y))
        cuts = tuple(_cut(m, f"term_s{PRODUCT_STAGES + 1 + k}") for k in range(TERM_HOOKS))
        term_bits = term_to_binary32(m, acc, shift, "term", cuts=cuts)
        # An idle slot enters the ring as +0.0 through this register; ``_adder_ring`` registers the start.
        term = _register(m, Mux(flags_at[0], term_bits, 0), "term")
        start_ahead = flags_at[0] & flags_at[1]  # registered by the ring (``_adder_ring``)
        done_in = _register(m, flags_at[0] & flags_at[2], "done_in")
        m.d.comb += self.y.eq(_adder_ring(m, term, start_ahead, done_in, interleave, self.done))
        return m


def _adder_ring(m: Module, term, start_ahead, done_in, interleave: int, done_port) -> Signal:
    """The C-slow adder ring: L registers in the loop (L - 1 inside the adder for L <= 8, then the ring
    register, then L - 8 plain delays); an idle slot adds +0.0 (``term`` is 0), a start beat starts from
    +0.0; ``done_port`` rises with the ring output of a ``done_in`` beat. Returns the ring output.

    ``start_ahead`` is a start beat's flag one cycle before the beat reaches the adder. The loop's last
    register has two copies: the ring output, and ``ring_feedback``, which loads +0.0 for a start beat
    instead of the slot's finished sum. So the adder's operand is a register with no multiplexer behind
    it (issue 10, Fmax: ``start`` -> ``Mux(start, +0, ring)`` -> the swap compare bound the NVFP4 2 x 2 tile),
    and the output still holds the finished sum in the cycle the slot's next job starts."""
    feedback = Signal(FLOAT32_BITS, name="ring_feedback")
    total = add_binary32(m, feedback, term, "add", cuts=adder_cuts(m, interleave, "add"))
    before_last = total
    delays = max(0, interleave - ADDER_HOOKS - 1)
    for k in range(delays):
        before_last = _register(m, before_last, f"ring_{k}")
    ring = _register(m, before_last, f"ring_{delays}")
    m.d.sync += feedback.eq(Mux(start_ahead, 0, before_last))
    done = done_in
    for k in range(interleave):
        done = _register(m, done, f"done_{k}")
    m.d.comb += done_port.eq(done)
    return ring


def _small_product(x, y):
    """``x * y`` for small unsigned operands as a sum of ``x * y[2j : 2j + 2]`` (each bit a function of
    six inputs: two LUT levels), so the only carry chain is the one adding them."""
    return tree_reduce([(x * y[k : k + 2]) << k for k in range(0, len(y), 2)], lambda a, b: a + b)


def _register_sum(m: Module, value, products: int, grid: Grid, name: str) -> Signal:
    """``value``, a sum of ``products`` products, registered at the signed width that holds it exactly."""
    reg = Signal(signed(_acc_bits(products, grid)), name=name)
    m.d.sync += reg.eq(value)
    return reg


def _partial_sums(m: Module, a, w, block: int, grid: Grid) -> list[Signal]:
    """Stages 1-3 (``PRODUCT_STAGES``): the 4b x 4b (5b x 5b on the quarter grid) products of a block
    pair, registered; summed in registered groups of PARTIAL_GROUP; those summed into two registered
    halves (their sum, the block's dot product, is the caller's). A negative product is registered as
    its ones' complement (``-p = ~p + 1``) and the group's count of negative products, formed beside the
    multipliers, is added with the group's partial sum: no negation chain behind the multiplier (the
    product, its negation and the select were the PE's 97 MHz stage on ECP5). A 4b x 4b array product,
    its sign and an 8-input adder tree in one cycle was the PE's critical path (60 MHz on ECP5); now a
    stage holds at most three adder levels at B = 32."""
    products, negatives = [], []
    for k in range(block):
        ea, ew = a.elements[k], w.elements[k]
        product = Cat(_small_product(ea.magnitude, ew.magnitude), Const(0, 1)).as_signed()
        negative = ea.sign ^ ew.sign
        products.append(_register(m, Mux(negative, ~product, product), f"product_{k}"))
        negatives.append(negative)
    counts = [_register(m, sum(negatives[k : k + PARTIAL_GROUP]), f"negative_products_{k // PARTIAL_GROUP}")
              for k in range(0, block, PARTIAL_GROUP)]  # fmt: skip
    groups = [range(k, min(k + PARTIAL_GROUP, block)) for k in range(0, block, PARTIAL_GROUP)]
    partials = [_register_sum(m, tree_reduce([products[k] for k in g], lambda x, y: x + y) + counts[j], len(g), grid,
                              f"partial_{j}") for j, g in enumerate(groups)]  # fmt: skip
    middle = (len(partials) + 1) // 2
    halves = [(partials[:middle], groups[:middle]), (partials[middle:], groups[middle:])]
    return [_register_sum(m, tree_reduce(sums, lambda x, y: x + y), sum(map(len, g)), grid, f"half_{j}")
            for j, (sums, g) in enumerate(halves) if sums]  # fmt: skip


def _delay(m: Module, value, name: str, cycles: int):
    """``value`` through ``cycles`` registers (named ``name_1`` ..): side data beside the product stages."""
    for k in range(cycles):
        value = _register(m, value, f"{name}_{k + 1}")
    return value


#: E4M3: 3 fraction bits, exponent bias 7.
E4M3_FRACTION_BITS = 3
E4M3_BIAS = 7
#: Register stages of the NVFP4 PE's two multipliers (``_pipelined_multiply``, 4-bit chunks of the
#: second operand): ``|acc| x fl32(s_a * s_w)`` (8 bits: two partial products, one add) and the wide
#: ``exact x sig(T)`` (24 bits: six partial products, then 6 -> 2 and 2 -> 1).
EXACT_STAGES = 2
WIDE_STAGES = 3
#: Register stages before the adder ring in the NVFP4 PE: products, partial sums, halves, block sum (its
#: magnitude), times the block scales, times the tensor scale, the rounding in five steps.
NVFP4_PRE_ADDER_STAGES = PRODUCT_STAGES + 1 + EXACT_STAGES + WIDE_STAGES + ROUND_HOOKS + 1
#: Bits of the second operand per partial product of ``_pipelined_multiply``, and adder-tree levels per stage.
MULTIPLY_CHUNK = 4
MULTIPLY_LEVELS_PER_STAGE = 2


def _pipelined_multiply(m: Module, x, y, name: str) -> tuple[Signal, int]:
    """``x * y`` (unsigned, exact) in registered steps: the partial products ``x * y[4j : 4j + 4]``, then
    their shifted sum, two adder-tree levels per register (an array multiplier of 20 x 24 bits in one
    cycle was the NVFP4 PE's critical path: 41 MHz on ECP5). Returns (the product register, its stages)."""
    width = len(x) + len(y)
    terms = [(_register(m, x * y[k : k + MULTIPLY_CHUNK], f"{name}_pp_{k // MULTIPLY_CHUNK}"), k)
             for k in range(0, len(y), MULTIPLY_CHUNK)]  # fmt: skip
    stages = 1
    while len(terms) > 1:
        for _ in range(MULTIPLY_LEVELS_PER_STAGE):
            if len(terms) > 1:
                terms = _tree_level(terms, lambda lo, hi: ((lo[0] + (hi[0] << (hi[1] - lo[1])))[:width], lo[1]))
        stages += 1
        terms = [(_register(m, v, f"{name}_s{stages}_{k}"), at) for k, (v, at) in enumerate(terms)]
    return terms[0][0], stages


def _tree_level(items: list, combine) -> list:
    """One level of ``tree_reduce``: neighbours combined pairwise, an odd last item passed on."""
    out = [combine(items[k], items[k + 1]) for k in range(0, len(items) - 1, 2)]
    if len(items) % 2:
        out.append(items[-1])
    return out


def _e4m3(byte):
    """(4-bit significand with the hidden bit, biased exponent field of its unit: the unit is
    ``2^(field - E4M3_BIAS - E4M3_FRACTION_BITS)``) of an E4M3 byte (sign ignored: scales are >= 0)."""
    field = byte[E4M3_FRACTION_BITS : E4M3_FRACTION_BITS + 4]
    normal = field != 0
    return Cat(byte[:E4M3_FRACTION_BITS], normal), Mux(normal, field, 1)


class NVFP4ProcessingElement(wiring.Component):
    """NVFP4 PE (NUMERICS 4): ``term = fl32(fl32(acc * 0.25 * fl32(s_a * s_w)) * T)`` with ``T = fl32(t_a * t_w)``.

    The same PE serves the E4M3 dialect formats (NUMERICS 8.4): ``grid`` quarter takes 5-bit
    quarter-unit magnitudes and multiplies by ``2^-4`` instead of ``0.25`` (at most 16 + 4 + 4
    significant bits for B <= 64, so still exact).

    The operands' ``exponent`` bytes are the E4M3 block scales. ``acc * 0.25 * s_a * s_w`` is exact
    (at most 12 + 4 + 4 significant bits), so the term is one RNE rounding of the exact integer
    ``|acc| * sig(s_a) * sig(s_w) * sig(T)`` times a power of two. Extra inputs: ``T`` unpacked once for
    the whole array (``scale_significand``, ``scale_exponent``, ``scale_inf``, ``scale_nan``). Then the same
    C-slow adder ring as ``ProcessingElement``.
    """

    def __init__(self, block: int, interleave: int, grid: Grid = Grid.HALF) -> None:
        self.block, self.interleave, self.grid = block, interleave, grid
        super().__init__({**_pe_signature(block, grid), "scale_significand": In(24), "scale_exponent": In(signed(EXPONENT_BITS + 2)),
                          "scale_inf": In(1), "scale_nan": In(1)})  # fmt: skip

    @property
    def name(self) -> str:
        return f"nvfp4_{pe_module_name(self.block, self.interleave, self.grid)}"

    def elaborate(self, platform) -> Module:
        m = Module()
        block = self.block
        acc_bits = _acc_bits(block, self.grid)
        flags = Cat(self.valid, self.first, self.last)
        # Stages 1-3: products, partial sums, halves; the block-scale product beside them.
        halves = _partial_sums(m, self.a, self.w, block, self.grid)
        sig_a, exp_a = _e4m3(self.a.exponent)
        sig_w, exp_w = _e4m3(self.w.exponent)
        scale2 = _delay(m, _small_product(sig_a, sig_w), "scale_product", PRODUCT_STAGES)
        # The two unit exponents: the fields' sum here, the constant (both biases and fraction bits, and
        # 2^-2g: grid units times grid units) one register later, off the input stage.
        field_sum = _register(m, exp_a + exp_w, "scale_exponent_1")
        scale_exp = Signal(signed(8), name="scale_exponent_0")
        m.d.comb += scale_exp.eq(field_sum - 2 * (E4M3_BIAS + E4M3_FRACTION_BITS + self.grid.shift))
        exp2 = _delay(m, scale_exp, "scale_exponent_at", PRODUCT_STAGES - 1)
        flags2 = _delay(m, flags, "flags", PRODUCT_STAGES)
        # Stage 4: block sum, as sign and magnitude.
        acc = Signal(signed(acc_bits), name="acc")
        m.d.comb += acc.eq(tree_reduce(halves, lambda x, y: x + y))
        magnitude = _register(m, Mux(acc[-1], -acc, acc)[: acc_bits - 1], "magnitude")
        negative3, exp3, scale3, flags3 = (_register(m, v, f"{n}_at_sum") for v, n in (
            (acc[-1], "negative"), (exp2, "scale_exponent"), (scale2, "scale_product"), (flags2, "flags")))  # fmt: skip
        # Stages 5-6: |acc| * s_a * s_w (exact).
        exact, stages = _pipelined_multiply(m, magnitude, scale3, "exact")
        assert stages == EXACT_STAGES, stages
        exponent_sum = Signal(signed(EXPONENT_BITS + 4), name="exponent_sum")
        m.d.comb += exponent_sum.eq(exp3 + self.scale_exponent)
        exponent5 = _delay(m, exponent_sum, "exponent_at", EXACT_STAGES)
        negative5, flags5 = _delay(m, negative3, "negative_at", EXACT_STAGES), _delay(m, flags3, "flags_at", EXACT_STAGES)
        # Stages 7-9: times the tensor-scale significand (the wide multiplier of NVFP4).
        # T's significand is static while streaming: a copy registered in each PE, so the array-wide net from
        # the one unpacked T ends at a register here, not in the partial products' LUTs (issue 10, Fmax).
        local_significand = _register(m, self.scale_significand, "tensor_scale_significand_here")
        wide, stages = _pipelined_multiply(m, exact, local_significand, "wide")
        assert stages == WIDE_STAGES, stages
        exponent = _delay(m, exponent5, "exponent_wide", WIDE_STAGES)
        nonzero = _delay(m, exact != 0, "nonzero_wide", WIDE_STAGES)
        negative4, flags4 = _delay(m, negative5, "negative_wide", WIDE_STAGES), _delay(m, flags5, "flags_wide", WIDE_STAGES)
        # Stages 10-13 (+ the term register): one RNE rounding; an infinite T gives +-inf, or NaN with a zero product.
        cuts = tuple(_cut(m, f"term_s{k}") for k in range(ROUND_HOOKS))
        rounded = round_to_binary32(m, wide, exponent, negative4, "term", cuts=cuts)
        nonzero6, negative6, flags6 = (_delay(m, x, f"{n}_round", ROUND_HOOKS)
                                       for x, n in ((nonzero, "nonzero"), (negative4, "negative"), (flags4, "flags")))  # fmt: skip
        term_bits = Signal(FLOAT32_BITS, name="term_bits")
        infinity = Cat(Const(0, 23), Const(0xFF, 8), negative6)
        m.d.comb += term_bits.eq(Mux(self.scale_nan | (self.scale_inf & ~nonzero6), CANONICAL_NAN,
                                     Mux(self.scale_inf, infinity, rounded)))  # fmt: skip
        term = _register(m, Mux(flags6[0], term_bits, 0), "term")
        start_ahead = flags6[0] & flags6[1]  # registered by the ring (``_adder_ring``)
        done_in = _register(m, flags6[0] & flags6[2], "done_in")
        m.d.comb += self.y.eq(_adder_ring(m, term, start_ahead, done_in, self.interleave, self.done))
        return m


class MACArray(wiring.Component):
    """Ports: ``i`` (``mac_in_layout``: a[rows], w[cols], last), ``o`` (``mac_out_layout``: y[rows][cols])."""

    INITIATION_INTERVAL = 1

    @classmethod
    def timing(cls, config) -> UnitTiming:
        # input register + PE stages before the adder + the adder ring + the FIFO's read side
        pre = NVFP4_PRE_ADDER_STAGES if config.nvfp4 else PRE_ADDER_STAGES
        return UnitTiming(1 + pre + config.interleave + 1, cls.INITIATION_INTERVAL)

    @classmethod
    def output_depth(cls, config) -> int:
        """Output FIFO beats (default: enough that an always-ready consumer never holds the array up)."""
        return cls.timing(config).latency + 1 if config.output_depth is None else config.output_depth

    def __init__(self, config: MACArrayConfig, *, pe_factory=None) -> None:
        if not isinstance(config, MACArrayConfig):
            raise TypeError(f"MACArray needs a MACArrayConfig, got {config!r}")
        self.config = config
        #: ``pe_factory(block, interleave)`` builds each PE (a black-box instance for hierarchical synthesis).
        pe_class = NVFP4ProcessingElement if config.nvfp4 else ProcessingElement
        self.pe_factory = pe_factory or (lambda block, interleave: pe_class(block, interleave, config.grid))
        ports = {
            "i": In(stream.Signature(mac_in_layout(config))),
            "o": Out(stream.Signature(mac_out_layout(config))),
        }
        if config.nvfp4:
            ports["tensor_scale"] = In(FLOAT32_BITS)  # T = fl32(t_a * t_w), static while streaming
        super().__init__(ports)

    def elaborate(self, platform) -> Module:
        m = Module()
        cfg = self.config
        slots = cfg.interleave
        depth = self.output_depth(cfg)
        beat = self.i.payload

        # Slot bookkeeping: the free-running phase (slot at the adder input), the next beat's slot,
        # and which slots are inside a K loop (their next beat is not `first`).
        phase = Signal(range(max(2, slots)), name="phase")
        expect = Signal(range(max(2, slots)), name="slot")
        open_slots = Signal(slots, name="open_slots")
        if slots > 1:
            m.d.sync += phase.eq(Mux(phase == slots - 1, 0, phase + 1))
        # Outputs in flight or waiting in the FIFO; a beat is taken only while all of them fit.
        pending = Signal(range(depth + 1), name="pending")
        fire = Signal(name="fire")
        m.d.comb += [self.i.ready.eq((phase == expect) & (pending < depth)), fire.eq(self.i.valid & self.i.ready)]
        first = Signal(name="first")
        m.d.comb += first.eq(~open_slots.bit_select(expect, 1))
        with m.If(fire):
            if slots > 1:
                m.d.sync += expect.eq(Mux(expect == slots - 1, 0, expect + 1))
            m.d.sync += open_slots.bit_select(expect, 1).eq(~beat.last)

        # Input registers (the operands fan out to a PE row / column from here).
        valid_in = _register(m, fire, "in_valid")
        first_in = _register(m, first, "in_first")
        last_in = _register(m, beat.last, "in_last")
        a_in = [_register(m, beat.a[r], f"in_a_{r}") for r in range(cfg.rows)]
        w_in = [_register(m, beat.w[c], f"in_w_{c}") for c in range(cfg.cols)]

        if cfg.nvfp4:  # T unpacked once (registered) for every PE
            sig, exp, _, inf, nan = unpack_binary32(m, self.tensor_scale, "tensor_scale")
            scale = [_register(m, v, f"tensor_scale_{n}") for v, n in ((sig, "significand"), (exp, "exponent"), (inf, "inf"), (nan, "nan"))]
        fifo = SkidFIFO(cfg.rows * cfg.cols * FLOAT32_BITS, depth)  # `pending < depth` guarantees room
        m.submodules.output_fifo = fifo
        results, done = [], None
        for r in range(cfg.rows):
            for c in range(cfg.cols):
                pe = self.pe_factory(cfg.block, cfg.interleave)
                m.submodules[f"pe_{r}_{c}"] = pe
                m.d.comb += [
                    pe.a.eq(a_in[r]),
                    pe.w.eq(w_in[c]),
                    pe.valid.eq(valid_in),
                    pe.first.eq(first_in),
                    pe.last.eq(last_in),
                ]
                if cfg.nvfp4:
                    m.d.comb += [pe.scale_significand.eq(scale[0]), pe.scale_exponent.eq(scale[1]),
                                 pe.scale_inf.eq(scale[2]), pe.scale_nan.eq(scale[3])]  # fmt: skip
                results.append(pe.y)
                done = pe.done if done is None else done
        leave = Signal(name="leave")
        m.d.comb += [
            fifo.w_en.eq(done),
            fifo.w_data.eq(Cat(*results)),
            self.o.valid.eq(fifo.r_valid),
            self.o.payload.eq(fifo.r_data),
            fifo.r_en.eq(self.o.ready),
            leave.eq(self.o.valid & self.o.ready),
        ]
        m.d.sync += pending.eq(pending + (fire & beat.last) - leave)
        return m
