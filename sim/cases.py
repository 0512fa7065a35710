"""Per-unit test adapters: stimulus, golden expectation and a batch scoreboard for each unit config.

``unit_case(config)`` returns an object with ``in_codec`` / ``out_codec`` (payload packing),
``stimulus(rng, n) -> Batch`` (random beats plus the unit's named corner cases), and
``check(batch, outputs) -> list[str]`` (every mismatch against ``golden``, empty when bit-exact).
The Amaranth tests (``tests/test_hw_*``) and the cocotb testbench (``sim.tb_unit``) both use them,
so the two simulators see the same stimulus and the same scoreboard.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hw import DecoderConfig, DSUConfig, FrontEndConfig, MACArrayConfig, ScaledFrontEndConfig, TwoStageConfig, UnitConfig, unit_timing
from hw.layouts import (
    decoder_in_layout,
    decoder_out_layout,
    front_end_in_layout,
    front_end_out_layout,
    mac_in_layout,
    mac_out_layout,
    scaled_front_end_in_layout,
    selector_in_layout,
    selector_out_layout,
)

from . import reference, stimulus
from .payload import PayloadCodec

__all__ = ["Batch", "unit_case"]

#: Mismatches listed in a failure report before the rest are counted.
REPORTED_MISMATCHES = 10


@dataclass
class Batch:
    """Input beats of one run and what the scoreboard needs to check them.

    ``names`` has one entry per expected output beat; ``first_beats[j]`` is the input beat where
    output ``j``'s inputs start (``j`` for one-to-one units, the job's first K block for the MAC; for
    the C-slow MAC array the first beat of the group of L interleaved jobs that ``j`` belongs to);
    ``last_beats[j]`` the input beat that completes output ``j`` (None: the beat before the next
    output's first).
    """

    fields: dict[str, np.ndarray]
    names: list[str]
    payloads: list[int]
    first_beats: list[int]
    jobs: list = field(default_factory=list)  # MAC array: (a, w) QuantizedTensor pairs
    last_beats: list[int] | None = None

    def __post_init__(self) -> None:
        if self.last_beats is None:
            self.last_beats = [b - 1 for b in self.first_beats[1:]] + [len(self.payloads) - 1] if self.first_beats else []

    @property
    def expected_outputs(self) -> int:
        return len(self.names)

    def group_start(self, j: int) -> int:
        """The first output whose inputs start where output ``j``'s do: ``j`` itself unless jobs are
        interleaved (a C-slow group is resent whole after a reset). ``j`` may be the output count."""
        if j >= len(self.first_beats):
            return len(self.first_beats)
        while j > 0 and self.first_beats[j - 1] == self.first_beats[j]:
            j -= 1
        return j

    def take(self, start: int) -> Batch:
        """The inputs of outputs ``start...`` (what a producer resends after a reset); ``start`` must
        begin a group (``group_start``)."""
        if start != self.group_start(start):
            raise ValueError(f"output {start} is inside an interleaved group starting at output {self.group_start(start)}")
        beat = self.first_beats[start] if start < len(self.first_beats) else len(self.payloads)
        return Batch(
            {k: v[beat:] for k, v in self.fields.items()},
            self.names[start:],
            self.payloads[beat:],
            [b - beat for b in self.first_beats[start:]],
            self.jobs[start:],
            [b - beat for b in self.last_beats[start:]],
        )


def _compare(names: list[str], expected: dict[str, np.ndarray], got: dict[str, np.ndarray]) -> list[str]:
    n = len(names)
    bad = np.zeros(n, dtype=bool)
    for key, value in expected.items():
        bad |= (np.asarray(got[key]).reshape(n, -1) != np.asarray(value).reshape(n, -1)).any(-1)
    report = []
    for j in np.flatnonzero(bad)[:REPORTED_MISMATCHES]:
        diff = {k: (np.asarray(expected[k][j]).tolist(), np.asarray(got[k][j]).tolist()) for k in expected}
        diff = {k: v for k, v in diff.items() if v[0] != v[1]}
        report.append(f"beat {j} ({names[j]}): expected/got {diff}")
    if bad.sum() > REPORTED_MISMATCHES:
        report.append(f"... {int(bad.sum()) - REPORTED_MISMATCHES} more mismatching beats")
    return report


class _OneToOne:
    """A unit with one output beat per input beat."""

    def __init__(self, config: UnitConfig, in_layout, out_layout) -> None:
        self.config = config
        self.in_codec = PayloadCodec(in_layout)
        self.out_codec = PayloadCodec(out_layout)
        timing = unit_timing(config)
        self.latency, self.initiation_interval = timing.latency, timing.initiation_interval

    def _batch(self, fields, names) -> Batch:
        return Batch(fields, names, self.in_codec.pack(fields), list(range(len(names))))

    def expected(self, fields):
        raise NotImplementedError

    def check(self, batch: Batch, outputs: list[int]) -> list[str]:
        if len(outputs) != batch.expected_outputs:
            return [f"expected {batch.expected_outputs} output beats, got {len(outputs)}"]
        return _compare(batch.names, self.expected(batch.fields), self.out_codec.unpack(outputs))


class FrontEndCase(_OneToOne):
    def __init__(self, config: FrontEndConfig) -> None:
        super().__init__(config, front_end_in_layout(config), front_end_out_layout(config.block, config.grid))

    def stimulus(self, rng, n) -> Batch:
        bits, names = stimulus.bf16_blocks(rng, n, self.config.block)
        return self._batch({"": bits}, names)

    def expected(self, fields):
        return reference.front_end_reference(fields[""], self.config.grid)


class ScaledFrontEndCase(_OneToOne):
    """E4M3 front-end: golden's scale bytes and reciprocals in; the scoreboard checks the unit against
    the step-4 expression and that expression against golden's own codes (``golden.*`` fields)."""

    def __init__(self, config: ScaledFrontEndConfig) -> None:
        super().__init__(config, scaled_front_end_in_layout(config), front_end_out_layout(config.block, config.grid))

    def stimulus(self, rng, n) -> Batch:
        fields, names = stimulus.scaled_blocks(rng, n, self.config)
        return self._batch(fields, names)

    def expected(self, fields):
        out = reference.scaled_front_end_reference(self.config, fields)
        if "golden.ucodes" in fields:
            assert np.array_equal(out["ucodes"], fields["golden.ucodes"]), "step 4 disagrees with golden's u"
        return out


class SelectorCase(_OneToOne):
    def __init__(self, config: DSUConfig | TwoStageConfig) -> None:
        super().__init__(config, selector_in_layout(config), selector_out_layout(config))

    def stimulus(self, rng, n) -> Batch:
        corners, corner_names = stimulus.selector_corners(self.config)
        fields, names = stimulus.selector_blocks(rng, self.config, max(0, n - len(corner_names)))
        fields = {k: np.concatenate([corners[k], fields[k]]) for k in corners}
        return self._batch(fields, corner_names + names)

    def expected(self, fields):
        return reference.select_reference(self.config, fields)


class DecoderCase(_OneToOne):
    """The decoder's stimulus is exhaustive (every format x dialect x code); ``n`` repeats it."""

    def __init__(self, config: DecoderConfig) -> None:
        super().__init__(config, decoder_in_layout(config), decoder_out_layout(config))

    def stimulus(self, rng, n) -> Batch:
        fields = stimulus.decoder_exhaustive(self.config)
        count = len(fields["format"])
        repeats = max(1, -(-n // count))
        order = np.concatenate([np.arange(count)] + [rng.permutation(count) for _ in range(repeats - 1)])
        fields = {k: v[order] for k, v in fields.items()}
        names = [f"format {f} dialect {d}" for f, d in zip(fields["format"], fields["dialect"])]
        return self._batch(fields, names)

    def expected(self, fields):
        return reference.decoder_reference(self.config, fields)


class MACArrayCase:
    """Jobs (output tiles) of every ``stimulus.MAC_MODES`` mode; one output beat per job. On a C-slow
    array (``interleave`` L > 1) jobs go in groups of L of the same K length, their beats interleaved
    slot by slot (beat ``n`` of a group belongs to its job ``n mod L``); outputs come in slot order."""

    def __init__(self, config: MACArrayConfig) -> None:
        self.config = config
        self.in_codec = PayloadCodec(mac_in_layout(config))
        self.out_codec = PayloadCodec(mac_out_layout(config))
        timing = unit_timing(config)
        self.latency, self.initiation_interval = timing.latency, timing.initiation_interval

    def stimulus(self, rng, n) -> Batch:
        jobs, names = [], []
        per = max(1, -(-n // len(stimulus.MAC_MODES)))
        for mode in stimulus.MAC_MODES:
            jobs += stimulus.mac_jobs(rng, self.config, per, mode)
            names += [mode] * per
        if self.config.interleave > 1:
            return self._interleaved(rng, jobs, names, per)
        fields = stimulus.mac_beats(self.config, jobs)
        first_beats = np.concatenate([[0], np.cumsum([a.num_blocks for a, _ in jobs])[:-1]]).tolist()
        return Batch(fields, names, self.in_codec.pack(fields), first_beats, jobs)

    def _interleaved(self, rng, jobs, names, per) -> Batch:
        """Groups of L same-length jobs (more jobs of every mode are drawn until each length that
        occurs fills whole groups), interleaved slot by slot."""
        slots = self.config.interleave
        pools: dict[int, list] = {}
        for job, name in zip(jobs, names):
            pools.setdefault(job[0].num_blocks, []).append((job, name))
        while any(len(pool) % slots for pool in pools.values()):
            for mode in stimulus.MAC_MODES:
                for job in stimulus.mac_jobs(rng, self.config, per, mode):
                    pool = pools.setdefault(job[0].num_blocks, [])
                    if len(pool) % slots:  # only lengths still short of a whole group
                        pool.append((job, mode))
        single = MACArrayConfig(rows=self.config.rows, cols=self.config.cols, block=self.config.block)
        fields: dict[str, list] = {}
        out_jobs, out_names, first_beats, last_beats, beat = [], [], [], [], 0
        for length, pool in sorted(pools.items()):
            for g in range(0, len(pool), slots):
                group = pool[g : g + slots]
                per_job = [stimulus.mac_beats(single, [job]) for job, _ in group]
                for key in per_job[0]:
                    stacked = np.stack([f[key] for f in per_job], axis=1)  # (length, L, ...)
                    fields.setdefault(key, []).append(stacked.reshape(length * slots, *stacked.shape[2:]))
                out_jobs += [job for job, _ in group]
                out_names += [name for _, name in group]
                first_beats += [beat] * slots
                last_beats += [beat + (length - 1) * slots + s for s in range(slots)]
                beat += length * slots
        merged = {k: np.concatenate(v) for k, v in fields.items()}
        return Batch(merged, out_names, self.in_codec.pack(merged), first_beats, out_jobs, last_beats)

    def check(self, batch: Batch, outputs: list[int]) -> list[str]:
        if len(outputs) != batch.expected_outputs:
            return [f"expected {batch.expected_outputs} output beats, got {len(outputs)}"]
        got = self.out_codec.unpack(outputs)[""].astype(np.uint32)
        expected = np.stack([reference.mac_reference(a, w) for a, w in batch.jobs])
        # NaN bit patterns differ between platforms (x86 gives 0xffc00000); NaNs compare as a class.
        nan_got, nan_exp = np.isnan(got.view(np.float32)), np.isnan(expected.view(np.float32))
        bad = ((got != expected) & ~(nan_got & nan_exp)).any((1, 2))
        report = [
            f"job {j} ({batch.names[j]}): expected {[hex(v) for v in expected[j].ravel()]} "
            f"got {[hex(v) for v in got[j].ravel()]}"
            for j in np.flatnonzero(bad)[:REPORTED_MISMATCHES]
        ]
        if bad.sum() > REPORTED_MISMATCHES:
            report.append(f"... {int(bad.sum()) - REPORTED_MISMATCHES} more mismatching jobs")
        return report


def unit_case(config: UnitConfig):
    cases = {
        FrontEndConfig: FrontEndCase,
        ScaledFrontEndConfig: ScaledFrontEndCase,
        DSUConfig: SelectorCase,
        TwoStageConfig: SelectorCase,
        DecoderConfig: DecoderCase,
        MACArrayConfig: MACArrayCase,
    }
    return cases[type(config)](config)
