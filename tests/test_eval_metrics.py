"""Offline metrics of evaluation.metrics on inputs with known answers."""

import math

import pytest
import torch

from evaluation import metrics


def video(seed: int = 0, shape=(2, 3, 4, 16, 16)) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_psnr_of_identical_videos_is_capped():
    v = video()
    assert torch.all(metrics.psnr_per_frame(v, v) == metrics.MAX_DB)


def test_psnr_of_a_constant_offset():
    # An offset of 0.2 in [-1, 1] units is 0.1 in [0, 1] units: MSE 0.01, PSNR 20 dB.
    ref = torch.zeros(1, 3, 2, 16, 16)
    psnr = metrics.psnr_per_frame(ref, ref + 0.2)
    assert psnr.shape == (1, 2)
    assert torch.allclose(psnr, torch.full_like(psnr, 20.0))


def test_psnr_clamps_to_the_pixel_range():
    ref = torch.ones(1, 3, 2, 16, 16)
    assert torch.all(metrics.psnr_per_frame(ref, ref + 5.0) == metrics.MAX_DB)


def test_ssim_of_identical_videos_is_one():
    v = video(1)
    assert torch.allclose(metrics.ssim_per_frame(v, v), torch.ones(2, 4, dtype=torch.float64))


def test_ssim_of_a_constant_offset_matches_the_closed_form():
    # Equal structure, shifted mean: SSIM = (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1) everywhere.
    ref = torch.full((1, 1, 1, 16, 16), -0.5)  # 0.25 in [0, 1]
    test = ref + 0.4  # 0.45
    c1 = metrics.SSIM_K1**2
    expected = (2 * 0.25 * 0.45 + c1) / (0.25**2 + 0.45**2 + c1)
    assert metrics.ssim_per_frame(ref, test).item() == pytest.approx(expected, rel=1e-6)


def test_ssim_drops_with_noise_and_is_symmetric():
    ref = video(2)
    noisy = ref + 0.3 * video(3)
    s = metrics.ssim_per_frame(ref, noisy)
    assert torch.all(s < 0.99)
    assert torch.allclose(s, metrics.ssim_per_frame(noisy, ref))


def test_temporal_error_ignores_a_static_offset_and_sees_motion():
    ref = video(4)
    assert metrics.temporal_consistency_error(ref * 0.5, ref * 0.5 + 0.2) == pytest.approx(0.0, abs=1e-7)
    frozen = ref[:, :, :1].expand_as(ref).clone()
    expected = float(((ref[:, :, 1:] - ref[:, :, :-1]) / 2).clamp(-1, 1).abs().mean())
    assert metrics.temporal_consistency_error(ref.clamp(-1, 1), frozen.clamp(-1, 1)) == pytest.approx(expected)


def test_sqnr_of_known_noise():
    ref = torch.ones(1000)
    assert metrics.sqnr_db(ref, ref * 1.1) == pytest.approx(20.0)
    assert metrics.sqnr_db(ref, ref) == metrics.MAX_DB


@pytest.mark.parametrize(
    "call",
    [
        lambda a, b: metrics.psnr_per_frame(a, b),
        lambda a, b: metrics.ssim_per_frame(a, b),
        lambda a, b: metrics.temporal_consistency_error(a, b),
    ],
)
def test_shape_mismatch_is_one_sentence(call):
    with pytest.raises(ValueError, match="differ"):
        call(video(), video(shape=(2, 3, 4, 16, 8)))


def test_measure_reports_time_and_memory():
    with metrics.Measure("cpu") as m:
        block = torch.ones(32 << 20, dtype=torch.uint8)  # 32 MiB held while sampled
        block += 1
        import time

        time.sleep(0.05)
    assert m.wall_time_s >= 0.05
    assert m.peak_memory_mib >= 0 and math.isfinite(m.peak_memory_mib)
