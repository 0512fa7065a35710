"""``golden.fake_quantize`` (the fake-quant forward's activation path) is ``quantize(...).dequantize()``
bit for bit in every registered format, and the chunked quantizer does not depend on its chunking."""

import importlib

import pytest
import torch

from block_distributions import corner_blocks, random_blocks
from golden.blocks import InputError
from golden.formats import FORMATS, FormatError, Selection
from golden.quantize import fake_quantize, quantize

quantize_module = importlib.import_module("golden.quantize")  # the module (golden.quantize is also the function)

FORMAT_NAMES = sorted(FORMATS)
DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def _bits(x: torch.Tensor) -> torch.Tensor:
    return x.view(torch.int32)


def _rows(dtype: torch.dtype, length: int = 200, seed: int = 0) -> torch.Tensor:
    """Rows of magnitudes from 1e-6 to 1e3 along the axis, zero and negative-zero runs, corners."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(37, length, generator=g) * torch.logspace(-6, 3, length)
    x[0, :40] = 0.0
    x[1, :45] = -0.0
    corners = torch.cat(list(corner_blocks(length).values()))
    if dtype is not torch.float32:
        corners = corners[:4]  # the float32 extremes are out of range for float16 / bfloat16
    return torch.cat([x, corners]).to(dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d).removeprefix("torch."))
@pytest.mark.parametrize("name", FORMAT_NAMES)
def test_fake_quantize_is_quantize_then_dequantize(name, dtype):
    x = _rows(dtype)
    assert torch.equal(_bits(fake_quantize(x, name, pad=True)), _bits(quantize(x, name, pad=True).dequantize()))


@pytest.mark.parametrize("name", [n for n in FORMAT_NAMES if FORMATS[n].is_dialect])
def test_fake_quantize_follows_every_selection_rule_and_mask(name):
    spec = FORMATS[name]
    book = spec.formatbook
    x = torch.cat([random_blocks("laplace", 64, 96, seed=1), random_blocks("grid", 64, 96, seed=2)])
    g = torch.Generator().manual_seed(3)
    mask = torch.rand(x.shape[0], 1, book.num_dialects, generator=g) < 0.3
    mask[..., 0] = True
    for select in Selection:
        try:
            expected = quantize(x, name, select=select).dequantize()
        except FormatError:
            with pytest.raises(FormatError):
                fake_quantize(x, name, select=select)
            continue
        assert torch.equal(_bits(fake_quantize(x, name, select=select)), _bits(expected)), select
        if select is not Selection.TWO_STAGE:
            expected = quantize(x, name, select=select, mask=mask).dequantize()
            assert torch.equal(_bits(fake_quantize(x, name, select=select, mask=mask)), _bits(expected)), select


def test_fake_quantize_keeps_leading_axes_and_spans_many_chunks(monkeypatch):
    x = random_blocks("student-t", 3 * 50 * 7, 64, seed=4).reshape(3, 50, 7 * 64).to(torch.bfloat16)
    expected = quantize(x, "fb32").dequantize()
    monkeypatch.setattr(quantize_module, "CHUNK_BLOCKS", 20)  # one row of 7 blocks ... several rows
    got = fake_quantize(x, "fb32")
    assert got.shape == x.shape and torch.equal(_bits(got), _bits(expected))


@pytest.mark.parametrize("select", ["lut", "mse", "two-stage"])
def test_quantize_does_not_depend_on_its_chunking(monkeypatch, select):
    name = "dialectfp4" if select == "two-stage" else "fb32"
    x = torch.cat([random_blocks("normal", 300, 96, seed=5), random_blocks("sparse", 300, 96, seed=6)])
    whole = quantize(x, name, select=select)
    monkeypatch.setattr(quantize_module, "CHUNK_BLOCKS", 5)  # 1 row (3 blocks) per chunk
    chunked = quantize(x, name, select=select)
    for field in ("codes", "exponent", "dialect"):
        assert torch.equal(getattr(whole, field), getattr(chunked, field)), field


def test_fake_quantize_refuses_what_quantize_refuses():
    x = torch.randn(4, 64)
    x[2, 40] = float("nan")
    with pytest.raises(InputError, match=r"block \(2, 1\) contains a NaN"):
        fake_quantize(x, "fb32")
    with pytest.raises(InputError, match="not divisible by the block size"):
        fake_quantize(torch.randn(4, 50), "fb32")
    with pytest.raises(FormatError, match="leaves a block with no dialect"):
        fake_quantize(torch.randn(4, 64), "fb32", mask=torch.zeros(32, dtype=torch.bool))
