"""Samplers tested against math, in the manner of facebookresearch/flow_matching's
tests/solver/test_ode_solver.py: for velocity fields whose flow is known in closed form, every
sampler must land on the known endpoint, and its error must shrink at its order."""

from __future__ import annotations

import math

import pytest
import torch

from vidora.flow import (
    SAMPLERS,
    EulerSampler,
    HeunSampler,
    RenoiseSampler,
    classifier_free_guidance,
)


def full_heun() -> HeunSampler:
    return HeunSampler(euler_last_step=False)


ALL = [EulerSampler, HeunSampler, full_heun]


def run(make_sampler, velocity_fn, x0, num_steps, shift=1.0):
    sampler = make_sampler()
    sampler.set_timesteps(num_steps, shift)
    return sampler.sample(velocity_fn, x0)


@pytest.fixture
def x0() -> torch.Tensor:
    return torch.randn(2, 3, 4, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


# Gaussian data N(mu, s^2) from Gaussian noise N(0, 1): the rectified-flow marginal velocity
# E[data - noise | x_t = x] is affine in x and the flow maps noise z to mu + s * z exactly.
MU, S = 0.7, 0.3


def gaussian_velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    t = t.double()
    var = (1 - t) ** 2 + (t * S) ** 2
    return MU + (t * S**2 - (1 - t)) / var * (x - t * MU)


# --- the grid -------------------------------------------------------------------------------


def test_euler_timesteps_start_at_noise_and_grid_ends_at_data():
    s = EulerSampler()
    s.set_timesteps(8)
    assert s.timesteps.shape == (8,) and s.timesteps.dtype == torch.float32
    assert s.timesteps[0] == 0 and torch.all(s.timesteps[1:] > s.timesteps[:-1])
    assert s.grid[0] == 0 and s.grid[-1] == 1 and len(s.grid) == 9
    torch.testing.assert_close(s.timesteps.double(), s.grid[:-1], atol=1e-7, rtol=0)


def test_heun_repeats_inner_times_like_diffusers():
    s = HeunSampler()
    s.set_timesteps(4)
    g = s.grid.float()
    expected = torch.stack([g[0], g[1], g[1], g[2], g[2], g[3], g[3]])
    assert torch.equal(s.timesteps, expected)
    assert s.num_steps == 4


@pytest.mark.parametrize("cls", ALL)
def test_shift_warps_the_grid_toward_noise_and_keeps_its_ends(cls):
    plain, shifted = cls(), cls()
    plain.set_timesteps(10)
    shifted.set_timesteps(10, shift=3.0)
    assert shifted.grid[0] == 0 and shifted.grid[-1] == 1
    assert torch.all(shifted.grid[1:] > shifted.grid[:-1])
    assert torch.all(shifted.grid[1:-1] < plain.grid[1:-1])
    # more steps near noise: the first step is shorter, the last longer
    assert shifted.grid[1] - shifted.grid[0] < plain.grid[1] - plain.grid[0]
    assert shifted.grid[-1] - shifted.grid[-2] > plain.grid[-1] - plain.grid[-2]


# --- closed-form fields ---------------------------------------------------------------------


@pytest.mark.parametrize("cls", ALL)
@pytest.mark.parametrize("shift", [1.0, 3.0])
def test_constant_field_moves_by_exactly_the_velocity(cls, shift, x0):
    c = torch.linspace(-1, 1, 5, dtype=torch.float64)
    x1 = run(cls, lambda x, t: c.expand_as(x), x0, num_steps=7, shift=shift)
    torch.testing.assert_close(x1, x0 + c)


@pytest.mark.parametrize("cls", [EulerSampler, HeunSampler])  # full Heun would ask v at t = 1
@pytest.mark.parametrize("num_steps", [1, 2, 5])
def test_rectified_flow_to_a_point_lands_on_the_point(cls, num_steps, x0):
    # Data is a point mass at `target`; the exact field is (target - x) / (1 - t) and its paths
    # are the straight lines the model is trained on, so even one step lands exactly.
    target = torch.full_like(x0, 0.25)
    x1 = run(cls, lambda x, t: (target - x) / (1 - t.double()), x0, num_steps, shift=3.0)
    torch.testing.assert_close(x1, target)


@pytest.mark.parametrize("cls", ALL)
def test_gaussian_to_gaussian_flow_lands_on_the_transported_point(cls, x0):
    x1 = run(cls, gaussian_velocity, x0, num_steps=200)
    tolerance = 1e-2 if cls is EulerSampler else 2e-4  # errors ~ 2 / N and ~ 4 / N^2
    torch.testing.assert_close(x1, MU + S * x0, atol=tolerance, rtol=0)


def endpoint_errors(cls, velocity_fn, x0, exact, steps=(8, 16, 32)):
    return [(run(cls, velocity_fn, x0, n) - exact).abs().max().item() for n in steps]


@pytest.mark.parametrize("cls", ALL)
def test_linear_field_converges_at_the_sampler_order(cls, x0):
    # dx/dt = a x  =>  x(1) = x(0) e^a. Halving the step divides the error by 2 ** order.
    a = -1.5
    errors = endpoint_errors(cls, lambda x, t: a * x, x0, x0 * math.exp(a))
    for coarse, fine in zip(errors, errors[1:], strict=False):
        assert coarse / fine == pytest.approx(2 ** cls().order, rel=0.15)


@pytest.mark.parametrize("cls", ALL)
def test_gaussian_flow_converges_at_the_sampler_order(cls, x0):
    errors = endpoint_errors(cls, gaussian_velocity, x0, MU + S * x0, steps=(16, 32, 64))
    for coarse, fine in zip(errors, errors[1:], strict=False):
        assert coarse / fine == pytest.approx(2 ** cls().order, rel=0.15)


def test_full_heun_asks_for_t_one_and_is_more_accurate(x0):
    s = full_heun()
    s.set_timesteps(4)
    assert len(s.timesteps) == 8 and s.timesteps[-1] == 1
    exact = MU + S * x0
    last_euler, full = (
        (run(make, gaussian_velocity, x0, 16) - exact).abs().max()
        for make in (HeunSampler, full_heun)
    )
    assert full < last_euler


def test_heun_calls_the_model_twice_per_step_except_the_last(x0):
    calls = []
    s = HeunSampler()
    s.set_timesteps(6)
    s.sample(lambda x, t: calls.append(t) or -x, x0)
    assert len(calls) == len(s.timesteps) == 2 * 6 - 1
    assert max(calls) < 1  # never asked for v at t = 1


# --- fresh noise (eta) ----------------------------------------------------------------------


def run_with_fresh_noise(eta, velocity_fn, x0, num_steps, seed=1, cls=EulerSampler, shift=1.0):
    """A stochastic sampler with `eta`, its fresh noise drawn from one seeded generator."""
    s = cls(eta=eta)
    s.set_timesteps(num_steps, shift)
    g = torch.Generator().manual_seed(seed)
    x = x0
    for i, t in enumerate(s.timesteps):
        z = torch.randn(x.shape, generator=g, dtype=x.dtype)
        x = s.step(velocity_fn(x, t), i, x, noise=z)
    return x


@pytest.mark.parametrize("eta", [0.5, 1.0])
def test_fresh_noise_still_lands_on_a_point(eta, x0):
    # The point's field predicts the data exactly at every step, so the renewed noise is gone
    # by t = 1, as it is from a point mass's marginals at every t.
    target = torch.full_like(x0, 0.25)
    x1 = run_with_fresh_noise(eta, lambda x, t: (target - x) / (1 - t.double()), x0, 5)
    torch.testing.assert_close(x1, target)


@pytest.mark.parametrize("eta", [0.5, 1.0])
def test_fresh_noise_keeps_the_gaussian_law_and_forgets_the_start(eta):
    # With the exact field, renewing noise keeps every x_t's law (DDIM's family), so the
    # endpoints are still N(MU, S^2) as the steps shrink; unlike the ODE's, they no longer
    # follow their own starting noise.
    z = torch.randn(20_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x1 = run_with_fresh_noise(eta, gaussian_velocity, z, num_steps=400)
    assert x1.mean().item() == pytest.approx(MU, abs=0.015)
    assert x1.std().item() == pytest.approx(S, abs=0.01)
    ode = run(EulerSampler, gaussian_velocity, z, num_steps=400)
    assert torch.corrcoef(torch.stack([ode, z]))[0, 1] > 0.99
    assert torch.corrcoef(torch.stack([x1, z]))[0, 1] < 0.5


def test_eta_zero_ignores_noise_and_eta_needs_it(x0):
    plain = run(EulerSampler, gaussian_velocity, x0, 6)
    torch.testing.assert_close(run_with_fresh_noise(0.0, gaussian_velocity, x0, 6), plain)
    s = EulerSampler(eta=0.5)
    s.set_timesteps(4)
    with pytest.raises(ValueError, match="needs noise"):
        s.step(x0, 0, x0)
    with pytest.raises(ValueError, match=r"eta must lie in \[0, 1\]"):
        EulerSampler(eta=1.5)


# --- a fixed share of the noise renewed (renoise) -------------------------------------------


@pytest.mark.parametrize("eta", [0.5, 1.0])
def test_renoise_lands_on_a_point(eta, x0):
    target = torch.full_like(x0, 0.25)
    velocity = lambda x, t: (target - x) / (1 - t.double())  # noqa: E731
    x1 = run_with_fresh_noise(eta, velocity, x0, 5, cls=RenoiseSampler)
    torch.testing.assert_close(x1, target)


def test_renoise_is_colder_than_the_law_by_a_ratio_the_step_count_keeps():
    # Renewing a fixed share of the *predicted* noise (narrower than noise) narrows the draws:
    # the mean stays, the spread falls below the ODE's, the more so the larger the share, and
    # by about the same ratio at 20 steps as at 400 (the docstring's figures).
    z = torch.randn(20_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for steps in (20, 400):
        ode = run(EulerSampler, gaussian_velocity, z, steps, shift=2.0).std().item()
        spread = {}
        for eta in (0.5, 0.8, 1.0):
            x1 = run_with_fresh_noise(
                eta, gaussian_velocity, z, steps, cls=RenoiseSampler, shift=2.0
            )
            assert x1.mean().item() == pytest.approx(MU, abs=0.015)
            spread[eta] = x1.std().item() / ode
        assert 0.93 < spread[0.5] < 0.99 and 0.85 < spread[0.8] < 0.92 and spread[1.0] < 0.75
    torch.testing.assert_close(
        run_with_fresh_noise(0.0, gaussian_velocity, z, 20, cls=RenoiseSampler),
        run(EulerSampler, gaussian_velocity, z, 20),
    )
    with pytest.raises(ValueError, match=r"eta must lie in \[0, 1\]"):
        RenoiseSampler(eta=1.2)


# --- the pipeline's loop --------------------------------------------------------------------


@pytest.mark.parametrize("cls", ALL)
def test_pipeline_loop_equals_sample(cls, x0):
    s = cls()
    s.set_timesteps(5, shift=2.0)
    x = x0
    for i, t in enumerate(s.timesteps):
        x = s.step(gaussian_velocity(x, t), i, x)
    s.set_timesteps(5, shift=2.0)
    torch.testing.assert_close(x, s.sample(gaussian_velocity, x0))


@pytest.mark.parametrize("cls", ALL)
def test_reimposing_clean_frames_after_each_step_leaves_the_other_frames_alone(cls, x0):
    # The field acts on each entry on its own, so keeping frame 0 clean (as the pipeline does
    # for image-to-video) must not change how the free frames travel, for Heun as for Euler.
    keep = torch.zeros(1, 1, 4, 1, dtype=torch.bool)
    keep[:, :, 0] = True
    clean = torch.full_like(x0, 0.5)
    s = cls()
    s.set_timesteps(6)
    x = torch.where(keep, clean, x0)
    for i, t in enumerate(s.timesteps):
        x = s.step(gaussian_velocity(x, t), i, x)
        x = torch.where(keep, clean, x)
    free = run(cls, gaussian_velocity, x0, 6)
    assert torch.equal(x[:, :, 0], clean[:, :, 0])
    torch.testing.assert_close(x[:, :, 1:], free[:, :, 1:])


def test_bf16_samples_step_in_float32_and_stay_bf16(x0):
    s = EulerSampler()
    s.set_timesteps(4)
    x = x0.to(torch.bfloat16)
    out = s.step(torch.ones_like(x), 0, x)
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()


# --- misuse gets a clear error --------------------------------------------------------------


@pytest.mark.parametrize("cls", ALL)
def test_misuse_is_reported(cls, x0):
    s = cls()
    with pytest.raises(RuntimeError, match="set_timesteps"):
        s.step(x0, 0, x0)
    with pytest.raises(ValueError, match="num_steps"):
        s.set_timesteps(0)
    with pytest.raises(ValueError, match="shift"):
        s.set_timesteps(4, shift=-1.0)
    s.set_timesteps(4)
    with pytest.raises(RuntimeError, match="index 0"):
        s.step(x0, 1, x0)
    with pytest.raises(ValueError, match="velocity"):
        s.step(x0[:1], 0, x0)


def test_sampler_names_are_the_cli_choices():
    assert dict(SAMPLERS) == {
        "euler": EulerSampler,
        "heun": HeunSampler,
        "renoise": RenoiseSampler,
    }


# --- guidance -------------------------------------------------------------------------------


def test_guidance_interpolates_and_extrapolates():
    cond, uncond = torch.tensor([1.0, 2.0]), torch.tensor([0.0, 4.0])
    assert torch.equal(classifier_free_guidance(cond, uncond, 1.0), cond)
    assert torch.equal(classifier_free_guidance(cond, uncond, 0.0), uncond)
    assert torch.equal(classifier_free_guidance(cond, uncond, 3.0), torch.tensor([3.0, -2.0]))
    with pytest.raises(ValueError, match="differ"):
        classifier_free_guidance(cond, uncond[:1], 2.0)


def test_start_from_runs_the_rest_of_the_loop_from_a_partly_noised_sample():
    sampler = EulerSampler()
    sampler.set_timesteps(4)
    index = sampler.start_from(0.4)  # steps start at 0, 0.25, 0.5, 0.75
    assert index == 2 and float(sampler.timesteps[index]) == 0.5
    x = torch.zeros(3)
    for i in range(index, len(sampler.timesteps)):  # a constant field from where it started
        x = sampler.step(torch.ones(3), i, x)
    assert torch.allclose(x, torch.full((3,), 0.5))
    with pytest.raises(RuntimeError, match="index 2"):
        sampler.start_from(0.4)
        sampler.step(torch.ones(3), 0, x)
    with pytest.raises(ValueError, match="no step"):
        sampler.start_from(1.0)  # the last step starts at 0.75
    with pytest.raises(NotImplementedError):
        HeunSampler().start_from(0.5)
