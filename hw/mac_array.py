"""MAC array: ``rows x cols`` processing elements, output-stationary, bit-exact NUMERICS section 4.

Dataflow: every input beat is one K block: an activation block per row and a weight block per
column (decoded elements: sign + half-unit magnitude, and the biased E8M0 exponent byte). PE
``(r, c)`` forms

    acc  = sum_i (-1)^(s_a,i ^ s_w,i) * h_a,i * h_w,i         (stages 1-2: products, adder tree)
    term = fl32(acc * 2^(E_a + E_w - 2 * (127 + 1)))          (stages 3-4: one RNE rounding)
    y    = fl32(y + term)                                      (L-stage RNE adder, y starts at +0.0)

in increasing K order (the beat order). The PE is the same for every format: it sees signed
half-unit magnitudes and an exponent byte, whatever formatbook the decoders at the array edge read.

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

Timing: latency (handshake of a slot's ``last`` beat -> its output beat valid) ``6 + L`` (input
register, four PE stages, the L-stage ring, the FIFO); initiation
interval 1 beat per cycle (``LATENCY`` / ``timing``). The NVFP4 scale path is ``hw.nvfp4``.
"""

from __future__ import annotations

from amaranth.hdl import Cat, ClockSignal, Instance, Module, Mux, ResetSignal, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from golden.formats import EXPONENT_BIAS, EXPONENT_BITS, MAX_HALF_UNITS

from .common import UnitTiming, tree_reduce
from .config import MACArrayConfig
from .float32 import add_binary32, term_to_binary32
from .layouts import FLOAT32_BITS, mac_in_layout, mac_operand_layout, mac_out_layout

__all__ = ["MACArray", "PRE_ADDER_STAGES", "ProcessingElement", "ProcessingElementInstance", "pe_module_name"]

#: A decoded element is h * 2^(e - 1) (h in half units), so a product of two carries 2^(e_a + e_w - 2).
HALF_UNIT_EXPONENT = 1
#: Register stages before the adder ring: partial sums, block sum, term halves.
PRE_ADDER_STAGES = 4
#: Products summed before the first register (one 8-input adder tree per partial sum).
PARTIAL_GROUP = 8


def _register(m: Module, value, name: str) -> Signal:
    reg = Signal.like(value, name=name) if isinstance(value, Signal) else Signal(value.shape(), name=name)
    m.d.sync += reg.eq(value)
    return reg


def _cut(m: Module, tag: str):
    """A ``cut(values) -> values`` hook that registers every value (used inside the binary32 logic)."""

    def cut(values: dict) -> dict:
        return {k: _register(m, v, f"{tag}_{k}") for k, v in values.items()}

    return cut


#: Cut points of ``add_binary32`` (0..3) used for each adder depth L (the ring register is the L-th).
ADDER_CUTS = {1: (), 2: (1,), 3: (1, 3), 4: (0, 1, 3)}


def adder_cuts(m: Module, interleave: int, prefix: str):
    """The four hooks of ``add_binary32`` for an ``interleave``-stage adder (the last stage is the
    ring register the caller adds): ``L - 1`` of the four cut points (all four from L = 5 on)."""
    chosen = ADDER_CUTS.get(interleave, (0, 1, 2, 3))
    none = lambda values: values  # noqa: E731
    return tuple(_cut(m, f"{prefix}_a{k}") if k in chosen else none for k in range(4))


def pe_module_name(block: int, interleave: int) -> str:
    """Verilog module name of the PE (one module per (block, interleave), shared by every array)."""
    return f"pe_b{block}_l{interleave}"


def _pe_signature(block: int) -> dict:
    operand = mac_operand_layout(block)
    return {"a": In(operand), "w": In(operand), "valid": In(1), "first": In(1), "last": In(1),
            "y": Out(FLOAT32_BITS), "done": Out(1)}  # fmt: skip


class ProcessingElementInstance(wiring.Component):
    """The PE as a black-box ``Instance`` of module ``pe_module_name(block, interleave)``: hierarchical
    synthesis writes that module once (``rtl_gen.synth``) and the array instantiates it rows x cols times.
    Not simulatable by Amaranth; Verilator and Yosys read the PE's own Verilog beside the array's."""

    def __init__(self, block: int, interleave: int) -> None:
        self.block, self.interleave = block, interleave
        super().__init__(_pe_signature(block))

    def elaborate(self, platform) -> Module:
        m = Module()
        m.submodules.pe = Instance(
            pe_module_name(self.block, self.interleave),
            i_clk=ClockSignal(), i_rst=ResetSignal(), i_a=self.a.as_value(), i_w=self.w.as_value(),
            i_valid=self.valid, i_first=self.first, i_last=self.last, o_y=self.y, o_done=self.done,
        )  # fmt: skip
        return m


class ProcessingElement(wiring.Component):
    """One PE: ports ``a``, ``w`` (``mac_operand_layout``), ``valid``, ``first``, ``last`` in; ``y``
    (the adder ring's output, binary32 bits) and ``done`` (``y`` is a finished output) out."""

    def __init__(self, block: int, interleave: int) -> None:
        self.block, self.interleave = block, interleave
        super().__init__(_pe_signature(block))

    @property
    def name(self) -> str:
        return pe_module_name(self.block, self.interleave)

    def elaborate(self, platform) -> Module:
        m = Module()
        block, interleave = self.block, self.interleave
        acc_bits = (block * MAX_HALF_UNITS * MAX_HALF_UNITS).bit_length() + 1
        shift_bits = EXPONENT_BITS + 3
        shift_offset = 2 * (EXPONENT_BIAS + HALF_UNIT_EXPONENT)

        flags = Cat(self.valid, self.first, self.last)
        # Stage 1: signed products, summed in groups of PARTIAL_GROUP.
        products = []
        for k in range(block):
            ea, ew = self.a.elements[k], self.w.elements[k]
            product = ea.magnitude * ew.magnitude
            products.append(Mux(ea.sign ^ ew.sign, -product, product))
        partials = [
            _register(m, tree_reduce(products[k : k + PARTIAL_GROUP], lambda x, y: x + y), f"partial_{k // PARTIAL_GROUP}")
            for k in range(0, block, PARTIAL_GROUP)
        ]
        shift0 = Signal(signed(shift_bits), name="shift_0")
        m.d.comb += shift0.eq(self.a.exponent + self.w.exponent - shift_offset)
        shift1 = _register(m, shift0, "shift_1")
        flags1 = _register(m, flags, "flags_1")
        # Stage 2: the block sum.
        acc = Signal(signed(acc_bits), name="acc")
        m.d.sync += acc.eq(tree_reduce(partials, lambda x, y: x + y))
        shift = Signal(signed(shift_bits), name="shift")
        m.d.sync += shift.eq(shift1)
        flags2 = _register(m, flags1, "flags_2")
        # Stages 3-4: the term, one RNE rounding, cut between its two halves.
        flags3 = _register(m, flags2, "flags_3")
        term_bits = term_to_binary32(m, acc, shift, "term", cut=_cut(m, "term_s3"))
        term = _register(m, term_bits, "term")
        valid4, first4, last4 = (_register(m, flags3[k], f"{n}_4") for k, n in enumerate(("valid", "first", "last")))

        # The adder ring: L registers in the loop (L - 1 inside the adder for L <= 5, then the ring
        # register, then L - 5 plain delays); an idle slot adds +0.0, a first beat starts at +0.0.
        ring = Signal(FLOAT32_BITS, name="ring")
        y_in = Mux(valid4 & first4, 0, ring)
        t_in = Mux(valid4, term, 0)
        total = add_binary32(m, y_in, t_in, "add", cuts=adder_cuts(m, interleave, "add"))
        loop = _register(m, total, "ring_0")
        for k in range(interleave - 5):
            loop = _register(m, loop, f"ring_{k + 1}")
        m.d.comb += ring.eq(loop)
        done = valid4 & last4
        for k in range(interleave):
            done = _register(m, done, f"done_{k}")
        done_out = done
        m.d.comb += [self.y.eq(ring), self.done.eq(done_out)]
        return m


class MACArray(wiring.Component):
    """Ports: ``i`` (``mac_in_layout``: a[rows], w[cols], last), ``o`` (``mac_out_layout``: y[rows][cols])."""

    INITIATION_INTERVAL = 1

    @classmethod
    def timing(cls, config) -> UnitTiming:
        # input register + PE stages before the adder + the adder ring + the FIFO's read side
        return UnitTiming(1 + PRE_ADDER_STAGES + config.interleave + 1, cls.INITIATION_INTERVAL)

    @classmethod
    def output_depth(cls, config) -> int:
        """Output FIFO beats (default: enough that an always-ready consumer never holds the array up)."""
        return cls.timing(config).latency + 1 if config.output_depth is None else config.output_depth

    def __init__(self, config: MACArrayConfig, *, pe_factory=None) -> None:
        if not isinstance(config, MACArrayConfig):
            raise TypeError(f"MACArray needs a MACArrayConfig, got {config!r}")
        self.config = config
        #: ``pe_factory(block, interleave)`` builds each PE (a black-box instance for hierarchical synthesis).
        self.pe_factory = pe_factory or ProcessingElement
        super().__init__(
            {
                "i": In(stream.Signature(mac_in_layout(config))),
                "o": Out(stream.Signature(mac_out_layout(config))),
            }
        )

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

        fifo = SyncFIFO(width=cfg.rows * cfg.cols * FLOAT32_BITS, depth=depth)
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
                results.append(pe.y)
                done = pe.done if done is None else done
        leave = Signal(name="leave")
        m.d.comb += [
            fifo.w_en.eq(done),
            fifo.w_data.eq(Cat(*results)),
            self.o.valid.eq(fifo.r_rdy),
            self.o.payload.eq(fifo.r_data),
            fifo.r_en.eq(self.o.ready),
            leave.eq(self.o.valid & self.o.ready),
        ]
        m.d.sync += pending.eq(pending + (fire & beat.last) - leave)
        return m
