"""Dialect selection in hardware: the LUT dialect-select unit (DSU) and BlockDialect's two-stage selector.

Both take a front-end block (scale byte, signs, codes u) and return the scale byte, the
chosen dialect id and the 4-bit element codes ``(s << 3) | IDX[d][u]`` (NUMERICS 2.1 steps 4-5, 2.2).
Every ROM is generated from ``golden.formats`` tables (``err_table``, ``idx_table``,
``two_stage_ranges``). The DSU takes any dialect formatbook of the registry (``hw.Book``): on the
quarter grid (NUMERICS 8.1) u has 6 bits, the ERR ROMs 64 entries of 12 bits and the thresholds 6
bits; the scale byte (E8M0 exponent or E4M3 block scale) passes through unchanged.

Pipeline (both units): a cost stage register ``A`` that holds the block while its dialect is chosen,
then the output register, loaded with the encoded codes. The DSU costs ``dialects_per_cycle`` dialects
per cycle, so a block spends ``passes = num_dialects / dialects_per_cycle`` cycles in ``A``:

- latency (input handshake -> output valid, no back-pressure): ``passes + 1`` cycles;
- initiation interval: ``passes`` cycles (one block per cycle at full parallelism).

The two-stage selector is the ``passes = 1`` case: latency 2, initiation interval 1.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from golden.formats import MAGNITUDE_CODES, Formatbook

from .common import Rom, UnitTiming, tree_reduce
from .pipeline import Stages, skid_output
from .config import DSUConfig, TwoStageConfig
from .layouts import selector_in_layout, selector_out_layout

__all__ = ["DialectSelectUnit", "TwoStageSelector"]

#: Bits of a magnitude index into a dialect (element code minus its sign bit).
INDEX_BITS = (MAGNITUDE_CODES - 1).bit_length()


def dialect_thresholds(book: Formatbook) -> list[list[int]]:
    """``T[d][k] = h[d][k] + h[d][k + 1]`` (k = 0..6): 4x the midpoints of dialect ``d``, so that
    ``IDX[d][u] = #{k : u >= T[d][k]}`` (NUMERICS 2.1 step 4). Checked against ``book.idx_table``."""
    units = [[int(h) for h in row] for row in book.units]
    thresholds = [[row[k] + row[k + 1] for k in range(MAGNITUDE_CODES - 1)] for row in units]
    idx = book.idx_table
    for d, row in enumerate(thresholds):
        for u in range(book.num_ucodes):
            if sum(u >= t for t in row) != int(idx[d, u]):
                raise AssertionError(f"{book.name} dialect {d}: thresholds {row} disagree with IDX at u={u}")
    return thresholds


def threshold_bits(book: Formatbook) -> int:
    """Bits of one threshold: the width of u (at most 14 + 15 = 29 < 32 on the half grid, 30 + 31 = 61
    < 64 on the quarter grid)."""
    return book.grid.ucode_bits


def _threshold_read(m: Module, book: Formatbook, dialect, name: str) -> list:
    """The 7 thresholds of ``dialect`` (one ROM of 7 x 5-bit words, 6-bit on the quarter grid, read once per block)."""
    thresholds = dialect_thresholds(book)
    bits = threshold_bits(book)
    width = bits * (MAGNITUDE_CODES - 1)
    table = [sum(t << (bits * k) for k, t in enumerate(row)) for row in thresholds]
    table += [0] * ((1 << book.id_bits) - len(table))
    word = Rom(m, f"{name}_rom", table, width).read(m, dialect, name)
    return [word[bits * k : bits * (k + 1)] for k in range(MAGNITUDE_CODES - 1)]


def _index(u, thresholds):
    """``#{k : u >= T_k}``: the nearest-value index (ties up, saturating), as a 3-bit count."""
    return tree_reduce([(u >= t).as_unsigned() for t in thresholds], lambda a, b: a + b)


def _encode(m: Module, book: Formatbook, dialect, block_data, block: int, out) -> None:
    """Drive ``out`` (selector_out_layout) with the exponent, ``dialect`` and the element codes.

    Index encoding compares each ``u`` against the chosen dialect's 7 midpoint thresholds (selected
    once per block), instead of one {dialect, u} ROM per lane.
    """
    thresholds = _threshold_read(m, book, dialect, "thresholds")
    m.d.comb += [out.exponent.eq(block_data.exponent), out.dialect.eq(dialect)]
    for k in range(block):
        index = Signal(INDEX_BITS, name=f"index_{k}")
        m.d.comb += index.eq(_index(block_data.ucodes[k], thresholds))
        m.d.comb += out.codes[k].eq(Cat(index, block_data.signs[k]))


class _Selector(wiring.Component):
    """The shared two-register pipeline; subclasses choose the dialect in the cost stage."""

    def __init__(self, config: DSUConfig | TwoStageConfig) -> None:
        self.config = config
        super().__init__(
            {
                "i": In(stream.Signature(selector_in_layout(config))),
                "o": Out(stream.Signature(selector_out_layout(config))),
            }
        )

    @staticmethod
    def passes_of(config) -> int:
        return config.passes if isinstance(config, DSUConfig) else 1

    @classmethod
    def timing(cls, config) -> UnitTiming:
        passes = cls.passes_of(config)
        return UnitTiming(latency=passes + 1, initiation_interval=passes)

    @property
    def passes(self) -> int:
        return self.passes_of(self.config)

    @property
    def latency(self) -> int:
        return self.timing(self.config).latency

    @property
    def initiation_interval(self) -> int:
        return self.timing(self.config).initiation_interval

    def elaborate(self, platform) -> Module:
        m = Module()
        book = self.config.book.formatbook
        held = Signal(selector_in_layout(self.config), name="held")
        held_valid = Signal(name="held_valid")
        step = Signal(range(max(2, self.passes)), name="pass_index")
        last_pass = step == self.passes - 1

        dialect = Signal(book.id_bits, name="dialect")
        self.choose(m, held, held_valid, step, last_pass, dialect)

        out_free = ~self.o.valid | self.o.ready
        done = Signal(name="done")
        m.d.comb += done.eq(held_valid & last_pass & out_free)
        m.d.comb += self.i.ready.eq(~held_valid | done)

        encoded = Signal(selector_out_layout(self.config), name="encoded")
        _encode(m, book, dialect, held, self.config.block, encoded)
        with m.If(done):
            m.d.sync += [self.o.valid.eq(1), self.o.payload.eq(encoded)]
        with m.Elif(self.o.ready):
            m.d.sync += self.o.valid.eq(0)

        with m.If(held_valid & ~last_pass):
            m.d.sync += step.eq(step + 1)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [held.eq(self.i.payload), held_valid.eq(1), step.eq(0)]
        with m.Elif(done):
            m.d.sync += held_valid.eq(0)
        return m

    def choose(self, m, held, held_valid, step, last_pass, dialect) -> None:
        raise NotImplementedError


class DialectSelectUnit(_Selector):
    """LUT selection: ``cost[d] = sum_i ERR[d][u_i]``, argmin over the masked dialects, ties to the lowest id.

    Ports: ``i`` (``selector_in_layout``: exponent, signs, ucodes, mask), ``o``
    (``selector_out_layout``: exponent, dialect, codes). An all-zero mask is outside the contract
    (the golden model rejects it); the unit then returns dialect 0.
    """

    def __init__(self, config: DSUConfig) -> None:
        if not isinstance(config, DSUConfig):
            raise TypeError(f"DialectSelectUnit needs a DSUConfig, got {config!r}")
        super().__init__(config)

    @staticmethod
    def levels(config: DSUConfig) -> int:
        """Logic levels of the pipelined unit: ERR ROM read, adder tree, argmin tree, threshold read, encoder."""
        return 1 + _depth(config.block) + _depth(config.parallel) + 2

    @classmethod
    def timing(cls, config) -> UnitTiming:
        if config.pipeline_stages is None:
            return super().timing(config)
        cuts = min(config.pipeline_stages, cls.levels(config))
        return UnitTiming(latency=cuts + 1, initiation_interval=1)

    def elaborate(self, platform) -> Module:
        if self.config.pipeline_stages is None:
            return super().elaborate(platform)
        return self._elaborate_pipelined()

    def _elaborate_pipelined(self) -> Module:
        """Full parallelism, ``pipeline_stages`` register cuts, free-running, skid FIFO at ``o``."""
        m = Module()
        config = self.config
        book = config.book.formatbook
        err = book.err_table
        cost_bits = (config.block * int(err.max())).bit_length()
        stages = Stages(m, self.levels(config), config.pipeline_stages, self.i.valid & self.i.ready, "dsu")
        level = 0
        payload = self.i.payload
        keep = {"exponent": payload.exponent, "signs": payload.signs, "ucodes": payload.ucodes, "mask": payload.mask}

        # Level 0: one ERR ROM per candidate, read by every lane.
        errors = []
        for k in range(config.parallel):
            rom = Rom(m, f"err_rom_{k}", [int(err[k, u]) for u in range(book.num_ucodes)], book.err_bits)
            errors.append([rom.read(m, payload.ucodes[i], f"err_{k}_{i}") for i in range(config.block)])
        live = stages.cut(level, {**keep, "errors": errors})
        level += 1

        # Adder trees, one level at a time (order kept: left operand first).
        trees = live.pop("errors")
        while len(trees[0]) > 1:
            trees = [_tree_level(t, lambda a, b: (a + b)[:cost_bits]) for t in trees]
            live = stages.cut(level, {**live, "trees": trees})
            trees = live.pop("trees")
            level += 1
        costs = [t[0] for t in trees]

        # Argmin tree: later ids win only when strictly cheaper; masked ids never win.
        candidates = [[live["mask"][k], costs[k], Const(k, book.id_bits)] for k in range(config.parallel)]
        live.pop("mask")
        while len(candidates) > 1:
            candidates = _tree_level(candidates, _better)
            live = stages.cut(level, {**live, "candidates": candidates})
            candidates = live.pop("candidates")
            level += 1
        win_valid, _, win_id = candidates[0]
        dialect = Signal(book.id_bits, name="dialect")
        m.d.comb += dialect.eq(Mux(win_valid, win_id, 0))

        # Threshold read (once per block), then the encoder.
        thresholds = _threshold_read(m, book, dialect, "thresholds")
        live = stages.cut(level, {**live, "dialect": dialect, "thresholds": thresholds})
        level += 1
        encoded = Signal(selector_out_layout(config), name="encoded")
        m.d.comb += [encoded.exponent.eq(live["exponent"]), encoded.dialect.eq(live["dialect"])]
        for i in range(config.block):
            index = Signal(INDEX_BITS, name=f"index_{i}")
            m.d.comb += index.eq(_index(live["ucodes"][i], live["thresholds"]))
            m.d.comb += encoded.codes[i].eq(Cat(index, live["signs"][i]))
        final = stages.cut(level, {"encoded": encoded})
        skid_output(m, self.i, self.o, final["encoded"], stages.valid, stages.cuts + 1, prefix="dsu")
        return m

    def choose(self, m, held, held_valid, step, last_pass, dialect) -> None:
        config = self.config
        book = config.book.formatbook
        err = book.err_table
        cost_bits = (config.block * int(err.max())).bit_length()
        parallel, passes = config.parallel, config.passes

        # Candidates in increasing id order: the best of earlier passes, then this pass's dialects.
        best_valid = Signal(name="best_valid")
        best_cost = Signal(cost_bits, name="best_cost")
        best_id = Signal(book.id_bits, name="best_id")
        candidates = [(best_valid & (step != 0), best_cost, best_id)]
        for k in range(parallel):
            ids = [p * parallel + k for p in range(passes)]
            # ROM of candidate k: ERR of dialect (pass * parallel + k), indexed by {pass, u}.
            err_rom = Rom(m, f"err_rom_{k}", [int(err[d, u]) for d in ids for u in range(book.num_ucodes)], book.err_bits)
            terms = []
            for i in range(config.block):
                index = held.ucodes[i] if passes == 1 else Cat(held.ucodes[i], step)
                terms.append(err_rom.read(m, index, f"err_{k}_{i}"))
            cost = Signal(cost_bits, name=f"cost_{k}")
            m.d.comb += cost.eq(tree_reduce(terms, lambda a, b: a + b))
            allowed = Signal(name=f"allowed_{k}")
            if passes == 1:
                m.d.comb += allowed.eq(held.mask[k])
            else:
                m.d.comb += allowed.eq(Cat(*(held.mask[d] for d in ids)).bit_select(step, 1))
            cand_id = Signal(book.id_bits, name=f"id_{k}")
            m.d.comb += cand_id.eq(step * parallel + k if passes > 1 else k)
            candidates.append((allowed, cost, cand_id))

        win_valid, win_cost, win_id = tree_reduce(candidates, _better)
        m.d.comb += dialect.eq(Mux(win_valid, win_id, 0))
        with m.If(held_valid & ~last_pass):
            m.d.sync += [best_valid.eq(win_valid), best_cost.eq(win_cost), best_id.eq(win_id)]


def _depth(n: int) -> int:
    """Levels of a balanced binary tree over ``n`` leaves."""
    return max(0, (n - 1).bit_length())


def _tree_level(items: list, combine) -> list:
    """One level of ``tree_reduce``: neighbours combined pairwise, an odd last item passed on."""
    out = [combine(items[k], items[k + 1]) for k in range(0, len(items) - 1, 2)]
    if len(items) % 2:
        out.append(items[-1])
    return out


def _better(left, right):
    """Argmin merge of (allowed, cost, id) candidates; ``right`` holds higher ids and wins only when
    strictly cheaper (ties to the lowest id)."""
    take = right[0] & (~left[0] | (right[1] < left[1]))
    return [left[0] | right[0], Mux(take, right[1], left[1]), Mux(take, right[2], left[2])]


class TwoStageSelector(_Selector):
    """BlockDialect's two-stage selection (DialectFP4-16).

    Stage 1: ``m = clamp(max(u) >> 1, 16 - pairs, 15)`` picks pair ``p = 15 - m``. Stage 2: count the
    codes inside dialect ``2p``'s and ``2p + 1``'s beneficial ranges (``two_stage_ranges``); A wins
    ties; an all-zero block takes dialect 0. Ports as the DSU without ``mask``.
    """

    def __init__(self, config: TwoStageConfig) -> None:
        if not isinstance(config, TwoStageConfig):
            raise TypeError(f"TwoStageSelector needs a TwoStageConfig, got {config!r}")
        super().__init__(config)

    @staticmethod
    def levels(config: TwoStageConfig) -> int:
        """Logic levels of the pipelined unit: max-tree levels, pair and range read, range compares,
        count-tree levels, choice, threshold read, encoder."""
        return 2 * _depth(config.block) + 5

    @classmethod
    def timing(cls, config) -> UnitTiming:
        if config.pipeline_stages is None:
            return super().timing(config)
        return UnitTiming(latency=min(config.pipeline_stages, cls.levels(config)) + 1, initiation_interval=1)

    def elaborate(self, platform) -> Module:
        if self.config.pipeline_stages is None:
            return super().elaborate(platform)
        return self._elaborate_pipelined()

    def choose(self, m, held, held_valid, step, last_pass, dialect) -> None:
        block = self.config.block
        ucodes = [held.ucodes[i] for i in range(block)]
        umax = Signal(len(ucodes[0]), name="umax")
        m.d.comb += umax.eq(tree_reduce(ucodes, _larger))
        pair, bounds = _pair_and_ranges(m, self.config.book.formatbook, umax)
        counts = []
        for c, label in enumerate("ab"):
            inside = _inside(ucodes, *bounds[c])
            count = Signal(range(block + 1), name=f"count_{label}")
            m.d.comb += count.eq(tree_reduce([x.as_unsigned() for x in inside], lambda a, b: a + b))
            counts.append(count)
        m.d.comb += dialect.eq(_two_stage_choice(counts, pair, umax))

    def _elaborate_pipelined(self) -> Module:
        """``pipeline_stages`` register cuts over ``levels`` logic levels, free-running, skid FIFO at ``o``."""
        m = Module()
        config = self.config
        book = config.book.formatbook
        block = config.block
        stages = Stages(m, self.levels(config), config.pipeline_stages, self.i.valid & self.i.ready, "two_stage")
        payload = self.i.payload
        live = {"exponent": payload.exponent, "signs": payload.signs, "ucodes": [payload.ucodes[i] for i in range(block)]}
        level = 0
        # Max tree over u, one level at a time.
        maxima = list(live["ucodes"])
        while len(maxima) > 1:
            maxima = _tree_level(maxima, _larger)
            live = stages.cut(level, {**live, "maxima": maxima})
            maxima = live.pop("maxima")
            level += 1
        umax = maxima[0]
        # The pair and its two ranges.
        pair, bounds = _pair_and_ranges(m, book, umax)
        live = stages.cut(level, {**live, "umax": umax, "pair": pair, "bounds": [list(b) for b in bounds]})
        level += 1
        # Range compares, then the two count trees.
        inside = [[x.as_unsigned() for x in _inside(live["ucodes"], *b)] for b in live.pop("bounds")]
        live = stages.cut(level, {**live, "inside": inside})
        level += 1
        trees = live.pop("inside")
        while len(trees[0]) > 1:
            trees = [_tree_level(t, lambda a, b: a + b) for t in trees]
            live = stages.cut(level, {**live, "trees": trees})
            trees = live.pop("trees")
            level += 1
        counts = [t[0] for t in trees]
        dialect = Signal(book.id_bits, name="dialect")
        m.d.comb += dialect.eq(_two_stage_choice(counts, live.pop("pair"), live.pop("umax")))
        live = stages.cut(level, {**live, "dialect": dialect})
        level += 1
        # Threshold read (once per block), then the encoder.
        thresholds = _threshold_read(m, book, live["dialect"], "thresholds")
        live = stages.cut(level, {**live, "thresholds": thresholds})
        level += 1
        encoded = Signal(selector_out_layout(config), name="encoded")
        m.d.comb += [encoded.exponent.eq(live["exponent"]), encoded.dialect.eq(live["dialect"])]
        for i in range(block):
            index = Signal(INDEX_BITS, name=f"index_{i}")
            m.d.comb += index.eq(_index(live["ucodes"][i], live["thresholds"]))
            m.d.comb += encoded.codes[i].eq(Cat(index, live["signs"][i]))
        final = stages.cut(level, {"encoded": encoded})
        skid_output(m, self.i, self.o, final["encoded"], stages.valid, stages.cuts + 1, prefix="two_stage")
        return m


def _larger(a, b):
    return Mux(a > b, a, b)


def _pair_and_ranges(m: Module, book: Formatbook, umax):
    """Stage 1 of NUMERICS 2.2: the pair ``p = 15 - clamp(umax >> 1, 16 - pairs, 15)`` and the [lo, hi)
    beneficial ranges of its dialects A = 2p and B = 2p + 1 (``two_stage_ranges``)."""
    ranges = book.two_stage_ranges  # (pairs, 2 [A/B], 2 [lo/hi])
    pairs = ranges.shape[0]
    top = (book.num_ucodes >> 1) - 1  # largest truncated maximum u >> 1
    truncated = umax >> 1
    low = top - (pairs - 1)
    pair = Signal(range(pairs), name="pair")
    m.d.comb += pair.eq(top - Mux(truncated < low, low, truncated))
    bounds = []
    for c, label in enumerate("ab"):
        lo = Signal(len(umax) + 1, name=f"range_{label}_lo")
        hi = Signal(len(umax) + 1, name=f"range_{label}_hi")
        m.d.comb += [
            lo.eq(Array(Const(int(ranges[p, c, 0]), len(lo)) for p in range(pairs))[pair]),
            hi.eq(Array(Const(int(ranges[p, c, 1]), len(hi)) for p in range(pairs))[pair]),
        ]
        bounds.append((lo, hi))
    return pair, bounds


def _inside(ucodes, lo, hi) -> list:
    return [(u >= lo) & (u < hi) for u in ucodes]


def _two_stage_choice(counts, pair, umax):
    """Stage 2 of NUMERICS 2.2: B (odd id) only with strictly more codes in its range; all-zero -> 0."""
    choice = Cat(counts[1] > counts[0], pair)
    return Mux(umax == 0, 0, choice)
