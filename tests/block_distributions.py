"""Seeded block generators for the golden-model tests: several distributions, named corner cases."""

from __future__ import annotations

import torch


def random_blocks(kind: str, n: int, block: int = 32, seed: int = 0) -> torch.Tensor:
    """float32 (n, block) blocks drawn from a named distribution."""
    g = torch.Generator().manual_seed(seed)
    if kind == "normal":
        x = torch.randn(n, block, generator=g)
    elif kind == "uniform":
        x = torch.rand(n, block, generator=g) * 2 - 1
    elif kind == "laplace":
        u = torch.rand(n, block, generator=g) - 0.5
        x = -torch.sign(u) * torch.log1p(-2 * u.abs())
    elif kind == "student-t":  # heavy-tailed, 2 degrees of freedom: outliers per block
        z = torch.randn(n, block, generator=g)
        chi2 = torch.randn(n, block, 2, generator=g).pow(2).sum(-1)
        x = z / (chi2 / 2).sqrt()
    elif kind == "log-uniform":  # magnitudes spread over 2^-20 .. 2^20, random signs
        mag = torch.exp2(torch.rand(n, block, generator=g) * 40 - 20)
        x = mag * torch.where(torch.rand(n, block, generator=g) < 0.5, -1.0, 1.0)
    elif kind == "sparse":  # 70 % exact zeros, some -0.0
        x = torch.randn(n, block, generator=g)
        x = torch.where(torch.rand(n, block, generator=g) < 0.7, torch.zeros(()), x)
        x = torch.where(torch.rand(n, block, generator=g) < 0.1, torch.tensor(-0.0), x)
    elif kind == "all-equal":
        x = (torch.randn(n, 1, generator=g) * 3).expand(n, block).clone()
    elif kind == "grid":  # values on the 5-bit code grid: exact bin edges and dialect midpoints
        e = torch.randint(-8, 8, (n, 1), generator=g)
        u = torch.randint(0, 32, (n, block), generator=g).to(torch.float32)
        u[:, 0] = 16 + torch.randint(0, 16, (n,), generator=g)  # pin amax into [4, 8) * 2^e
        x = u / 4 * torch.exp2(e.to(torch.float32))
        x = x * torch.where(torch.rand(n, block, generator=g) < 0.5, -1.0, 1.0)
    else:
        raise ValueError(f"unknown distribution {kind!r}")
    return x.to(torch.float32)


DISTRIBUTIONS = ("normal", "uniform", "laplace", "student-t", "log-uniform", "sparse", "all-equal", "grid")


def corner_blocks(block: int = 32) -> dict[str, torch.Tensor]:
    """Named corner-case blocks (float32, (1, block) each)."""
    ramp = torch.arange(block, dtype=torch.float32)
    cases = {
        "all-zero": torch.zeros(block),
        "negative-zero": torch.full((block,), -0.0),
        "single-max": torch.nn.functional.one_hot(torch.tensor(3), block).float() * 7.5,
        "saturating": torch.full((block,), 7.99),
        "ramp": ramp / block * 8,
        "huge": torch.full((block,), 3.0e38) * torch.where(ramp % 2 == 0, 1.0, -1.0),
        "tiny-normal": torch.full((block,), 2.0**-126) * (1 + ramp / block),
        "subnormal": torch.full((block,), 2.0**-140) * (1 + ramp),
        "mixed-extremes": torch.where(ramp == 0, torch.tensor(1e30), torch.tensor(1e-30)),
    }
    return {name: x.reshape(1, block) for name, x in cases.items()}
