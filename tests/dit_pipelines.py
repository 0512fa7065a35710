"""Diffusers video pipelines built from tiny random components (no hub, no text encoder).

Each builder returns ``(pipeline, call_kwargs)``: the pipeline holds a seeded tiny VAE, transformer
(and second expert) and a FlowMatchEulerDiscreteScheduler; ``call_kwargs`` are the keyword
arguments of one generation with precomputed prompt embeddings, as a user passes them. Shapes are
the smallest the VAEs accept; every hidden size is a multiple of 32 (the formats' block).
"""

from __future__ import annotations

import torch
from diffusers import FlowMatchEulerDiscreteScheduler

TEXT_TOKENS = 6
TEXT_DIM = 32


def _text(batch: int = 1, *, seed: int = 1, dim: int = TEXT_DIM, tokens: int = TEXT_TOKENS) -> torch.Tensor:
    return torch.randn(batch, tokens, dim, generator=torch.Generator().manual_seed(seed))


def _image(height: int, width: int) -> torch.Tensor:
    """A (1, 3, H, W) image in [0, 1] (the video processor's tensor input)."""
    return torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(7))


def ltx_transformer(seed: int = 0):
    from diffusers import LTXVideoTransformer3DModel

    torch.manual_seed(seed)
    return LTXVideoTransformer3DModel(
        in_channels=8, out_channels=8, patch_size=1, patch_size_t=1, num_attention_heads=2,
        attention_head_dim=16, cross_attention_dim=32, num_layers=2, caption_channels=TEXT_DIM,
    ).eval()  # fmt: skip


def ltx_vae():
    from diffusers import AutoencoderKLLTXVideo

    torch.manual_seed(0)
    vae = AutoencoderKLLTXVideo(
        in_channels=3, out_channels=3, latent_channels=8, block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8), layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1, 1), spatio_temporal_scaling=(True, True, False, False),
        decoder_spatio_temporal_scaling=(True, True, False, False),
        decoder_inject_noise=(False, False, False, False, False), upsample_residual=(False, False, False, False),
        upsample_factor=(1, 1, 1, 1), timestep_conditioning=False, patch_size=1, patch_size_t=1,
        encoder_causal=True, decoder_causal=False,
    )  # fmt: skip
    vae.use_framewise_encoding = False
    vae.use_framewise_decoding = False
    return vae.eval()


def _ltx_text_kwargs() -> dict:
    mask = torch.ones(1, TEXT_TOKENS, dtype=torch.long)
    return {
        "prompt_embeds": _text(seed=1), "prompt_attention_mask": mask,
        "negative_prompt_embeds": _text(seed=2), "negative_prompt_attention_mask": mask,
    }  # fmt: skip


def ltx_image_to_video(steps: int):
    """LTXImageToVideoPipeline: the first latent frame is the image (per-token timestep 0 there)."""
    from diffusers import LTXImageToVideoPipeline

    pipe = LTXImageToVideoPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(), vae=ltx_vae(), text_encoder=None, tokenizer=None,
        transformer=ltx_transformer(),
    )  # fmt: skip
    kwargs = {
        "image": _image(32, 32), "height": 32, "width": 32, "num_frames": 9, "num_inference_steps": steps,
        "guidance_scale": 3.0, "max_sequence_length": TEXT_TOKENS, "output_type": "latent",
        "generator": torch.Generator().manual_seed(0), **_ltx_text_kwargs(),
    }  # fmt: skip
    return pipe, kwargs


def wan_transformer(seed: int = 0, *, in_channels: int = 16):
    from diffusers import WanTransformer3DModel

    torch.manual_seed(seed)
    return WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=16, in_channels=in_channels,
        out_channels=16, text_dim=TEXT_DIM, freq_dim=32, ffn_dim=64, num_layers=2, rope_max_seq_len=32,
    ).eval()  # fmt: skip


def wan_vae():
    from diffusers import AutoencoderKLWan

    torch.manual_seed(0)
    return AutoencoderKLWan(
        base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True]
    ).eval()


def _wan_text_kwargs() -> dict:
    return {"prompt_embeds": _text(seed=1), "negative_prompt_embeds": _text(seed=2)}


def wan_ti2v(steps: int):
    """WanImageToVideoPipeline with ``expand_timesteps`` (Wan 2.2 TI2V): per-token timesteps, CFG as
    two calls, the first latent frame replaced by the image's latent (timestep 0 there)."""
    from diffusers import WanImageToVideoPipeline

    pipe = WanImageToVideoPipeline(
        tokenizer=None, text_encoder=None, vae=wan_vae(), scheduler=FlowMatchEulerDiscreteScheduler(),
        transformer=wan_transformer(), expand_timesteps=True,
    )  # fmt: skip
    kwargs = {
        "image": _image(16, 16), "height": 16, "width": 16, "num_frames": 9, "num_inference_steps": steps,
        "guidance_scale": 5.0, "max_sequence_length": TEXT_TOKENS, "output_type": "latent",
        "generator": torch.Generator().manual_seed(0), **_wan_text_kwargs(),
    }  # fmt: skip
    return pipe, kwargs


def wan22_two_experts(steps: int):
    """WanPipeline with two experts (Wan 2.2 A14B): ``transformer`` above the boundary timestep,
    ``transformer_2`` below it; CFG as two calls."""
    from diffusers import WanPipeline

    pipe = WanPipeline(
        tokenizer=None, text_encoder=None, vae=wan_vae(), scheduler=FlowMatchEulerDiscreteScheduler(),
        transformer=wan_transformer(0), transformer_2=wan_transformer(1), boundary_ratio=0.5,
    )  # fmt: skip
    kwargs = {
        "height": 16, "width": 16, "num_frames": 9, "num_inference_steps": steps, "guidance_scale": 5.0,
        "guidance_scale_2": 3.0, "max_sequence_length": TEXT_TOKENS, "output_type": "latent",
        "generator": torch.Generator().manual_seed(0), **_wan_text_kwargs(),
    }  # fmt: skip
    return pipe, kwargs


def ltx_condition(steps: int):
    """LTXConditionPipeline: passes ``video_coords`` (no latent sizes); an image at frame 0 replaces
    the first latent frame, a second one at frame 8 is packed as extra tokens before the video's."""
    from diffusers import LTXConditionPipeline

    pipe = LTXConditionPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(), vae=ltx_vae(), text_encoder=None, tokenizer=None,
        transformer=ltx_transformer(),
    )  # fmt: skip
    image = _image(32, 32)
    kwargs = {
        "image": [image, image.flip(-1)], "frame_index": [0, 8], "height": 32, "width": 32, "num_frames": 17,
        "num_inference_steps": steps, "guidance_scale": 3.0, "max_sequence_length": TEXT_TOKENS,
        "output_type": "latent", "generator": torch.Generator().manual_seed(0), **_ltx_text_kwargs(),
    }  # fmt: skip
    return pipe, kwargs


def cogvideox(steps: int):
    """CogVideoXPipeline with its DDIM scheduler (batched CFG; the blocks attend over ``[text, video]``)."""
    from diffusers import AutoencoderKLCogVideoX, CogVideoXDDIMScheduler, CogVideoXPipeline

    from golden.dit import tiny_transformer

    torch.manual_seed(0)
    vae = AutoencoderKLCogVideoX(
        in_channels=3, out_channels=3, down_block_types=("CogVideoXDownBlock3D",) * 4,
        up_block_types=("CogVideoXUpBlock3D",) * 4, block_out_channels=(8, 8, 8, 8), latent_channels=4,
        layers_per_block=1, norm_num_groups=2, temporal_compression_ratio=4,
    ).eval()  # fmt: skip
    pipe = CogVideoXPipeline(
        tokenizer=None, text_encoder=None, vae=vae, transformer=tiny_transformer("cogvideox"),
        scheduler=CogVideoXDDIMScheduler(),
    )  # fmt: skip
    kwargs = {
        "height": 32, "width": 32, "num_frames": 9, "num_inference_steps": steps, "guidance_scale": 6.0,
        "max_sequence_length": TEXT_TOKENS, "output_type": "latent",
        "generator": torch.Generator().manual_seed(0), **_wan_text_kwargs(),
    }  # fmt: skip
    return pipe, kwargs


def mochi(steps: int):
    """MochiPipeline (batched CFG) with Mochi's scheduler setting ``invert_sigmas``: its timesteps
    count *up* within a generation."""
    from diffusers import AutoencoderKLMochi, MochiPipeline

    from golden.dit import tiny_transformer

    torch.manual_seed(0)
    vae = AutoencoderKLMochi(
        latent_channels=4, out_channels=3, encoder_block_out_channels=(32, 32, 32, 32),
        decoder_block_out_channels=(32, 32, 32, 32), layers_per_block=(1, 1, 1, 1, 1),
    ).eval()  # fmt: skip
    pipe = MochiPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(invert_sigmas=True), vae=vae, text_encoder=None,
        tokenizer=None, transformer=tiny_transformer("mochi"),
    )  # fmt: skip
    mask = torch.ones(1, TEXT_TOKENS, dtype=torch.long)
    mask[:, -2:] = 0  # padded prompt tokens
    kwargs = {
        "height": 32, "width": 32, "num_frames": 13, "num_inference_steps": steps, "guidance_scale": 4.5,
        "max_sequence_length": TEXT_TOKENS, "output_type": "latent",
        "generator": torch.Generator().manual_seed(0), "prompt_embeds": _text(seed=1),
        "prompt_attention_mask": mask, "negative_prompt_embeds": _text(seed=2),
        "negative_prompt_attention_mask": mask,
    }  # fmt: skip
    return pipe, kwargs


def skyreels_v2(steps: int):
    """SkyReelsV2Pipeline (text to video) with its UniPC flow scheduler; CFG as two calls."""
    from diffusers import SkyReelsV2Pipeline, SkyReelsV2Transformer3DModel, UniPCMultistepScheduler

    torch.manual_seed(0)
    transformer = SkyReelsV2Transformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=16, in_channels=16, out_channels=16,
        text_dim=TEXT_DIM, freq_dim=32, ffn_dim=64, num_layers=2, rope_max_seq_len=32,
    ).eval()  # fmt: skip
    pipe = SkyReelsV2Pipeline(
        tokenizer=None, text_encoder=None, vae=wan_vae(), transformer=transformer,
        scheduler=UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=8.0),
    )  # fmt: skip
    kwargs = {
        "height": 16, "width": 16, "num_frames": 9, "num_inference_steps": steps, "guidance_scale": 6.0,
        "max_sequence_length": TEXT_TOKENS, "output_type": "latent",
        "generator": torch.Generator().manual_seed(0), **_wan_text_kwargs(),
    }  # fmt: skip
    return pipe, kwargs
