"""The tile-side units in Amaranth's Python simulator, bit-exact against golden: the IEEE front-end
(bfloat16 and binary32, with sticky bits) and the MXFP4 E2M1 encoder; tile configuration checks."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

import golden
from golden.formats import EXPONENT_BIAS
from hw import ConfigError
from hw.tile import Tile, TileConfig, TileFormat
from hw.tile_front_end import (
    E2M1Encoder,
    E2M1EncoderConfig,
    FloatFrontEnd,
    FloatFrontEndConfig,
    InputFloat,
    encoded_block_layout,
    float_front_end_in_layout,
    float_front_end_out_layout,
)
from golden.formats import E2M1
from sim.amaranth_bench import run_stream
from sim.payload import PayloadCodec

BLOCK = 16


def _blocks(rng: np.random.Generator, n: int, fmt: InputFloat) -> torch.Tensor:
    """Float32 blocks exactly representable in ``fmt``: random scales, E2M1 ties, zeros, subnormals, extremes."""
    x = rng.standard_normal((n, BLOCK)) * np.exp2(rng.integers(-30, 30, (n, 1)))
    x = torch.from_numpy(x.astype(np.float32))
    ties = torch.tensor([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, 6.0, 7.9375, 0.0, -0.0, 3.0, 4.5, 0.5, 1.0, 2.0])
    corners = [
        torch.zeros(BLOCK),
        -torch.zeros(BLOCK),
        ties * 2.0**-3,  # amax 7.9375 * 2^-3: e = -3, the ties land exactly on E2M1 midpoints
        ties * 2.0**10,
        ties * 2.0**-135,  # subnormal amax: e clamps to -127 (scale byte 0)
        torch.full((BLOCK,), 1.9921875 * 2.0**127),  # the largest bfloat16, finite in both formats
        torch.full((BLOCK,), 2.0**-149),
        ties * 2.0**120,
    ]
    x = torch.cat([torch.stack(corners), x])
    if fmt is InputFloat.BF16:
        x = x.to(torch.bfloat16).to(torch.float32)
    return x


def _words(x: torch.Tensor, fmt: InputFloat) -> np.ndarray:
    if fmt is InputFloat.FP32:
        return x.view(torch.int32).numpy().view(np.uint32).astype(np.int64)
    return x.to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16).astype(np.int64)


@pytest.mark.parametrize("fmt", list(InputFloat), ids=[f.value for f in InputFloat])
@pytest.mark.parametrize("inexact", [False, True], ids=["plain", "sticky"])
def test_float_front_end_matches_golden(fmt, inexact):
    config = FloatFrontEndConfig(block=BLOCK, input=fmt, inexact=inexact)
    x = _blocks(np.random.default_rng(1), 40, fmt)
    in_codec = PayloadCodec(float_front_end_in_layout(config))
    out_codec = PayloadCodec(float_front_end_out_layout(BLOCK, inexact))
    run = run_stream(FloatFrontEnd(config), in_codec.pack({"": _words(x, fmt)}), ready=itertools.cycle([1, 1, 0]))
    got = out_codec.unpack(run.outputs)
    e, u, sign = golden.front_end(x)
    np.testing.assert_array_equal(got["exponent"], (e + EXPONENT_BIAS).numpy())
    np.testing.assert_array_equal(got["ucodes"], u.numpy())
    np.testing.assert_array_equal(got["signs"], sign.numpy())
    if inexact:
        scaled = golden.exact_ldexp(x.abs().to(torch.float64), (2 - e)[:, None])
        np.testing.assert_array_equal(got["inexact"], (scaled != torch.floor(scaled)).numpy())
    assert set(np.diff(run.in_cycles).tolist()) <= {1, 2}


def test_e2m1_encoder_matches_golden_mxfp4():
    """Front-end with sticky bits, then the encoder: the codes of golden.quantize(x, "mxfp4")."""
    block = 32
    fe_config = FloatFrontEndConfig(block=block, input=InputFloat.FP32, inexact=True)
    x = _blocks(np.random.default_rng(2), 60, InputFloat.FP32).reshape(-1, block)
    fe_run = run_stream(FloatFrontEnd(fe_config), PayloadCodec(float_front_end_in_layout(fe_config)).pack({"": _words(x, InputFloat.FP32)}))
    run = run_stream(E2M1Encoder(E2M1EncoderConfig(block=block)), fe_run.outputs, valid=itertools.cycle([1, 0, 1]))
    got = PayloadCodec(encoded_block_layout(block, E2M1.id_bits)).unpack(run.outputs)
    q = golden.quantize(x, "mxfp4")
    np.testing.assert_array_equal(got["codes"], q.codes.numpy().reshape(len(x), block))
    np.testing.assert_array_equal(got["exponent"], q.exponent.numpy().reshape(-1))
    assert E2M1Encoder.timing(E2M1EncoderConfig(block=block)).latency == 1


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"rows": 0}, "rows must be a positive integer, got 0"),
        ({"block": 24}, "block size must be one of [16, 32, 64], got 24"),
        ({"format": TileFormat.MXFP4, "block": 16}, "an MXFP4 tile uses blocks of 32 (OCP MX), got 16"),
        ({"format": TileFormat.MXFP4, "dialects_per_cycle": 8}, "dialects_per_cycle applies to the FB32 DSU only"),
        ({"dialects_per_cycle": 3}, "dialects_per_cycle must divide the 32 dialects of FB32, got 3"),
        ({"format": "fb32"}, "format must be an hw.tile.TileFormat, got 'fb32'"),
        ({"rows": 4, "quantizers": 3}, "quantizers must divide rows (4), got 3"),
        ({"interleave": 0}, "interleave must be a positive integer, got 0"),
    ],
)
def test_tile_config_rejects_bad_parameters_in_one_sentence(kwargs, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(").replace(")", r"\)")):
        TileConfig(**kwargs)


@pytest.mark.parametrize("fmt", list(TileFormat), ids=[f.value for f in TileFormat])
def test_tile_config_round_trips_and_documents_its_latency(fmt):
    config = TileConfig(format=fmt, rows=2, cols=3, input=InputFloat.BF16, block=16 if fmt is TileFormat.NVFP4 else 32)
    assert TileConfig.from_json(config.to_json()) == config
    units = Tile.unit_timings(config)
    assert Tile.timing(config).latency == sum(units[u].latency for u in ("buffer_read", "decoder", "edge_fifo", "mac_array"))
    assert Tile.timing(config).initiation_interval == 1
    assert Tile.quantizer_timing(config).latency == units["front_end"].latency + units["selector"].latency + 2
    # The full-parallel, pipelined selectors take one block per cycle.
    assert Tile.quantizer_timing(config).initiation_interval == 1
