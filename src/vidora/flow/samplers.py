"""Samplers for dx/dt = v(x, t), integrated from t = 0 (noise) to t = 1 (data).

The contract follows diffusers' schedulers, so a pipeline loop reads the same for all of them:

    sampler.set_timesteps(num_steps, shift)
    for i, t in enumerate(sampler.timesteps):            # one entry per model call
        v = model(x, t)                                   # velocity at (x, t)
        v = classifier_free_guidance(v_cond, v_uncond, scale)
        x = sampler.step(v, i, x)
        # frame conditioning: the pipeline puts the clean frames back into x here

With `eta` > 0 Euler (and always `RenoiseSampler`) renews part of the noise at each step, and the
loop hands it fresh noise: `sampler.step(v, i, x, noise=z)` (`sampler.eta` says whether it wants
any).

Samplers stay pure steppers; they know nothing of masks. Re-imposing clean frames after
every step is correct for Heun too: its corrector restarts from the stored (already clean)
state, and the pipeline overwrites the conditioning frames of whatever comes out.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from vidora.flow.path import shift_time


class Sampler:
    """Shared parts: the time grid 0 = t_0 < ... < t_N = 1 and the call-order check."""

    order = 1
    """Order of accuracy: halving the step divides the endpoint error by 2 ** order."""

    eta = 0.0
    """Share of fresh noise a step takes in (0 for an ODE step); see `EulerSampler`."""

    def __init__(self) -> None:
        self.grid = torch.empty(0, dtype=torch.float64)
        """The N + 1 step boundaries, from 0 to 1 (float64, so dt is exact)."""
        self.timesteps = torch.empty(0)
        """Where the model is evaluated, one entry per `step` call (float32)."""
        self._next = 0

    def set_timesteps(
        self, num_steps: int, shift: float = 1.0, device: torch.device | str | None = None
    ) -> None:
        """Cut [0, 1] into `num_steps` steps, warped toward noise by `shift` (see `shift_time`)."""
        if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
            raise ValueError(f"num_steps must be an integer >= 1; got {num_steps!r}")
        self.grid = shift_time(torch.linspace(0.0, 1.0, num_steps + 1, dtype=torch.float64), shift)
        self._bounds = self.grid.tolist()
        self.timesteps = self._evaluation_times().to(device=device, dtype=torch.float32)
        self._next = 0

    @property
    def num_steps(self) -> int:
        return max(len(self.grid) - 1, 0)

    def step(
        self, velocity: Tensor, index: int, sample: Tensor, noise: Tensor | None = None
    ) -> Tensor:
        """Advance `sample` using `velocity` = v(sample, timesteps[index]); returns the next x.

        `noise` (like `sample`, standard normal) is required when `eta` > 0 and unused otherwise.
        """
        if len(self.timesteps) == 0:
            raise RuntimeError("call set_timesteps(num_steps) before step()")
        if index != self._next:
            raise RuntimeError(
                f"step() must be called with index {self._next} next (got {index}); "
                "call set_timesteps again to start a new run"
            )
        if velocity.shape != sample.shape:
            raise ValueError(f"velocity {tuple(velocity.shape)} != sample {tuple(sample.shape)}")
        if self.eta > 0 and (noise is None or noise.shape != sample.shape):
            raise ValueError(
                f"eta = {self.eta} needs noise shaped like the sample, {tuple(sample.shape)}"
            )
        self._next += 1
        # Low-precision samples are stepped in float32, as diffusers does, then cast back.
        work = torch.promote_types(sample.dtype, torch.float32)
        noise = None if noise is None else noise.to(work)
        return self._step(velocity.to(work), index, sample.to(work), noise).to(sample.dtype)

    def start_from(self, time: float) -> int:
        """Begin the run part-way, at the first step starting at or after `time` (sampling from
        a partly noised sample, as SDEdit does): the sample is to be put on the path at
        `timesteps[index]`, and the loop goes on from the returned index."""
        if self.order != 1:
            raise NotImplementedError("start_from is for samplers with one model call a step")
        if len(self.timesteps) == 0:
            raise RuntimeError("call set_timesteps(num_steps) before start_from()")
        index = int((self.timesteps < time).sum())
        if index == len(self.timesteps):
            raise ValueError(f"no step starts at or after t = {time}")
        self._next = index
        return index

    def sample(self, velocity_fn: Callable[[Tensor, Tensor], Tensor], noise: Tensor) -> Tensor:
        """Run the whole loop with `velocity_fn(x, t)` (t a 0-d tensor); for tests and scripts."""
        if len(self.timesteps) == 0:
            raise RuntimeError("call set_timesteps(num_steps) before sample()")
        self._next = 0
        x = noise
        for i, t in enumerate(self.timesteps):
            x = self.step(velocity_fn(x, t), i, x)
        return x

    def _evaluation_times(self) -> Tensor:
        raise NotImplementedError

    def _step(self, velocity: Tensor, index: int, sample: Tensor, noise: Tensor | None) -> Tensor:
        raise NotImplementedError


class EulerSampler(Sampler):
    """x_{k+1} = x_k + (t_{k+1} - t_k) * v(x_k, t_k): one model call per step, first order.

    The same step in other words: from (x, t) and v it predicts the data d = x + (1 - t) v and
    the noise e = x - t v, and lands on t' = t_{k+1} at t' d + (1 - t') e. With `eta` > 0 part
    of e is renewed: it lands on t' d + sqrt((1 - t')^2 - c^2) e + c z, z fresh noise and c eta
    times the spread of x_t' given x_t and the data (DDIM's eta, Song et al., 2021, on the
    straight path). eta = 1 is ancestral sampling, as DDPM's; every eta keeps each x_t's law for
    an exact v, so it only trades the ODE's determinism for steps that can correct earlier
    mistakes. The last step, onto the data, has no noise left and is plain Euler.
    """

    order = 1

    def __init__(self, eta: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= eta <= 1.0:
            raise ValueError(f"eta must lie in [0, 1], not {eta}")
        self.eta = float(eta)

    def _evaluation_times(self) -> Tensor:
        return self.grid[:-1]

    def _step(self, velocity: Tensor, index: int, sample: Tensor, noise: Tensor | None) -> Tensor:
        t, t_next = self._bounds[index], self._bounds[index + 1]
        if self.eta == 0 or t_next >= 1.0:
            return sample + (t_next - t) * velocity
        data = sample + (1 - t) * velocity
        predicted_noise = sample - t * velocity
        kept, fresh = self._noise_shares(t, t_next)
        return t_next * data + kept * predicted_noise + fresh * noise  # type: ignore[operator]

    def _noise_shares(self, t: float, t_next: float) -> tuple[float, float]:
        """How much of the predicted noise a step to `t_next` keeps, and how much fresh it adds."""
        # x_t = (t / t') x_t' + noise of variance (1 - t)^2 - (t / t')^2 (1 - t')^2, so x_t' given
        # x_t and the data has (1 - t')^2 / (1 - t)^2 times that variance.
        spread = (1 - t_next) / (1 - t) * ((1 - t) ** 2 - (t / t_next * (1 - t_next)) ** 2) ** 0.5
        fresh = self.eta * spread
        kept = max((1 - t_next) ** 2 - fresh**2, 0.0) ** 0.5  # eta = 1 at t = 0: exactly 0
        return kept, fresh


class RenoiseSampler(EulerSampler):
    """Predict the data, then land on the next time with a fixed share of the noise renewed.

    From (x, t) and v it predicts the data d = x + (1 - t) v and the noise e = x - t v, as
    `EulerSampler` does, and lands on t' d + (1 - t') (sqrt(1 - eta^2) e + eta z), z fresh noise
    and the share eta the same at every step. eta = 0 is Euler; eta = 1 throws e away and is the
    multistep sampler of consistency models (Song et al., 2023) and diffusers'
    `FlowMatchEulerDiscreteScheduler(stochastic_sampling=True)`. Unlike Euler's eta it does not
    keep x_t's law: e is the model's mean guess of the noise, narrower than the noise itself, so
    the draws come out colder, by nearly the same ratio at any step count (data of standard
    deviation 0.3, shift 2: at eta = 0.8 0.230 against Euler's 0.256 at 20 steps, 0.265 against
    0.300 at 1,600). The last step, onto the data, is plain Euler.
    """

    def _noise_shares(self, t: float, t_next: float) -> tuple[float, float]:
        return (1 - t_next) * (1 - self.eta**2) ** 0.5, (1 - t_next) * self.eta


class HeunSampler(Sampler):
    """Heun's method (explicit trapezoid), second order, two model calls per step.

    Like diffusers' HeunDiscreteScheduler, each step is split into two `step` calls and the
    inner times are repeated in `timesteps`: [t_0, t_1, t_1, t_2, ..., t_{N-1}, t_{N-1}].
    The first call returns the Euler predictor at t_{k+1} and remembers (x_k, v_k); the second,
    given v at the predictor, returns x_k + dt/2 * (v_k + v_pred).

    With `euler_last_step` (the default, as in diffusers) the last step is plain Euler, so the
    model is never asked for v at t = 1: logit-normal training almost never shows it t near 1,
    and the exact field of a point mass is 0/0 there. That is 2N - 1 calls for N steps and
    still second order. Turn it off (2N calls; about 5x less error on the Gaussian test field
    in tests/flow) when the model is trusted at t = 1.
    """

    order = 2

    def __init__(self, euler_last_step: bool = True) -> None:
        super().__init__()
        self.euler_last_step = euler_last_step

    def _evaluation_times(self) -> Tensor:
        # (k, 0) evaluates at t_k, the start of step k; (k, 1) at t_{k+1}, the predictor.
        self._stages = [(k, s) for k in range(self.num_steps) for s in (0, 1)]
        if self.euler_last_step:
            self._stages.pop()
        return torch.stack([self.grid[k + s] for k, s in self._stages])

    def _step(self, velocity: Tensor, index: int, sample: Tensor, noise: Tensor | None) -> Tensor:
        k, stage = self._stages[index]
        dt = self._bounds[k + 1] - self._bounds[k]
        if stage == 0:
            self._start = (sample, velocity)
            return sample + dt * velocity
        start, start_velocity = self._start
        return start + 0.5 * dt * (start_velocity + velocity)


SAMPLERS: dict[str, type[Sampler]] = {
    "euler": EulerSampler,
    "heun": HeunSampler,
    "renoise": RenoiseSampler,
}
"""Sampler classes by name; the keys double as the CLI's `--sampler` choices."""
