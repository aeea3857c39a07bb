"""Building blocks shared by the VAE and the DiT.

Tensor layout everywhere: video (B, C, T, H, W); tokens (B, N, D).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# ---------------------------------------------------------------------------------------
# Causal video convolutions (VAE)
# ---------------------------------------------------------------------------------------


class CausalConv3d(nn.Module):
    """A 3D convolution that sees only the present and past frames.

    Time is padded on the front alone, with copies of the first frame, so frame t of the output
    depends on input frames <= t and a 1-frame clip (an image) is a valid input. Space is
    zero-padded on both sides as usual. With stride 2 in time, 1 + 2m frames become 1 + m: the
    first frame stays alone, every later pair is merged. `kernel` is (time, space).
    """

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: tuple[int, int] = (3, 3),
        stride: tuple[int, int, int] = (1, 1, 1),
    ):
        super().__init__()
        kt, ks = kernel
        self.time_pad = kt - 1
        self.conv = nn.Conv3d(cin, cout, (kt, ks, ks), stride=stride, padding=(0, ks // 2, ks // 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.time_pad:
            x = F.pad(
                x, (0, 0, 0, 0, self.time_pad, 0), mode="replicate"
            )  # (B, C, T + k - 1, H, W)
        return self.conv(x)


class FactorizedConv3d(nn.Sequential):
    """A (2+1)D causal convolution: 3x3 in space, then 3 taps back in time.

    12 taps instead of 27 for nearly the same receptive field: the VAE's convolutions are what
    a CPU spends its time on.
    """

    def __init__(self, cin: int, cout: int):
        super().__init__(CausalConv3d(cin, cout, (1, 3)), CausalConv3d(cout, cout, (3, 1)))


class ChannelRMSNorm(nn.Module):
    """RMS norm over channels at each (t, h, w) position.

    GroupNorm would average over time, letting future frames leak into past ones; normalising
    each position by itself keeps the VAE causal.
    """

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rms = x.float().pow(2).mean(dim=1, keepdim=True).add(self.eps).rsqrt()
        return (x * rms.to(x.dtype)) * self.weight.view(1, -1, 1, 1, 1)


class ResBlock3d(nn.Module):
    """Pre-norm residual block of two factorised causal convolutions."""

    def __init__(self, cin: int, cout: int | None = None):
        super().__init__()
        cout = cout or cin
        self.norm1 = ChannelRMSNorm(cin)
        self.conv1 = FactorizedConv3d(cin, cout)
        self.norm2 = ChannelRMSNorm(cout)
        self.conv2 = FactorizedConv3d(cout, cout)
        self.skip = nn.Conv3d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class Downsample3d(nn.Module):
    """Halves space and/or time with one strided causal convolution (T = 1 + 2m -> 1 + m)."""

    def __init__(self, cin: int, cout: int, time: bool, space: bool):
        super().__init__()
        self.conv = CausalConv3d(
            cin, cout, stride=(2 if time else 1, 2 if space else 1, 2 if space else 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample3d(nn.Module):
    """Doubles space and/or time, the mirror of `Downsample3d` (T = 1 + m -> 1 + 2m).

    Time: each latent frame predicts two frames (channels split in two and interleaved); the
    first latent frame stands for one frame only, so the first of the doubled frames is dropped.
    Space: nearest-neighbour doubling followed by a convolution.
    """

    def __init__(self, cin: int, cout: int, time: bool, space: bool):
        super().__init__()
        self.time, self.space = time, space
        self.time_conv = CausalConv3d(cin, 2 * cin) if time else None
        self.conv = CausalConv3d(cin, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.time_conv is not None:
            b, c, t, h, w = x.shape
            x = self.time_conv(x).view(b, 2, c, t, h, w)  # (B, 2, C, T, H, W)
            x = x.permute(0, 2, 3, 1, 4, 5).reshape(
                b, c, 2 * t, h, w
            )  # interleave: (B, C, 2T, H, W)
            x = x[:, :, 1:]  # (B, C, 2T - 1, H, W)
        if self.space:
            x = F.interpolate(x, scale_factor=(1, 2, 2), mode="nearest")
        return self.conv(x)


def patchify_space(x: torch.Tensor, p: int) -> torch.Tensor:
    """(B, C, T, H, W) -> (B, C*p*p, T, H/p, W/p): space-to-depth, a free first downsampling."""
    b, c, t, h, w = x.shape
    x = x.view(b, c, t, h // p, p, w // p, p)
    return x.permute(0, 1, 4, 6, 2, 3, 5).reshape(b, c * p * p, t, h // p, w // p)


def unpatchify_space(x: torch.Tensor, p: int) -> torch.Tensor:
    """(B, C*p*p, T, h, w) -> (B, C, T, h*p, w*p), the inverse of `patchify_space`."""
    b, cpp, t, h, w = x.shape
    c = cpp // (p * p)
    x = x.view(b, c, p, p, t, h, w)
    return x.permute(0, 1, 4, 5, 2, 6, 3).reshape(b, c, t, h * p, w * p)


# ---------------------------------------------------------------------------------------
# Transformer parts (DiT)
# ---------------------------------------------------------------------------------------


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal features of t in [0, 1], scaled by 1000 like integer steps: (B,) -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half
    )
    args = (t.float() * 1000.0)[:, None] * freqs[None]  # (B, half)
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN: (B, N, D) normalised tokens, (B, D) shift and scale."""
    return x * (1 + scale[:, None]) + shift[:, None]


class Rope3d(nn.Module):
    """3D rotary position embedding over (t, h, w) token coordinates.

    The head dimension is split in three, one part per axis, so attention sees relative offsets in
    time and in both directions of space: one model serves every size and duration it saw.
    """

    def __init__(self, head_dim: int, theta: float = 10_000.0):
        super().__init__()
        # Each axis gets an even number of dims; time gets what is left.
        space = 2 * (head_dim // 6)
        self.dims = (head_dim - 2 * space, space, space)
        self.theta = theta

    def frequencies(self, grid: tuple[int, int, int], device: torch.device) -> torch.Tensor:
        """Complex rotations for every token of a (T, H, W) grid: (N, head_dim / 2)."""
        parts = []
        for axis, (size, dim) in enumerate(zip(grid, self.dims, strict=True)):
            inv = 1.0 / (
                self.theta ** (torch.arange(0, dim, 2, device=device, dtype=torch.float32) / dim)
            )
            angles = torch.outer(
                torch.arange(size, device=device, dtype=torch.float32), inv
            )  # (size, dim/2)
            shape = [1, 1, 1, dim // 2]
            shape[axis] = size
            parts.append(angles.view(shape).expand(*grid, dim // 2))
        angles = torch.cat(parts, dim=-1).reshape(-1, sum(self.dims) // 2)  # (N, head_dim/2)
        return torch.polar(torch.ones_like(angles), angles)

    @staticmethod
    def apply(x: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
        """Rotate (B, heads, N, head_dim) queries or keys by (N, head_dim / 2) complex rotations."""
        xc = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))
        return torch.view_as_real(xc * freqs).flatten(-2).to(x.dtype)


class Attention(nn.Module):
    """Multi-head attention: self-attention with 3D RoPE, or cross-attention to a context."""

    def __init__(self, dim: int, heads: int, context_dim: int | None = None):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(context_dim or dim, 2 * dim)
        self.q_norm = nn.RMSNorm(dim // heads)
        self.k_norm = nn.RMSNorm(dim // heads)
        self.out = nn.Linear(dim, dim)

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        rope: torch.Tensor | None = None,
        context_mask: torch.Tensor | None = None,
        return_weights: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """x: (B, N, dim), context: (B, L, context_dim) (None: x itself). Returns (B, N, dim);
        with `return_weights`, also the attention weights (B, heads, N, L) float32, computed
        explicitly (the fused kernel does not give them)."""
        b, n, d = x.shape
        context = x if context is None else context
        q = self.q(x).view(b, n, self.heads, -1).transpose(1, 2)  # (B, heads, N, hd)
        k, v = (
            self.kv(context).view(b, context.shape[1], 2, self.heads, -1).permute(2, 0, 3, 1, 4)
        )  # (B, heads, L, hd)
        # Under bf16 autocast q and k arrive in bf16 beside float32 norm weights, which
        # PyTorch's fused RMSNorm refuses (it warns and falls back): norm in the weights' dtype.
        norm_dtype = self.q_norm.weight.dtype
        q = self.q_norm(q.to(norm_dtype)).to(v.dtype)  # (B, heads, N, hd)
        k = self.k_norm(k.to(norm_dtype)).to(v.dtype)  # (B, heads, L, hd)
        if rope is not None:
            q, k = Rope3d.apply(q, rope), Rope3d.apply(k, rope)
        mask = None if context_mask is None else context_mask[:, None, None, :]  # (B, 1, 1, L)
        if return_weights:
            scores = (q.float() @ k.float().transpose(-2, -1)) * q.shape[-1] ** -0.5
            if mask is not None:
                scores = scores.masked_fill(~mask, float("-inf"))
            weights = scores.softmax(-1)  # (B, heads, N, L)
            x = weights.to(v.dtype) @ v  # (B, heads, N, hd)
            return self.out(x.transpose(1, 2).reshape(b, n, d)), weights
        x = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, heads, N, hd)
        return self.out(x.transpose(1, 2).reshape(b, n, d))
