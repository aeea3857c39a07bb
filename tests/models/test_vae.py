"""The causal video VAE: shapes for every duration bucket, causality, and its helpers."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from vidora.models.layers import patchify_space, unpatchify_space
from vidora.models.vae import VAE_PRESETS, VideoVAE, latent_frames, pad_frames


@pytest.fixture(scope="module")
def vae() -> VideoVAE:
    torch.manual_seed(0)
    return VideoVAE(VAE_PRESETS["tiny"]()).eval()


@pytest.mark.parametrize(
    ("frames", "width", "height"), [(1, 64, 64), (5, 96, 64), (9, 64, 96), (33, 64, 64)]
)
def test_encode_decode_shapes(vae: VideoVAE, frames: int, width: int, height: int) -> None:
    x = torch.rand(2, 3, frames, height, width) * 2 - 1
    mean, logvar = vae.encode(x)
    z = vae.cfg.latent_channels
    assert mean.shape == logvar.shape == (2, z, latent_frames(frames), height // 8, width // 8)
    assert vae.decode(mean).shape == x.shape


def test_a_single_frame_is_an_image(vae: VideoVAE) -> None:
    """The first latent frame of a clip is the encoding of its first frame alone."""
    clip = torch.rand(1, 3, 9, 64, 64) * 2 - 1
    with torch.no_grad():
        from_clip = vae.encode(clip)[0][:, :, :1]
        from_image = vae.encode(clip[:, :, :1])[0]
    torch.testing.assert_close(from_clip, from_image, rtol=1e-4, atol=1e-5)


def test_encoder_and_decoder_are_causal(vae: VideoVAE) -> None:
    clip = torch.rand(1, 3, 9, 64, 64) * 2 - 1
    changed = clip.clone()
    changed[:, :, 5:] = -clip[:, :, 5:]  # frames 5..8 belong to latent frame 2 only
    with torch.no_grad():
        a, b = vae.encode(clip)[0], vae.encode(changed)[0]
        torch.testing.assert_close(a[:, :, :2], b[:, :, :2])
        assert not torch.allclose(a[:, :, 2], b[:, :, 2])
        z = torch.randn(1, vae.cfg.latent_channels, 3, 8, 8)
        z2 = z.clone()
        z2[:, :, 2] += 1.0  # latent frame 2 decodes to frames 5..8
        ya, yb = vae.decode(z), vae.decode(z2)
        torch.testing.assert_close(ya[:, :, :5], yb[:, :, :5])
        assert not torch.allclose(ya[:, :, 5:], yb[:, :, 5:])


def test_frame_count_must_be_one_plus_four_k(vae: VideoVAE) -> None:
    with pytest.raises(ValueError, match="1 \\+ 4k"):
        vae.encode(torch.zeros(1, 3, 8, 64, 64))


def test_pad_frames_repeats_the_last_frame() -> None:
    x = torch.arange(32.0).view(1, 1, 32, 1, 1)
    padded = pad_frames(x)
    assert padded.shape[2] == 33 and padded[0, 0, -1].item() == 31.0
    assert pad_frames(padded).shape[2] == 33


def test_space_to_depth_round_trip() -> None:
    x = torch.randn(2, 3, 5, 64, 96)
    folded = patchify_space(x, 4)
    assert folded.shape == (2, 48, 5, 16, 24)
    torch.testing.assert_close(unpatchify_space(folded, 4), x)


def test_normalize_inverts() -> None:
    cfg = VAE_PRESETS["tiny"]()
    vae = VideoVAE(type(cfg)(**{**cfg.to_dict(), "latent_shift": 0.3, "latent_scale": 2.5}))
    z = torch.randn(2, 4, 3, 8, 8)
    torch.testing.assert_close(vae.denormalize(vae.normalize(z)), z)


@pytest.mark.parametrize(("preset", "factor"), [("tiny", 8), ("small", 4)])
def test_spatial_factor_of_each_preset(preset: str, factor: int) -> None:
    vae = VideoVAE(VAE_PRESETS[preset]()).eval()
    assert vae.spatial_factor == factor
    with torch.no_grad():
        mean, _ = vae.encode(torch.zeros(1, 3, 5, 64, 96))
        assert mean.shape[-2:] == (64 // factor, 96 // factor)
        assert vae.decode(mean).shape == (1, 3, 5, 64, 96)


def test_a_refine_head_starts_as_the_identity_and_keeps_the_decoder_causal(vae: VideoVAE) -> None:
    refined = VideoVAE(replace(vae.cfg, refine_width=8)).eval()
    missing, unexpected = refined.load_state_dict(vae.state_dict(), strict=False)
    assert not unexpected and all(name.startswith("decoder.refine.") for name in missing)
    z = torch.randn(1, vae.cfg.latent_channels, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(refined.decode(z), vae.decode(z))  # a new head changes nothing
        torch.nn.init.normal_(refined.decoder.refine.conv_out.conv.weight, std=0.1)
        y = refined.decode(z)
        assert y.shape == (1, 3, 9, 64, 64) and not torch.allclose(y, vae.decode(z))
        z2 = z.clone()
        z2[:, :, 2] += 1.0  # latent frame 2 decodes to frames 5..8, through the head too
        y2 = refined.decode(z2)
    torch.testing.assert_close(y[:, :, :5], y2[:, :, :5])
    assert not torch.allclose(y[:, :, 5:], y2[:, :, 5:])
