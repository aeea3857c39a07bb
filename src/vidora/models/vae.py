"""A causal video VAE: 4x in time, 4x (or 8x) in space, a few latent channels.

Frames go in as (B, 3, T, H, W) in [-1, 1] with T = 1 + 4k (a 1-frame clip is an image); the
latent is (B, z, 1 + k, H/f, W/f), f the spatial factor (`VideoVAE.spatial_factor`). Every
convolution is causal in time, so latent frame j
depends on frames <= 4j only: the first latent frame is the first frame alone, which is what
image-to-video and extension condition on. Space is first folded into channels (4x4
space-to-depth), so the convolutions run at a quarter of the resolution: cheap on a CPU, and
flat-coloured shapes lose nothing in the fold.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vidora.models.layers import (
    CausalConv3d,
    ChannelRMSNorm,
    Downsample3d,
    ResBlock3d,
    Upsample3d,
    patchify_space,
    unpatchify_space,
)

TEMPORAL_FACTOR = 4


@dataclass(frozen=True)
class VAEConfig:
    latent_channels: int = 8
    """Channels of the latent video; the DiT's input width."""
    patch_size: int = 4
    """Space-to-depth fold at the input: the first 4x of the spatial compression."""
    downsample_space: bool = False
    """A stride-2 stage in space as well (8x in all). Off for the built-in model: at 4x a 10 px
    object spans 2.5 latent pixels, which the decoder draws sharply after far less training."""
    encoder_channels: tuple[int, int] = (48, 64)
    """Widths of the encoder's two stages (the second after the last time downsampling)."""
    decoder_channels: tuple[int, int] = (64, 96)
    """Widths of the decoder's two stages: wider than the encoder's, it draws the edges."""
    refine_width: int = 0
    """Width of a full-resolution stage at the decoder's end (0: none). The rest of the decoder
    works at 1/4 resolution and unfolds each latent pixel into a 4x4 block with one linear map,
    which rounds off edges that fall inside a block; per-frame convolutions at full resolution
    draw them sharply (triangles stop reading as discs)."""
    latent_shift: float = 0.0
    """Subtracted from latents before the DiT sees them (measured after VAE training)."""
    latent_scale: float = 1.0
    """Multiplies shifted latents so the DiT sees unit variance (measured after VAE training)."""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> VAEConfig:
        d = dict(d)
        for key in ("encoder_channels", "decoder_channels"):
            d[key] = tuple(d[key])
        return cls(**d)


class Encoder(nn.Module):
    def __init__(self, cfg: VAEConfig):
        super().__init__()
        c0, c1 = cfg.encoder_channels
        self.patch = cfg.patch_size
        self.conv_in = CausalConv3d(3 * cfg.patch_size**2, c0)
        self.block0 = ResBlock3d(c0)
        self.down_time = Downsample3d(c0, c0, time=True, space=False)
        self.block1 = ResBlock3d(c0)
        self.down_both = Downsample3d(c0, c1, time=True, space=cfg.downsample_space)
        self.block2 = ResBlock3d(c1)
        self.block3 = ResBlock3d(c1)
        self.norm_out = ChannelRMSNorm(c1)
        self.conv_out = CausalConv3d(c1, 2 * cfg.latent_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = patchify_space(x, self.patch)  # (B, 48, T, H/4, W/4)
        x = self.block0(self.conv_in(x))  # (B, c0, T, H/4, W/4)
        x = self.block1(self.down_time(x))  # (B, c0, 1 + (T-1)/2, H/4, W/4)
        x = self.block3(self.block2(self.down_both(x)))  # (B, c1, 1 + (T-1)/4, H/f, W/f)
        return self.conv_out(F.silu(self.norm_out(x)))  # (B, 2z, 1 + (T-1)/4, H/f, W/f)


class Decoder(nn.Module):
    def __init__(self, cfg: VAEConfig):
        super().__init__()
        c0, c1 = cfg.decoder_channels
        self.patch = cfg.patch_size
        self.conv_in = CausalConv3d(cfg.latent_channels, c1)
        self.block0 = ResBlock3d(c1)
        self.block1 = ResBlock3d(c1)
        self.up_both = Upsample3d(c1, c0, time=True, space=cfg.downsample_space)
        self.block2 = ResBlock3d(c0)
        self.up_time = Upsample3d(c0, c0, time=True, space=False)
        self.block3 = ResBlock3d(c0)
        self.block4 = ResBlock3d(c0)
        self.norm_out = ChannelRMSNorm(c0)
        self.conv_out = CausalConv3d(c0, 3 * cfg.patch_size**2)
        self.refine = RefineHead(c0, cfg.patch_size, cfg.refine_width) if cfg.refine_width else None

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.block1(self.block0(self.conv_in(z)))  # (B, c1, F, H/f, W/f)
        x = self.block2(self.up_both(x))  # (B, c0, 1 + 2(F-1), H/4, W/4)
        x = self.block4(self.block3(self.up_time(x)))  # (B, c0, 1 + 4(F-1), H/4, W/4)
        features = F.silu(self.norm_out(x))  # (B, c0, T, H/4, W/4)
        frames = unpatchify_space(self.conv_out(features), self.patch)  # (B, 3, T, H, W)
        if self.refine is not None:
            frames = self.refine(features, frames)  # (B, 3, T, H, W)
        return frames


class RefineHead(nn.Module):
    """Full-resolution correction of the unfolded frames, from the decoder's last features.

    Its output convolution starts at zero, so the head begins as the identity: added to a
    trained decoder, it changes nothing until it has learned something.
    """

    def __init__(self, channels: int, patch: int, width: int, features: int = 16):
        super().__init__()
        self.patch = patch
        self.unfold = CausalConv3d(channels, features * patch**2, (1, 3))
        self.conv_in = CausalConv3d(features + 3, width, (1, 3))
        self.norms = nn.ModuleList([ChannelRMSNorm(width) for _ in range(2)])
        self.convs = nn.ModuleList([CausalConv3d(width, width, (1, 3)) for _ in range(2)])
        self.conv_out = CausalConv3d(width, 3, (1, 3))
        nn.init.zeros_(self.conv_out.conv.weight)
        nn.init.zeros_(self.conv_out.conv.bias)

    def forward(self, features: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        detail = unpatchify_space(self.unfold(features), self.patch)  # (B, 16, T, H, W)
        x = self.conv_in(torch.cat([detail, frames], dim=1))  # (B, width, T, H, W)
        for norm, conv in zip(self.norms, self.convs, strict=True):
            x = x + conv(F.silu(norm(x)))  # per-frame 3x3 convolutions at full resolution
        return frames + self.conv_out(F.silu(x))  # (B, 3, T, H, W)


class VideoVAE(nn.Module):
    """Encode frames to a Gaussian over latents; decode latents to frames."""

    def __init__(self, cfg: VAEConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)

    @property
    def spatial_factor(self) -> int:
        """Pixels per latent pixel along each side: 4, or 8 with `downsample_space`."""
        return self.cfg.patch_size * (2 if self.cfg.downsample_space else 1)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, 1 + 4k, H, W) in [-1, 1] -> mean, log-variance: (B, z, 1 + k, H/f, W/f) each."""
        check_frames(x.shape[2])
        mean, logvar = self.encoder(x).chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(B, z, F, h, w) latents -> (B, 3, 1 + 4(F - 1), f*h, f*w) frames, roughly in [-1, 1]."""
        return self.decoder(z)

    def normalize(self, mean: torch.Tensor) -> torch.Tensor:
        """Latents as the DiT sees them: shifted and scaled to about unit variance."""
        return (mean - self.cfg.latent_shift) * self.cfg.latent_scale

    def denormalize(self, z: torch.Tensor) -> torch.Tensor:
        return z / self.cfg.latent_scale + self.cfg.latent_shift


def check_frames(num_frames: int) -> None:
    if (num_frames - 1) % TEMPORAL_FACTOR:
        raise ValueError(f"the VAE takes 1 + 4k frames (1, 5, 9, ..., 33), not {num_frames}")


def latent_frames(num_frames: int) -> int:
    """Latent frames for a clip of 1 + 4k frames."""
    check_frames(num_frames)
    return 1 + (num_frames - 1) // TEMPORAL_FACTOR


def padded_length(num_frames: int) -> int:
    """The 1 + 4k frames `pad_frames` makes of `num_frames` (32 -> 33)."""
    return num_frames + (-(num_frames - 1)) % TEMPORAL_FACTOR


def to_unit_range(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 pixels, any layout -> float in [-1, 1], the VAE's input range."""
    return pixels.float().div_(127.5).sub_(1.0)


def pad_frames(x: torch.Tensor) -> torch.Tensor:
    """Repeat the last frame until (B, C, T, H, W) has 1 + 4k frames (32 -> 33)."""
    extra = padded_length(x.shape[2]) - x.shape[2]
    return torch.cat([x, x[:, :, -1:].expand(-1, -1, extra, -1, -1)], dim=2) if extra else x


VAE_PRESETS = {
    "tiny": lambda: VAEConfig(
        latent_channels=4, encoder_channels=(8, 16), decoder_channels=(8, 16), downsample_space=True
    ),
    "small": lambda: VAEConfig(),
}
"""Size presets; the keys are the CLI's choices. `tiny` builds in milliseconds for tests."""
