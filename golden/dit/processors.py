"""Self-attention processors that also run the saliency pass (ALGORITHMS.md sections 2-3).

One processor per supported diffusers model class. Each repeats its diffusers original (same
projections, q/k norms, rotary embedding and output projections) and adds two things after the
rotary embedding: ``observe`` (saliency at profiling steps, SeDA groups at regrouping steps, into the
block's state) and ``attend`` (diffusers' attention, or fake-quantized attention products when
``QuantConfig.quantize_attention_products`` is set). Because q/k/v are projected before the
attention, they use the salient set of the previous profiling step; every later linear of the block
uses this step's.
"""

from __future__ import annotations

import zlib

import torch
from diffusers.models.attention_dispatch import dispatch_attention_fn
from diffusers.models.attention_processor import CogVideoXAttnProcessor2_0, MochiAttnProcessor2_0
from diffusers.models.transformers.transformer_hunyuan_video import HunyuanVideoAttnProcessor2_0
from diffusers.models.transformers.transformer_ltx import LTXVideoAttnProcessor
from diffusers.models.transformers.transformer_ltx import apply_rotary_emb as ltx_apply_rotary_emb
from diffusers.models.transformers.transformer_wan import WanAttnProcessor, _get_qkv_projections

from ..formats import FormatError
from ..quantize import fake_quantize
from .saliency import (
    _probabilities,
    anchor_attention,
    attention_saliency,
    chunk_rows,
    salient_tokens,
    seda_groups,
)

__all__ = [
    "CogVideoXSaliencyProcessor",
    "HunyuanVideoSaliencyProcessor",
    "LTXVideoSaliencyProcessor",
    "MochiSaliencyProcessor",
    "WanSaliencyProcessor",
    "quantized_attention",
]


def _key_mask(attention_mask: torch.Tensor | None, batch: int, length: int) -> torch.Tensor | None:
    """A boolean key mask ``(batch, L)`` from diffusers' ``(batch, 1, 1, L)`` boolean attention mask."""
    if attention_mask is None:
        return None
    if attention_mask.dtype != torch.bool or attention_mask.numel() != batch * length:
        raise FormatError(
            f"the saliency pass supports boolean key masks of {batch} x {length} elements, got "
            f"{attention_mask.dtype} of shape {tuple(attention_mask.shape)}"
        )
    return attention_mask.reshape(batch, length)


def quantized_attention(query, key, value, *, key_mask, config) -> torch.Tensor:
    """Attention with fake-quantized products: ``softmax(Q(q) Q(k)^T / sqrt(d))`` quantized along keys,
    times ``Q(v)`` quantized along tokens. Layout ``(batch, L, heads, head_dim)`` in and out; chunked
    over queries like the saliency pass (``config.decomposition.chunk_bytes`` or the default)."""

    def fake(t: torch.Tensor) -> torch.Tensor:
        return fake_quantize(t, config.format, block=config.block, select=config.activation_select, pad=True)

    q, k = fake(query.float()), fake(key.float())
    v_t = fake(value.float().permute(0, 2, 3, 1))  # (batch, heads, head_dim, L): blocks along tokens
    batch, length, heads, _ = query.shape
    budget = config.decomposition.chunk_bytes if config.decomposition is not None else 8 << 20
    rows = chunk_rows(batch, heads, key.shape[1], budget)
    out = torch.empty(*query.shape[:3], value.shape[-1], dtype=torch.float32)
    for start in range(0, length, rows):
        probs = fake(_probabilities(q[:, start : start + rows], k, key_mask))
        out[:, start : start + rows] = torch.einsum("bhrl,bhdl->brhd", probs, v_t)
    return out.to(query.dtype)


def ablation_saliency(source: str, query: torch.Tensor, tokens: int, offset: int, block: str, step: int) -> torch.Tensor:
    """Scores ``(batch, tokens)`` of the ablation saliency sources: the squared L2 norm of each video
    token's query (all heads), or uniform random numbers seeded by the block name and the step."""
    if source == "norm":
        return query[:, offset : offset + tokens].float().square().sum(dim=(-2, -1))
    generator = torch.Generator().manual_seed(zlib.crc32(block.encode()) * 1009 + step)
    return torch.rand(query.shape[0], tokens, generator=generator).to(query.device)


class SaliencyMixin:
    """Shared by the processors: the block state, the saliency pass and the attention call."""

    def __init__(self, block_state) -> None:
        super().__init__()
        self.block_state = block_state

    @property
    def config(self):
        return self.block_state.model.config

    def observe(
        self, query: torch.Tensor, key: torch.Tensor, *, key_mask: torch.Tensor | None, offset: int = 0
    ) -> None:
        """At profiling steps, compute this block's salient tokens (and SeDA groups at regrouping steps)."""
        call = self.block_state.model.call
        config = self.config
        if call is None or config.decomposition is None or not call.profile:
            return
        tokens = call.num_video_tokens
        if offset + tokens > query.shape[1]:
            raise FormatError(
                f"block {self.block_state.name!r}: attention over {query.shape[1]} tokens cannot hold the "
                f"{tokens} video tokens of a {call.grid} grid"
            )
        dec = config.decomposition
        slot = self.block_state.slot()
        if dec.saliency == "attention":
            saliency = attention_saliency(
                query, key, num_video=tokens, offset=offset, key_mask=key_mask,
                max_queries=dec.max_queries, chunk_bytes=dec.chunk_bytes,
            )  # fmt: skip
        else:
            saliency = ablation_saliency(dec.saliency, query, tokens, offset, self.block_state.name, call.step)
        slot.salient = salient_tokens(saliency, dec.num_salient(tokens))
        if call.regroup:
            weights = anchor_attention(
                query, key, slot.salient, num_video=tokens, offset=offset, key_mask=key_mask,
                chunk_bytes=dec.chunk_bytes,
            )  # fmt: skip
            slot.anchors = slot.salient
            slot.groups = seda_groups(
                weights, slot.salient, grid=call.grid, window=config.seda.window, k_c=config.seda.k_c
            )
            slot.version = next(self.block_state.model.versions)

    def attend(self, query, key, value, *, attention_mask, key_mask=None, **kwargs) -> torch.Tensor:
        if self.config.quantize_attention_products:
            if attention_mask is not None and key_mask is None:
                key_mask = _key_mask(attention_mask, query.shape[0], key.shape[1])
            return quantized_attention(query, key, value, key_mask=key_mask, config=self.config)
        return dispatch_attention_fn(
            query, key, value, attn_mask=attention_mask, dropout_p=0.0, is_causal=False, **kwargs
        )


class HunyuanVideoSaliencyProcessor(SaliencyMixin, HunyuanVideoAttnProcessor2_0):
    """``HunyuanVideoAttnProcessor2_0`` (double- and single-stream joint attention, video tokens first)."""

    def __call__(
        self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, image_rotary_emb=None
    ):
        from diffusers.models.embeddings import apply_rotary_emb

        if attn.add_q_proj is None and encoder_hidden_states is not None:
            hidden_states = torch.cat([hidden_states, encoder_hidden_states], dim=1)
        query = attn.to_q(hidden_states).unflatten(2, (attn.heads, -1))
        key = attn.to_k(hidden_states).unflatten(2, (attn.heads, -1))
        value = attn.to_v(hidden_states).unflatten(2, (attn.heads, -1))
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        if image_rotary_emb is not None:
            if attn.add_q_proj is None and encoder_hidden_states is not None:
                text = encoder_hidden_states.shape[1]
                query = torch.cat(
                    [apply_rotary_emb(query[:, :-text], image_rotary_emb, sequence_dim=1), query[:, -text:]],
                    1,
                )
                key = torch.cat(
                    [apply_rotary_emb(key[:, :-text], image_rotary_emb, sequence_dim=1), key[:, -text:]], 1
                )
            else:
                query = apply_rotary_emb(query, image_rotary_emb, sequence_dim=1)
                key = apply_rotary_emb(key, image_rotary_emb, sequence_dim=1)
        if attn.add_q_proj is not None and encoder_hidden_states is not None:
            encoder_query = attn.add_q_proj(encoder_hidden_states).unflatten(2, (attn.heads, -1))
            encoder_key = attn.add_k_proj(encoder_hidden_states).unflatten(2, (attn.heads, -1))
            encoder_value = attn.add_v_proj(encoder_hidden_states).unflatten(2, (attn.heads, -1))
            if attn.norm_added_q is not None:
                encoder_query = attn.norm_added_q(encoder_query)
            if attn.norm_added_k is not None:
                encoder_key = attn.norm_added_k(encoder_key)
            query = torch.cat([query, encoder_query], dim=1)
            key = torch.cat([key, encoder_key], dim=1)
            value = torch.cat([value, encoder_value], dim=1)

        key_mask = _key_mask(attention_mask, query.shape[0], key.shape[1])
        self.observe(query, key, key_mask=key_mask)
        hidden_states = self.attend(
            query, key, value, attention_mask=attention_mask, key_mask=key_mask,
            backend=self._attention_backend, parallel_config=self._parallel_config,
        )  # fmt: skip
        hidden_states = hidden_states.flatten(2, 3).to(query.dtype)

        if encoder_hidden_states is not None:
            text = encoder_hidden_states.shape[1]
            hidden_states, encoder_hidden_states = hidden_states[:, :-text], hidden_states[:, -text:]
            if getattr(attn, "to_out", None) is not None:
                hidden_states = attn.to_out[1](attn.to_out[0](hidden_states))
            if getattr(attn, "to_add_out", None) is not None:
                encoder_hidden_states = attn.to_add_out(encoder_hidden_states)
        return hidden_states, encoder_hidden_states


class WanSaliencyProcessor(SaliencyMixin, WanAttnProcessor):
    """``WanAttnProcessor`` for Wan's self-attention (``attn1``: video tokens only, no mask)."""

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, rotary_emb=None):
        if encoder_hidden_states is not None or attn.add_k_proj is not None:
            raise FormatError("WanSaliencyProcessor serves Wan's self-attention only (attn1)")
        query, key, value = _get_qkv_projections(attn, hidden_states, None)
        query = attn.norm_q(query).unflatten(2, (attn.heads, -1))
        key = attn.norm_k(key).unflatten(2, (attn.heads, -1))
        value = value.unflatten(2, (attn.heads, -1))
        if rotary_emb is not None:
            query = _wan_rotary(query, *rotary_emb)
            key = _wan_rotary(key, *rotary_emb)
        self.observe(query, key, key_mask=_key_mask(attention_mask, query.shape[0], key.shape[1]))
        hidden_states = self.attend(
            query, key, value, attention_mask=attention_mask,
            backend=self._attention_backend, parallel_config=self._parallel_config,
        )  # fmt: skip
        hidden_states = hidden_states.flatten(2, 3).type_as(query)
        return attn.to_out[1](attn.to_out[0](hidden_states))


def _wan_rotary(
    hidden_states: torch.Tensor, freqs_cos: torch.Tensor, freqs_sin: torch.Tensor
) -> torch.Tensor:
    """Wan's interleaved rotary embedding (as in ``WanAttnProcessor``)."""
    x1, x2 = hidden_states.unflatten(-1, (-1, 2)).unbind(-1)
    cos = freqs_cos[..., 0::2]
    sin = freqs_sin[..., 1::2]
    out = torch.empty_like(hidden_states)
    out[..., 0::2] = x1 * cos - x2 * sin
    out[..., 1::2] = x1 * sin + x2 * cos
    return out.type_as(hidden_states)


class LTXVideoSaliencyProcessor(SaliencyMixin, LTXVideoAttnProcessor):
    """``LTXVideoAttnProcessor`` for LTX-Video's self-attention (``attn1``: video tokens only)."""

    def __call__(
        self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, image_rotary_emb=None
    ):
        if encoder_hidden_states is not None or attention_mask is not None:
            raise FormatError("LTXVideoSaliencyProcessor serves LTX's self-attention only (attn1, no mask)")
        query = attn.norm_q(attn.to_q(hidden_states))
        key = attn.norm_k(attn.to_k(hidden_states))
        value = attn.to_v(hidden_states)
        if image_rotary_emb is not None:
            query = ltx_apply_rotary_emb(query, image_rotary_emb)
            key = ltx_apply_rotary_emb(key, image_rotary_emb)
        query = query.unflatten(2, (attn.heads, -1))
        key = key.unflatten(2, (attn.heads, -1))
        value = value.unflatten(2, (attn.heads, -1))
        self.observe(query, key, key_mask=None)
        hidden_states = self.attend(
            query, key, value, attention_mask=None,
            backend=self._attention_backend, parallel_config=self._parallel_config,
        )  # fmt: skip
        hidden_states = hidden_states.flatten(2, 3).to(query.dtype)
        return attn.to_out[1](attn.to_out[0](hidden_states))


class CogVideoXSaliencyProcessor(SaliencyMixin, CogVideoXAttnProcessor2_0):
    """``CogVideoXAttnProcessor2_0``: joint attention over ``[text, video]`` (text first), so the video
    tokens start at the text length; no attention mask."""

    def __call__(self, attn, hidden_states, encoder_hidden_states, attention_mask=None, image_rotary_emb=None):
        from diffusers.models.embeddings import apply_rotary_emb

        if attention_mask is not None:
            raise FormatError("CogVideoXSaliencyProcessor supports unmasked attention only")
        text = encoder_hidden_states.size(1)
        hidden_states = torch.cat([encoder_hidden_states, hidden_states], dim=1)
        batch, _, _ = hidden_states.shape
        query = attn.to_q(hidden_states)
        key = attn.to_k(hidden_states)
        value = attn.to_v(hidden_states)
        head_dim = key.shape[-1] // attn.heads
        query = query.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        key = key.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        value = value.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        if image_rotary_emb is not None:
            query[:, :, text:] = apply_rotary_emb(query[:, :, text:], image_rotary_emb)
            if not attn.is_cross_attention:
                key[:, :, text:] = apply_rotary_emb(key[:, :, text:], image_rotary_emb)
        self.observe(query.transpose(1, 2), key.transpose(1, 2), key_mask=None, offset=text)
        if self.config.quantize_attention_products:
            hidden_states = quantized_attention(
                query.transpose(1, 2), key.transpose(1, 2), value.transpose(1, 2), key_mask=None,
                config=self.config,
            ).transpose(1, 2)  # fmt: skip
        else:
            hidden_states = torch.nn.functional.scaled_dot_product_attention(
                query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False
            )
        hidden_states = hidden_states.transpose(1, 2).reshape(batch, -1, attn.heads * head_dim)
        hidden_states = attn.to_out[1](attn.to_out[0](hidden_states))
        encoder_hidden_states, hidden_states = hidden_states.split([text, hidden_states.size(1) - text], dim=1)
        return hidden_states, encoder_hidden_states


class MochiSaliencyProcessor(SaliencyMixin, MochiAttnProcessor2_0):
    """``MochiAttnProcessor2_0``: joint attention over ``[video, valid text]`` per sample (video
    first; the saliency pass masks the padded text keys). Attention products stay float
    (``Architecture.attention_products`` is False for Mochi)."""

    def __call__(self, attn, hidden_states, encoder_hidden_states, attention_mask, image_rotary_emb=None):
        query = attn.to_q(hidden_states).unflatten(2, (attn.heads, -1))
        key = attn.to_k(hidden_states).unflatten(2, (attn.heads, -1))
        value = attn.to_v(hidden_states).unflatten(2, (attn.heads, -1))
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        encoder_query = attn.add_q_proj(encoder_hidden_states).unflatten(2, (attn.heads, -1))
        encoder_key = attn.add_k_proj(encoder_hidden_states).unflatten(2, (attn.heads, -1))
        encoder_value = attn.add_v_proj(encoder_hidden_states).unflatten(2, (attn.heads, -1))
        if attn.norm_added_q is not None:
            encoder_query = attn.norm_added_q(encoder_query)
        if attn.norm_added_k is not None:
            encoder_key = attn.norm_added_k(encoder_key)
        if image_rotary_emb is not None:
            query = _mochi_rotary(query, *image_rotary_emb)
            key = _mochi_rotary(key, *image_rotary_emb)

        video = query.shape[1]
        text_mask = attention_mask.to(torch.bool)
        key_mask = torch.cat([torch.ones(query.shape[0], video, dtype=torch.bool, device=query.device), text_mask], 1)
        self.observe(torch.cat([query, encoder_query], 1), torch.cat([key, encoder_key], 1), key_mask=key_mask)

        query, key, value = query.transpose(1, 2), key.transpose(1, 2), value.transpose(1, 2)
        encoder_query, encoder_key, encoder_value = (
            encoder_query.transpose(1, 2), encoder_key.transpose(1, 2), encoder_value.transpose(1, 2),
        )  # fmt: skip
        total = video + encoder_query.size(2)
        outputs = []
        for idx in range(query.shape[0]):  # as diffusers: each sample with its valid text tokens only
            valid = torch.nonzero(attention_mask[idx][None, :].flatten(), as_tuple=False).flatten()
            q = torch.cat([query[idx : idx + 1], encoder_query[idx : idx + 1, :, valid, :]], dim=2)
            k = torch.cat([key[idx : idx + 1], encoder_key[idx : idx + 1, :, valid, :]], dim=2)
            v = torch.cat([value[idx : idx + 1], encoder_value[idx : idx + 1, :, valid, :]], dim=2)
            out = torch.nn.functional.scaled_dot_product_attention(q, k, v, dropout_p=0.0, is_causal=False)
            outputs.append(torch.nn.functional.pad(out, (0, 0, 0, total - out.size(2))))
        hidden_states = torch.cat(outputs, dim=0).transpose(1, 2).flatten(2, 3)
        hidden_states, encoder_hidden_states = hidden_states.split_with_sizes((video, total - video), dim=1)
        hidden_states = attn.to_out[1](attn.to_out[0](hidden_states))
        if hasattr(attn, "to_add_out"):
            encoder_hidden_states = attn.to_add_out(encoder_hidden_states)
        return hidden_states, encoder_hidden_states


def _mochi_rotary(x: torch.Tensor, freqs_cos: torch.Tensor, freqs_sin: torch.Tensor) -> torch.Tensor:
    """Mochi's interleaved rotary embedding (as in ``MochiAttnProcessor2_0``)."""
    x_even, x_odd = x[..., 0::2].float(), x[..., 1::2].float()
    cos = (x_even * freqs_cos - x_odd * freqs_sin).to(x.dtype)
    sin = (x_even * freqs_sin + x_odd * freqs_cos).to(x.dtype)
    return torch.stack([cos, sin], dim=-1).flatten(-2)
