"""The training path checked against its definition: t = 0 noise, t = 1 data, straight line."""

from __future__ import annotations

import math

import pytest
import torch

from vidora.flow import (
    flow_loss,
    interpolate,
    resolution_shift,
    sample_timesteps,
    shift_time,
    velocity_target,
)


@pytest.fixture
def pair() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    data = torch.rand(3, 4, 5, 6, 6, generator=g, dtype=torch.float64) * 2 - 1  # (B, C, T, H, W)
    noise = torch.randn(3, 4, 5, 6, 6, generator=g, dtype=torch.float64)
    return data, noise


def test_interpolate_endpoints_are_noise_and_data(pair):
    data, noise = pair
    assert torch.equal(interpolate(data, noise, 0.0), noise)
    assert torch.equal(interpolate(data, noise, 1.0), data)


def test_interpolate_takes_one_time_per_sample(pair):
    data, noise = pair
    t = torch.tensor([0.0, 0.25, 1.0], dtype=torch.float64)
    x = interpolate(data, noise, t)
    assert torch.equal(x[0], noise[0])
    torch.testing.assert_close(x[1], 0.75 * noise[1] + 0.25 * data[1])
    assert torch.equal(x[2], data[2])


def test_velocity_target_is_the_time_derivative_of_the_path(pair):
    data, noise = pair
    t, h = 0.37, 1e-6
    ahead, behind = interpolate(data, noise, t + h), interpolate(data, noise, t - h)
    torch.testing.assert_close((ahead - behind) / (2 * h), velocity_target(data, noise))


def test_interpolate_rejects_a_time_vector_of_the_wrong_length(pair):
    data, noise = pair
    with pytest.raises(ValueError, match=r"shape \(B,\)"):
        interpolate(data, noise, torch.tensor([0.1, 0.2]))
    with pytest.raises(ValueError, match="differ"):
        interpolate(data, noise[:, :2], 0.5)


def test_shift_keeps_endpoints_and_order_and_leans_toward_noise():
    t = torch.linspace(0, 1, 101, dtype=torch.float64)
    for shift in (0.5, 1.0, 3.0, 7.0):
        warped = shift_time(t, shift)
        assert warped[0] == 0 and warped[-1] == 1
        assert torch.all(warped[1:] > warped[:-1])
    assert torch.all(shift_time(t, 3.0)[1:-1] < t[1:-1])
    assert torch.equal(shift_time(t, 1.0), t)


def test_shift_divides_the_odds_by_the_shift():
    # t' / (1 - t') = (t / (1 - t)) / shift: the warp is a shift in logit space, so warps compose
    # by multiplying and a logit-normal stays logit-normal with its mean moved by -log(shift).
    t = torch.linspace(0.01, 0.99, 50, dtype=torch.float64)
    torch.testing.assert_close(torch.logit(shift_time(t, 4.0)), torch.logit(t) - math.log(4.0))
    torch.testing.assert_close(shift_time(shift_time(t, 2.0), 3.0), shift_time(t, 6.0))
    torch.testing.assert_close(shift_time(shift_time(t, 5.0), 1 / 5.0), t)


def test_shift_matches_the_sd3_formula_on_sigma():
    sigma = torch.linspace(0, 1, 11, dtype=torch.float64)  # sigma = 1 - t is the noise level
    shift = 3.0
    sd3 = shift * sigma / (1 + (shift - 1) * sigma)
    torch.testing.assert_close(1 - shift_time(1 - sigma, shift), sd3)


def test_shift_must_be_positive():
    with pytest.raises(ValueError, match="shift"):
        shift_time(torch.tensor([0.5]), 0.0)


def test_resolution_shift_grows_with_the_square_root_of_tokens():
    assert resolution_shift(1024, 256) == pytest.approx(2.0)
    assert resolution_shift(256, 256, base_shift=3.0) == pytest.approx(3.0)
    with pytest.raises(ValueError, match="positive"):
        resolution_shift(0, 256)


def test_logit_normal_times_have_the_asked_for_logit_mean_and_std():
    g = torch.Generator().manual_seed(1)
    t = sample_timesteps(20_000, g, mean=0.5, std=0.8)
    assert t.shape == (20_000,) and t.dtype == torch.float32
    assert torch.all((t > 0) & (t < 1))
    u = torch.logit(t.double())
    assert u.mean().item() == pytest.approx(0.5, abs=0.03)
    assert u.std().item() == pytest.approx(0.8, abs=0.03)


def test_timestep_sampling_is_seeded_and_shift_moves_every_draw_toward_noise():
    a = sample_timesteps(64, torch.Generator().manual_seed(7))
    b = sample_timesteps(64, torch.Generator().manual_seed(7))
    shifted = sample_timesteps(64, torch.Generator().manual_seed(7), shift=3.0)
    assert torch.equal(a, b)
    assert torch.all(shifted < a)


def test_uniform_times_cover_the_interval():
    t = sample_timesteps(10_000, torch.Generator().manual_seed(2), distribution="uniform")
    assert t.min() < 0.01 and t.max() > 0.99
    assert t.mean().item() == pytest.approx(0.5, abs=0.02)


def test_bad_timestep_arguments_say_what_to_fix():
    with pytest.raises(ValueError, match="logit_normal, uniform"):
        sample_timesteps(4, distribution="beta")
    with pytest.raises(ValueError, match="batch"):
        sample_timesteps(0)
    with pytest.raises(ValueError, match="std"):
        sample_timesteps(4, std=0.0)


def test_loss_is_zero_for_the_exact_velocity_and_the_mse_otherwise(pair):
    data, noise = pair
    assert flow_loss(velocity_target(data, noise), data, noise).item() == 0.0
    pred = torch.zeros_like(data)
    expected = (data - noise).square().mean()
    torch.testing.assert_close(flow_loss(pred, data, noise), expected.float())


def test_masked_loss_ignores_conditioning_frames(pair):
    data, noise = pair
    pred = velocity_target(data, noise).clone()
    pred[:, :, :2] += 5.0  # wrong only on the first two frames...
    mask = torch.ones(3, 1, 5, 1, 1)
    mask[:, :, :2] = 0  # ...which are the clean conditioning frames: no loss there
    assert flow_loss(pred, data, noise, mask).item() == 0.0


def test_masked_loss_is_the_mean_over_the_kept_positions(pair):
    data, noise = pair
    pred = torch.randn_like(data)
    keep = torch.tensor([0, 1, 1, 0, 1], dtype=torch.bool)  # frames that carry loss
    mask = keep.reshape(1, 1, 5, 1, 1).float()
    expected = (pred - (data - noise))[:, :, keep].square().mean()
    torch.testing.assert_close(flow_loss(pred, data, noise, mask), expected.float())


def test_weighted_loss_is_the_weighted_mean(pair):
    data, noise = pair
    pred = torch.randn_like(data)
    weight = torch.tensor([0.0, 1.0, 4.0, 1.0, 2.0]).reshape(1, 1, 5, 1, 1)
    per_frame = (pred - (data - noise)).square().mean(dim=(0, 1, 3, 4))  # (5,)
    expected = (per_frame * weight.flatten()).sum() / weight.sum()
    torch.testing.assert_close(flow_loss(pred, data, noise, weight), expected.float())


def test_masked_loss_sends_no_gradient_to_conditioning_frames(pair):
    data, noise = pair
    pred = torch.randn_like(data, requires_grad=True)
    mask = torch.ones(1, 1, 5, 1, 1)
    mask[..., 0, :, :] = 0
    flow_loss(pred, data, noise, mask).backward()
    assert torch.all(pred.grad[:, :, 0] == 0)
    assert torch.all(pred.grad[:, :, 1:] != 0)


def test_all_masked_loss_is_zero_not_nan(pair):
    data, noise = pair
    loss = flow_loss(torch.randn_like(data), data, noise, torch.zeros(1, 1, 5, 1, 1))
    assert loss.item() == 0.0


def test_bf16_prediction_gives_a_float32_loss(pair):
    data, noise = pair
    loss = flow_loss(torch.zeros_like(data, dtype=torch.bfloat16), data.float(), noise.float())
    assert loss.dtype == torch.float32 and torch.isfinite(loss)


def test_loss_rejects_mismatched_shapes_and_masks(pair):
    data, noise = pair
    with pytest.raises(ValueError, match="pred_velocity"):
        flow_loss(data[:, :2], data, noise)
    with pytest.raises(ValueError, match="loss_mask"):
        flow_loss(data, data, noise, torch.ones(3, 1, 4, 1, 1))
