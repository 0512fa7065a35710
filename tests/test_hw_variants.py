"""RTL for the wider format space (NUMERICS 8): units generated from registry formatbooks -- the
shipped fitted books (``tdit64-q-e4m3``, ``tdit-q-e4m3``, ``tdit-h-e8m0``) or a formatbook file by
path -- on the quarter grid and with the E4M3 block scale, bit-exact against golden in Amaranth's
simulator. The cocotb/Verilator regressions of the same variants are in ``test_hw_variants_sim.py``.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
import torch
from amaranth.hdl import Elaboratable, Module

import golden
from golden.formats import Grid, dialect_format, register_format
from hw import Book, ConfigError, DecoderConfig, DSUConfig, FrontEndConfig, MACArrayConfig, ScaledFrontEndConfig
from hw.config import config_from_json
from hw.layouts import decoder_out_layout, mac_in_layout, mac_out_layout
from hw.mac_array import MACArray
from hw.select import dialect_thresholds
from sim.amaranth_bench import run_stream
from sim.payload import PayloadCodec
from tests.test_hw_units import check_unit

BOOK64 = Book("tdit64-q-e4m3")
BOOK32Q = Book("tdit-q-e4m3")
BOOK32H = Book("tdit-h-e8m0")

#: (config, beats): the variant units; small batches (the Verilator runs sweep more).
CONFIGS = [
    (FrontEndConfig(block=32, grid=Grid.QUARTER), 40),
    (ScaledFrontEndConfig(block=32), 48),
    (ScaledFrontEndConfig(block=16, input="fp32"), 40),
    (ScaledFrontEndConfig(block=16, grid=Grid.HALF), 24),
    (DSUConfig(book=BOOK64, block=16, pipeline_stages=4), 60),
    (DSUConfig(book=BOOK64, block=16, dialects_per_cycle=16), 40),
    (DecoderConfig(books=(BOOK64, BOOK32Q), lanes=4), 0),
    # Bigger elaborations (tens of seconds each in Python): `make sim` / -m slow.
    pytest.param(DSUConfig(book=BOOK64, block=32), 60, marks=pytest.mark.slow),
    pytest.param(DSUConfig(book=BOOK32Q, block=16), 60, marks=pytest.mark.slow),
    pytest.param(DSUConfig(book=BOOK32H, block=32, pipeline_stages=6), 60, marks=pytest.mark.slow),
]


def _name(case) -> str:
    return (case.values[0] if hasattr(case, "values") else case[0]).name


@pytest.mark.parametrize("config,beats", CONFIGS, ids=[_name(c) for c in CONFIGS])
def test_variant_unit_is_bit_exact_under_backpressure(config, beats):
    rng = np.random.default_rng(11)
    check_unit(config, beats, valid=iter((rng.random(10**6) < 0.8).tolist()), ready=itertools.cycle([1, 0, 1, 1, 0]))


def test_books_come_from_the_registry_by_name_or_path():
    path = golden.get_format("tdit-q-e4m3").source
    assert Book(path) is BOOK32Q is Book("tdit-q-e4m3")
    assert BOOK64.formatbook is golden.get_format("tdit64-q-e4m3").formatbook
    assert (BOOK64.grid, BOOK64.scale, BOOK64.formatbook.num_dialects) == (Grid.QUARTER, golden.Scale.E4M3, 64)
    assert list(Book) == [Book.FB32, Book.DIALECTFP4_16, Book.E2M1]  # iteration: the built-in books
    config = DSUConfig(book=BOOK64, block=32, pipeline_stages=4)
    assert config.name == "dsu_tdit64_q_e4m3_b32_p64_s4"  # a Verilog identifier
    assert config_from_json(config.to_json()) == config
    # The threshold ROM is derived from the registry table and agrees with IDX at every u (0..63).
    assert len(dialect_thresholds(BOOK64.formatbook)) == 64


def test_a_formatbook_file_outside_the_registry_generates_its_units(tmp_path):
    spec = golden.get_format("tdit-q-e4m3")
    rows = [list(r) for r in spec.formatbook.dialects[:8]]
    rows[0] = [0, 1, 2, 3, 5, 8, 13, 31]
    file = tmp_path / "my-book.json"
    from golden.formatbook import format_from_json, format_to_json, save_format_file

    data = {**format_to_json(spec), "name": "test-hw-my-book", "family_size": None, "dialects": rows}
    save_format_file(file, format_from_json(data, file))
    book = Book(str(file))
    assert book.value == "test-hw-my-book" and book.ref == str(file.resolve())
    config = DSUConfig(book=book, block=16)
    assert config_from_json(config.to_json()) == config
    check_unit(config, 30)
    check_unit(DecoderConfig(books=(book,), lanes=2), 0)


@pytest.mark.parametrize("make,message", [
    (lambda: Book("nvfp4"), "not a dialect format"),
    (lambda: Book("no-such-book"), "no formatbook 'no-such-book'"),
    (lambda: DecoderConfig(books=(Book.FB32, BOOK64)), "share a grid"),
    (lambda: FrontEndConfig(grid="quarter"), "grid must be"),
    (lambda: MACArrayConfig(grid=None), "grid must be"),
])  # fmt: skip
def test_variant_config_errors_name_the_problem(make, message):
    with pytest.raises(ConfigError, match=message):
        make()


# ---- MAC array: quarter-grid E8M0 and E4M3 (the NVFP4 scale path with g = 2) -------------------


def _quarter_e8m0_format():
    """A quarter-grid E8M0 registry format (none ships): tdit-q-e4m3's table under the shared exponent."""
    book = golden.get_format("tdit-q-e4m3").formatbook
    return register_format(dialect_format("test-hw-q-e8m0", book, "e8m0"))


def _mac_jobs(config: MACArrayConfig, fmt: str, n_jobs: int, seed: int, k_blocks: int):
    rng = np.random.default_rng(seed)
    jobs = []
    for j in range(n_jobs):
        k = config.block * k_blocks
        x = torch.from_numpy(rng.standard_normal((config.rows + config.cols, k)).astype(np.float32))
        x = x * float(np.exp2(rng.integers(-40, 40)))
        x[:, : config.block // 2] *= 300.0  # outliers: block scales far apart
        a = golden.quantize(x[: config.rows], fmt, block=config.block)
        w = golden.quantize(x[config.rows :] * 0.7, fmt, block=config.block, select="mse")
        jobs.append((a, w))
    return jobs


def _mac_fields(jobs, e4m3: bool) -> dict[str, np.ndarray]:
    out: dict[str, list] = {k: [] for k in ("a.exponent", "a.elements.magnitude", "a.elements.sign",
                                             "w.exponent", "w.elements.magnitude", "w.elements.sign", "last")}  # fmt: skip
    for a, w in jobs:
        for side, q in (("a", a), ("w", w)):
            h = q.signed_units().numpy()  # (rows|cols, nblocks, block), grid units
            sign = (q.codes.numpy().reshape(h.shape) >> 3) & 1
            scale = q.block_scale if e4m3 else q.exponent
            out[f"{side}.exponent"].append(scale.numpy().astype(np.int64).T)
            out[f"{side}.elements.magnitude"].append(np.abs(h).transpose(1, 0, 2))
            out[f"{side}.elements.sign"].append(sign.transpose(1, 0, 2))
        out["last"].append((np.arange(a.num_blocks) == a.num_blocks - 1).astype(np.int64))
    return {k: np.concatenate(v) for k, v in out.items()}


class _WithTensorScale(Elaboratable):
    """The E4M3 MAC array with its ``tensor_scale`` input held at one value (``run_stream`` drives i/o)."""

    def __init__(self, dut: MACArray, bits: int) -> None:
        self.dut, self.bits, self.i, self.o = dut, bits, dut.i, dut.o

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = self.dut
        m.d.comb += self.dut.tensor_scale.eq(self.bits)
        return m


def _bits(y: torch.Tensor) -> np.ndarray:
    return y.contiguous().view(torch.int32).numpy().view(np.uint32)


def _k_slice(q: golden.QuantizedTensor, start: int, stop: int) -> golden.QuantizedTensor:
    """Blocks ``[start, stop)`` of every row (the tensor scale is kept: one T for every job of a run)."""
    b = q.block
    per_block = lambda t: None if t is None else t[..., start:stop]  # noqa: E731
    return dataclasses.replace(q, length=(stop - start) * b, codes=q.codes[..., start * b : stop * b],
                               exponent=per_block(q.exponent), dialect=per_block(q.dialect),
                               block_scale=per_block(q.block_scale))  # fmt: skip


@pytest.mark.parametrize("e4m3", [False, True], ids=["e8m0", "e4m3"])
def test_quarter_grid_mac_array_is_bit_exact(e4m3):
    config = MACArrayConfig(rows=2, cols=2, block=16, grid=Grid.QUARTER, nvfp4=e4m3)  # L = 1: jobs back to back
    fmt = "tdit-q-e4m3" if e4m3 else _quarter_e8m0_format().name
    jobs = []
    for a, w in _mac_jobs(config, fmt, 2, seed=3, k_blocks=6):  # jobs: K slices of the same tensors
        jobs += [(_k_slice(a, s, e), _k_slice(w, s, e)) for s, e in ((0, 1), (1, 3), (3, 6), (0, 6))]
    if e4m3:
        jobs = jobs[:4]  # one tensor pair: the array's T input is static while streaming
    fields = _mac_fields(jobs, e4m3)
    payloads = PayloadCodec(mac_in_layout(config)).pack(fields)
    dut = MACArray(config)
    if e4m3:
        a, w = jobs[0]
        t = (a.tensor_scale.to(torch.float32) * w.tensor_scale.to(torch.float32)).reshape(1)
        dut = _WithTensorScale(dut, int(t.view(torch.int32).item()) & 0xFFFFFFFF)
    run = run_stream(dut, payloads, expected_outputs=len(jobs), ready=itertools.cycle([1, 1, 0]))
    got = PayloadCodec(mac_out_layout(config)).unpack(run.outputs)[""].astype(np.uint32)
    expected = np.stack([_bits(golden.quantized_matmul(a, w)) for a, w in jobs])
    np.testing.assert_array_equal(got, expected)


def test_quarter_grid_names_and_layouts():
    config = MACArrayConfig(rows=1, cols=1, block=32, grid=Grid.QUARTER, nvfp4=True)
    assert config.name == "nvfp4_mac_array_r1_c1_b32_q"
    assert config_from_json(config.to_json()) == config
    assert mac_in_layout(config)["a"].shape.elem_shape["elements"].shape.elem_shape["magnitude"].shape.width == 5
    assert decoder_out_layout(DecoderConfig(books=(BOOK64,), lanes=1)).elem_shape["magnitude"].shape.width == 5
    assert decoder_out_layout(DecoderConfig(books=(BOOK32H,), lanes=1)).elem_shape["magnitude"].shape.width == 4


# ---- Tiles of registry formats --------------------------------------------------------------


def _tile_configs():
    from hw.tile import TileConfig, TileFormat
    from hw.tile_front_end import InputFloat

    quarter_e8m0 = _quarter_e8m0_format().name
    return [
        TileConfig(format=TileFormat("tdit64-q-e4m3"), rows=2, cols=2, input=InputFloat.BF16, buffer_blocks=4),
        TileConfig(format=TileFormat("tdit-q-e4m3"), rows=2, cols=1, block=16, input=InputFloat.FP32, buffer_blocks=4,
                   quantizers=2, interleave=2),  # fmt: skip
        TileConfig(format=TileFormat("tdit-h-e8m0"), rows=2, cols=2, input=InputFloat.FP32, buffer_blocks=4),
        TileConfig(format=TileFormat(quarter_e8m0), rows=1, cols=2, input=InputFloat.FP32, buffer_blocks=4, dsu_stages=2),
    ]


@pytest.mark.parametrize("index", [0, pytest.param(1, marks=pytest.mark.slow), pytest.param(2, marks=pytest.mark.slow),
                                   pytest.param(3, marks=pytest.mark.slow)],
                         ids=["tdit64-q-e4m3", "tdit-q-e4m3-fp32", "tdit-h-e8m0", "quarter-e8m0"])  # fmt: skip
def test_registry_format_tile_is_bit_exact(index, tmp_path):
    """Quantizer (front-end + LUT DSU over the registry table, SeDA mask), buffer, decoders and the PEs of
    the format's grid and scale: the tile's outputs equal golden.quantized_matmul bit for bit."""
    from tests.test_tile_pipeline import _random, run_tile, synthetic_record
    from sim.tile.workload import load_workloads, record_workload, save_workloads

    config = _tile_configs()[index]
    record = synthetic_record(config, m=3, n=7, k=2 * config.block * (1 + index % 2), seed=index)
    if config.format.masked:
        g = torch.Generator().manual_seed(index)
        num = config.format.formatbook.num_dialects
        mask = torch.rand(record.x.shape[0], num, generator=g) < 0.5
        mask[:, 0] = True
        act = golden.quantize(record.x, config.format.value, block=config.block, mask=mask[:, None, :])
        y = golden.quantized_matmul(act, record.weight)
        record.activation, record.candidate_mask, record.y = act, mask, y
    work = record_workload(config, record)
    save_workloads(tmp_path / "w.npz", [work])  # as the Verilator replay ships it (64-dialect masks: wide ints)
    work = load_workloads(tmp_path / "w.npz")[0]
    got, beats, window, _ = run_tile(config, work, o_ready=_random(index, 0.8))
    np.testing.assert_array_equal(got, work.expected)
    assert beats == work.beats


def test_registry_tile_names_and_round_trip():
    from hw.tile import TileConfig, TileFormat

    config = _tile_configs()[0]
    assert config.name.startswith("tile_tdit64_q_e4m3_bf16_r2_c2_b32")
    assert TileConfig.from_json(config.to_json()) == config
    assert config.mac_config.nvfp4 and config.mac_config.grid is Grid.QUARTER
    assert config.selector_config.num_dialects == 64
    assert list(TileFormat) == [TileFormat.FB32, TileFormat.DIALECTFP4, TileFormat.MXFP4, TileFormat.NVFP4]


@pytest.mark.parametrize("fmt", ["bf16", "fp32"])
def test_quarter_grid_float_front_end_matches_golden(fmt):
    """The tile's IEEE front-end (bfloat16 or binary32 words) on the quarter grid: 6-bit u = golden's."""
    from hw.tile_front_end import FloatFrontEnd, FloatFrontEndConfig, InputFloat, float_front_end_in_layout, float_front_end_out_layout
    from tests.test_tile_units import _blocks, _words

    fmt = InputFloat(fmt)
    config = FloatFrontEndConfig(block=16, input=fmt, grid=Grid.QUARTER)  # _blocks: B = 16
    x = _blocks(np.random.default_rng(5), 40, fmt)
    run = run_stream(FloatFrontEnd(config), PayloadCodec(float_front_end_in_layout(config)).pack({"": _words(x, fmt)}),
                     ready=itertools.cycle([1, 0, 1]))  # fmt: skip
    got = PayloadCodec(float_front_end_out_layout(16, False, Grid.QUARTER)).unpack(run.outputs)
    e, u, sign = golden.front_end(x, grid=Grid.QUARTER)
    np.testing.assert_array_equal(got["exponent"], (e + 127).numpy())
    np.testing.assert_array_equal(got["ucodes"], u.numpy())
    np.testing.assert_array_equal(got["signs"], sign.numpy())
    assert u.max() == 63


def test_sdialect_rtl_generates_a_registry_book_by_name_or_path(tmp_path):
    """`sdialect rtl --book NAME|PATH`: the DSU's ROMs come from the book's table; a non-dialect format
    and a decoder mixing grids are refused with one sentence and exit status 2."""
    import subprocess
    import sys

    path = golden.get_format("tdit-q-e4m3").source

    def rtl(*args):
        return subprocess.run([sys.executable, "-m", "sdialect.cli", "rtl", *args, "--out", str(tmp_path)],
                              capture_output=True, text=True, check=False)  # fmt: skip

    done = rtl("--unit", "dsu", "--book", path, "--block", "16", "--dialects-per-cycle", "8")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "dsu_tdit_q_e4m3_b16_p8.v").is_file()
    assert config_from_json((tmp_path / "dsu_tdit_q_e4m3_b16_p8.json").read_text()) == DSUConfig(
        book=BOOK32Q, block=16, dialects_per_cycle=8)
    bad = rtl("--unit", "dsu", "--book", "nvfp4")
    assert bad.returncode == 2 and "not a dialect format" in bad.stderr
    bad = rtl("--unit", "decoder", "--books", "fb32,tdit64-q-e4m3")
    assert bad.returncode == 2 and "share a grid" in bad.stderr
