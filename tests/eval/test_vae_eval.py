"""`vidora eval-vae`: the round trip judged and the shape salience of a VAE's latents, checked
on autoencoders whose answers are known (the identity, a blur)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from vidora.cli import app
from vidora.eval.vae import round_trip_check, shape_salience
from vidora.pipelines import TextToVideoPipeline


class Identity:
    """Latents that are the pixels: nothing lost, every change charged as it is."""

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x, torch.zeros_like(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return z


class Blur(Identity):
    """Latents that are 4x4-pixel means: colour survives, corners do not."""

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = F.avg_pool3d(x, kernel_size=(1, 4, 4))
        return z, torch.zeros_like(z)


def test_the_identitys_round_trip_is_perfect() -> None:
    figures = round_trip_check(Identity(), n=6)
    assert figures["n"] == 6 and math.isinf(figures["psnr_db"])
    assert figures["adherence"] == 1.0 and figures["shape_accuracy"] == 1.0


def test_a_lossy_round_trip_scores_below_the_identity() -> None:
    vae = TextToVideoPipeline.tiny_random().vae  # random weights: the round trip is noise
    figures = round_trip_check(vae, n=4)
    assert figures["psnr_db"] < 20 and figures["adherence"] < 1.0
    assert set(figures["shape_accuracy_by_shape"]) <= {"circle", "square", "triangle"}


def test_salience_is_one_where_the_latent_is_the_pixels() -> None:
    salience = shape_salience(Identity())
    assert set(salience) == {"small still", "small right", "large still", "large right", "mean"}
    assert salience["mean"] == pytest.approx(1.0, abs=1e-4)


def test_a_blurring_latent_hides_a_shape_change_more_than_a_colour_change() -> None:
    salience = shape_salience(Blur())
    assert salience["mean"] < 0.9
    assert salience["small still"] < salience["large still"]  # small corners blur away first


def test_eval_vae_command_writes_its_figures(tmp_path: Path) -> None:
    release = TextToVideoPipeline.tiny_random().save_pretrained(tmp_path / "tiny.safetensors")
    out = tmp_path / "figures" / "vae.json"
    result = CliRunner().invoke(
        app, ["eval-vae", "--checkpoint", str(release), "-n", "2", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    figures = json.loads(out.read_text())
    assert figures["round_trip"]["n"] == 2 and "mean" in figures["shape_salience"]


def test_eval_vae_refuses_a_file_that_holds_no_vae(tmp_path: Path) -> None:
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a checkpoint")
    result = CliRunner().invoke(app, ["eval-vae", "--checkpoint", str(junk)])
    assert result.exit_code == 2
    assert "cannot load a VAE" in result.output and "Traceback" not in result.output
