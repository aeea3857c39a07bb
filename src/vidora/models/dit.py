"""A diffusion transformer over spacetime patches (Sora's recipe, small).

The latent video (B, z, F, h, w) is cut into spacetime patches that become tokens; 3D rotary
positions tell attention where each token sits in time and space, so one model serves every
size and duration it was trained on. Each block modulates its norms from the timestep and the
pooled prompt (adaLN-zero), attends over all spacetime tokens, then cross-attends to the text
encoder's token states.

Frame conditioning: a mask channel marks latent frames that are given clean (the first frame
for image-to-video, the tail of a clip for extension); the caller puts the clean latents in
those frames of `x` and the model predicts velocity everywhere (the loss ignores given frames).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from vidora.models.layers import Attention, Rope3d, modulate, timestep_embedding


@dataclass(frozen=True)
class DiTConfig:
    latent_channels: int = 8
    """Channels of the VAE latent."""
    patch_size: tuple[int, int, int] = (1, 2, 2)
    """Latent frames, rows and columns per token (the built-in model: 1x4x4 of a 4x VAE, so a
    token is 16x16 pixels)."""
    width: int = 256
    """Token width D."""
    depth: int = 6
    """Number of transformer blocks."""
    heads: int = 4
    """Attention heads; head width is width / heads."""
    mlp_ratio: float = 4.0
    """Hidden width of each block's MLP over D."""
    text_dim: int = 384
    """Width of the text encoder's token states (MiniLM-L6: 384)."""
    refine_width: int = 0
    """Channels of a convolutional head after the patch layer (`VelocityRefiner`); 0: none.
    It starts as the identity, so it can be added to a trained DiT and trained on its own."""
    pool_queries: int = 0
    """Learned queries that read the prompt's tokens into the global condition beside their mean
    (`PromptPool`); 0: the mean alone. It starts at zero, so it can be added to a trained DiT."""
    attribute_classes: tuple[int, ...] = ()
    """Classes of each object attribute a linear head reads from every token in training
    (`AttributeHead`; Shapes World: colour, shape, motion, size); (): no head."""
    attribute_block: int = 2
    """Blocks the tokens pass through before the attribute head reads them."""
    prompt_mean: bool = True
    """Whether the condition the blocks are modulated by reads the mean of the prompt's token
    states; False: the words reach the DiT through cross-attention alone (a DiT trained with
    `mean_dropout` can be sampled so)."""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> DiTConfig:
        d = dict(d)
        d["patch_size"] = tuple(d["patch_size"])
        d["attribute_classes"] = tuple(d.get("attribute_classes", ()))
        return cls(**d)


OPTIONAL_PARTS = ("refine.", "pool.", "attributes.")
"""Parameter prefixes of the parts a trained DiT can be given (`refine_width`, `pool_queries`,
`attribute_classes`): each starts adding nothing (the attribute head is read in training only),
so a release without them loads into a DiT with them."""


class DiTBlock(nn.Module):
    """adaLN-zero self-attention and MLP, plus cross-attention to the prompt."""

    def __init__(self, cfg: DiTConfig):
        super().__init__()
        d = cfg.width
        self.norm1 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(d, cfg.heads)
        self.norm_cross = nn.LayerNorm(d, eps=1e-6)
        self.cross = Attention(d, cfg.heads, context_dim=d)
        self.norm2 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        hidden = int(d * cfg.mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(d, hidden), nn.GELU(), nn.Linear(hidden, d))
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(d, 6 * d))

    def forward(
        self,
        x: torch.Tensor,
        c: torch.Tensor,
        text: torch.Tensor,
        text_mask: torch.Tensor,
        rope: torch.Tensor,
        cross_maps: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """With `cross_maps`, appends the cross-attention's weights averaged over heads,
        (B, N, L) float32."""
        shift1, scale1, gate1, shift2, scale2, gate2 = self.ada(c).chunk(6, dim=-1)  # 6 x (B, D)
        x = x + gate1[:, None] * self.attn(
            modulate(self.norm1(x), shift1, scale1), rope=rope
        )  # (B, N, D)
        if cross_maps is None:
            x = x + self.cross(self.norm_cross(x), context=text, context_mask=text_mask)
        else:
            read, weights = self.cross(
                self.norm_cross(x), context=text, context_mask=text_mask, return_weights=True
            )  # (B, N, D), (B, heads, N, L)
            x = x + read
            cross_maps.append(weights.mean(1))  # (B, N, L)
        x = x + gate2[:, None] * self.mlp(modulate(self.norm2(x), shift2, scale2))  # (B, N, D)
        return x


class FinalLayer(nn.Module):
    def __init__(self, cfg: DiTConfig, out_per_token: int):
        super().__init__()
        self.norm = nn.LayerNorm(cfg.width, elementwise_affine=False, eps=1e-6)
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(cfg.width, 2 * cfg.width))
        self.linear = nn.Linear(cfg.width, out_per_token)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.ada(c).chunk(2, dim=-1)
        return self.linear(modulate(self.norm(x), shift, scale))  # (B, N, out_per_token)


class VelocityRefiner(nn.Module):
    """Local corrections to the patch layer's velocity: per-frame 3x3 convolutions.

    A token is a 4x4 patch of latent cells (16x16 pixels), predicted by one linear map from its
    feature, so detail smaller than a patch, or across two, rests on that map alone. As U-ViT's
    last 3x3 convolution (Bao et al., 2023), this head sees neighbouring cells together: the
    predicted velocity and the noisy latent, modulated by the timestep and the pooled prompt.
    Its last convolution starts at zero (the head adds nothing until trained).
    """

    def __init__(self, cfg: DiTConfig):
        super().__init__()
        z, w = cfg.latent_channels, cfg.refine_width
        kernel, pad = (1, 3, 3), (0, 1, 1)
        self.conv_in = nn.Conv3d(2 * z, w, kernel, padding=pad)
        self.ada = nn.Linear(cfg.width, 2 * w)
        self.conv_mid = nn.Conv3d(w, w, kernel, padding=pad)
        self.conv_out = nn.Conv3d(w, z, kernel, padding=pad)

    def forward(self, velocity: torch.Tensor, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """velocity, x: (B, z, F, h, w); c: (B, D). Returns the correction (B, z, F, h, w)."""
        h = self.conv_in(torch.cat([velocity, x], dim=1))  # (B, W, F, h, w)
        shift, scale = self.ada(c)[..., None, None, None].chunk(2, dim=1)  # 2 x (B, W, 1, 1, 1)
        h = nn.functional.silu(h * (1 + scale) + shift)
        h = nn.functional.silu(self.conv_mid(h))  # (B, W, F, h, w)
        return self.conv_out(h)  # (B, z, F, h, w)


class PromptPool(nn.Module):
    """Learned queries that read the prompt's token states into the global (adaLN) condition.

    The mean of the token states, the condition's other text input, weighs each word by one token
    of ten or so; yet the DiT reads the prompt's shape and motion mostly from that mean, not from
    cross-attention (MODEL.md, "Which path carries the words"). A query can weigh the words that
    matter. The output layer starts at zero, so the pool can be added to a trained DiT.
    """

    def __init__(self, cfg: DiTConfig):
        super().__init__()
        d = cfg.width
        self.queries = nn.Parameter(torch.randn(cfg.pool_queries, d))
        self.attn = Attention(d, cfg.heads, context_dim=cfg.text_dim)
        self.out = nn.Linear(cfg.pool_queries * d, d)

    def forward(self, text: torch.Tensor, text_mask: torch.Tensor) -> torch.Tensor:
        """text: (B, L, text_dim) token states, text_mask: (B, L) bool. Returns (B, D)."""
        queries = self.queries.expand(text.shape[0], -1, -1).to(text.dtype)  # (B, Q, D)
        read = self.attn(queries, context=text, context_mask=text_mask)  # (B, Q, D)
        return self.out(read.flatten(1))  # (B, D)


class AttributeHead(nn.Module):
    """A linear readout of each token's object attributes from the DiT's middle, for training.

    At high noise a token cannot see what it will show; what the object there is (its shape,
    its motion) can only come from the prompt. Charging a readout of the middle tokens for the
    true attributes, where an object lies, asks the blocks below to carry the prompt's words to
    the object's tokens (as REPA aligns a DiT's middle with a pretrained encoder's features; here
    the world's exact labels stand in for the encoder). Sampling never calls it.
    """

    def __init__(self, cfg: DiTConfig):
        super().__init__()
        self.norm = nn.LayerNorm(cfg.width, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(cfg.width, sum(cfg.attribute_classes))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens: (B, N, D) -> logits (B, N, sum of attribute_classes)."""
        return self.linear(self.norm(tokens))


class DiT(nn.Module):
    """Velocity model v(x_t, t | text, clean frames) over latent video."""

    def __init__(self, cfg: DiTConfig):
        super().__init__()
        self.cfg = cfg
        pt, ph, pw = cfg.patch_size
        d = cfg.width
        in_per_token = (cfg.latent_channels + 1) * pt * ph * pw  # latents + the conditioning mask
        self.patch_embed = nn.Linear(in_per_token, d)
        self.time_embed = nn.Sequential(nn.Linear(256, d), nn.SiLU(), nn.Linear(d, d))
        self.text_proj = nn.Sequential(nn.Linear(cfg.text_dim, d), nn.GELU(), nn.Linear(d, d))
        self.text_pool = nn.Linear(cfg.text_dim, d)
        self.pool = PromptPool(cfg) if cfg.pool_queries else None
        self.rope = Rope3d(d // cfg.heads)
        self.blocks = nn.ModuleList(DiTBlock(cfg) for _ in range(cfg.depth))
        self.final = FinalLayer(cfg, cfg.latent_channels * pt * ph * pw)
        self.refine = VelocityRefiner(cfg) if cfg.refine_width else None
        self.attributes = AttributeHead(cfg) if cfg.attribute_classes else None
        if self.attributes is not None and not 1 <= cfg.attribute_block <= cfg.depth:
            raise ValueError(
                f"attribute_block counts blocks, 1 to {cfg.depth}, not {cfg.attribute_block}"
            )
        self.initialize_weights()

    def initialize_weights(self) -> None:
        # Linear layers: Xavier-uniform, zero bias (as DiT).
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        # Timestep MLP: small normal, so early modulation is gentle.
        for m in self.time_embed:
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.02)
        # adaLN-zero: every block starts as the identity (gates and shifts at zero).
        for block in self.blocks:
            nn.init.zeros_(block.ada[-1].weight)
            nn.init.zeros_(block.ada[-1].bias)
            # Cross-attention is ungated: zero its output so it too starts as the identity.
            nn.init.zeros_(block.cross.out.weight)
        # Output layer at zero: the first prediction is v = 0.
        nn.init.zeros_(self.final.ada[-1].weight)
        nn.init.zeros_(self.final.ada[-1].bias)
        nn.init.zeros_(self.final.linear.weight)
        if self.pool is not None:  # the pool starts adding nothing
            nn.init.zeros_(self.pool.out.weight)
        if self.refine is not None:  # the head starts as the identity
            nn.init.zeros_(self.refine.conv_out.weight)
            nn.init.zeros_(self.refine.conv_out.bias)

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        text: torch.Tensor,
        text_mask: torch.Tensor,
        cond_mask: torch.Tensor | None = None,
        attributes: bool = False,
        cross_maps: bool = False,
        keep_mean: torch.Tensor | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """
        x: (B, z, F, h, w) noisy latents, with clean latents in the given frames.
        t: (B,) flow time in [0, 1] (0 noise, 1 data).
        text: (B, L, text_dim) token states; text_mask: (B, L) bool, True for real tokens.
        cond_mask: (B, F) bool, True for frames given clean; None means none given.
        Returns the velocity (B, z, F, h, w); with `attributes` (training, a DiT with an
        `AttributeHead`), also the head's logits (B, N, sum of attribute_classes), tokens in
        `patchify`'s order; with `cross_maps` (training, not with `attributes`), also every
        block's cross-attention weights averaged over heads, (depth, B, N, L) float32.
        keep_mean: (B,) bool, False where the condition leaves out the prompt's mean (training
        with `mean_dropout`); None: every sample's kept, unless `cfg.prompt_mean` is False.
        """
        if attributes and cross_maps:
            raise ValueError("ask for the attribute logits or the cross-attention maps, not both")
        if attributes and self.attributes is None:
            raise ValueError("this DiT has no attribute head (DiTConfig.attribute_classes)")
        b, z, f, h, w = x.shape
        pt, ph, pw = self.cfg.patch_size
        grid = (f // pt, h // ph, w // pw)
        if cond_mask is None:
            cond_mask = torch.zeros(b, f, dtype=torch.bool, device=x.device)
        mask = cond_mask.to(x.dtype)[:, None, :, None, None].expand(
            b, 1, f, h, w
        )  # (B, 1, F, h, w)
        tokens = self.patchify(torch.cat([x, mask], dim=1))  # (B, N, (z+1)*pt*ph*pw)
        tokens = self.patch_embed(tokens)  # (B, N, D)

        text_mask = text_mask.bool()
        pooled = (text * text_mask[..., None]).sum(1) / text_mask.sum(1, keepdim=True).clamp(
            min=1
        )  # (B, text_dim)
        if not self.cfg.prompt_mean:
            pooled = torch.zeros_like(pooled)
        elif keep_mean is not None:
            pooled = pooled * keep_mean.to(pooled.dtype)[:, None]  # (B, text_dim)
        c = self.time_embed(timestep_embedding(t, 256)) + self.text_pool(pooled)  # (B, D)
        if self.pool is not None:
            c = c + self.pool(text, text_mask)  # (B, D)
        context = self.text_proj(text)  # (B, L, D)
        rope = self.rope.frequencies(grid, x.device)  # (N, head_dim/2)

        logits = None
        maps: list[torch.Tensor] | None = [] if cross_maps else None
        for depth, block in enumerate(self.blocks, start=1):
            tokens = block(tokens, c, context, text_mask, rope, maps)  # (B, N, D)
            if attributes and depth == self.cfg.attribute_block:
                logits = self.attributes(tokens)  # (B, N, classes)
        out = self.final(tokens, c)  # (B, N, z*pt*ph*pw)
        velocity = self.unpatchify(out, grid)  # (B, z, F, h, w)
        if self.refine is not None:
            velocity = velocity + self.refine(velocity, x, c)  # (B, z, F, h, w)
        if cross_maps:
            return velocity, torch.stack(maps)  # (depth, B, N, L)
        return (velocity, logits) if attributes else velocity

    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, F, h, w) -> (B, N, C*pt*ph*pw), tokens in (f, row, column) order."""
        b, c, f, h, w = x.shape
        pt, ph, pw = self.cfg.patch_size
        x = x.view(b, c, f // pt, pt, h // ph, ph, w // pw, pw)
        return x.permute(0, 2, 4, 6, 1, 3, 5, 7).reshape(b, -1, c * pt * ph * pw)

    def unpatchify(self, x: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
        """(B, N, C*pt*ph*pw) -> (B, C, F, h, w), the inverse of `patchify`."""
        b = x.shape[0]
        pt, ph, pw = self.cfg.patch_size
        gf, gh, gw = grid
        x = x.view(b, gf, gh, gw, -1, pt, ph, pw)
        return x.permute(0, 4, 1, 5, 2, 6, 3, 7).reshape(b, -1, gf * pt, gh * ph, gw * pw)


DIT_PRESETS = {
    "tiny": lambda: DiTConfig(latent_channels=4, width=32, depth=2, heads=2),
    "small": lambda: DiTConfig(patch_size=(1, 4, 4)),
}
"""Size presets; the keys are the CLI's choices. `tiny` builds in milliseconds for tests."""
