"""A BERT-style sentence encoder built from ``torch.nn.TransformerEncoderLayer``.

It has the architecture of all-MiniLM-L6-v2 (six post-norm layers, 384
hidden units, 12 heads, GELU, LayerNorm epsilon 1e-12) but PyTorch's own
parameter names: one fused ``in_proj_weight`` per attention layer where
BERT has separate query, key and value projections. ``keymap.yaml`` in
this folder maps the BERT names onto these.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["EncoderConfig", "SentenceEncoder", "TokenEmbeddings", "mean_pool"]


@dataclass(frozen=True)
class EncoderConfig:
    """Sizes of the encoder. The defaults are those of all-MiniLM-L6-v2."""

    vocab_size: int = 30522
    hidden_size: int = 384
    num_layers: int = 6
    num_heads: int = 12
    feedforward_size: int = 1536
    max_positions: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12


class TokenEmbeddings(nn.Module):
    """Sum of word, position and token-type embeddings, followed by LayerNorm."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.word = nn.Embedding(config.vocab_size, config.hidden_size)
        self.position = nn.Embedding(config.max_positions, config.hidden_size)
        self.token_type = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Embed a batch of token ids of shape (batch, length)."""
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        summed = self.word(input_ids) + self.position(positions)[None] + self.token_type(token_type_ids)
        return self.norm(summed)


class SentenceEncoder(nn.Module):
    """Token embeddings, post-norm Transformer layers and mean pooling.

    Dropout is 0: the model is meant for loading pretrained weights and
    computing embeddings.
    """

    def __init__(self, config: EncoderConfig | None = None) -> None:
        super().__init__()
        config = config or EncoderConfig()
        self.config = config
        self.embeddings = TokenEmbeddings(config)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(
                d_model=config.hidden_size,
                nhead=config.num_heads,
                dim_feedforward=config.feedforward_size,
                dropout=0.0,
                activation="gelu",
                layer_norm_eps=config.layer_norm_eps,
                batch_first=True,
                norm_first=False,
            )
            for _ in range(config.num_layers)
        )

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Return the hidden state of every token, shape (batch, length, hidden).

        ``attention_mask`` is 1 for real tokens and 0 for padding, as
        tokenizers return it. The states of padding positions are undefined.
        """
        hidden = self.embeddings(input_ids, token_type_ids)
        padding = attention_mask == 0
        for layer in self.layers:
            hidden = layer(hidden, src_key_padding_mask=padding)
        return hidden

    def embed(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        normalize: bool = True,
    ) -> torch.Tensor:
        """Return one sentence embedding per row: the mean of its token states, L2-normalised by default."""
        pooled = mean_pool(self(input_ids, attention_mask, token_type_ids), attention_mask)
        return nn.functional.normalize(pooled, dim=-1) if normalize else pooled


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average the token states of each row over its real tokens (mask 1)."""
    weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
    # Zero the padding states first, because the encoder leaves their values undefined.
    summed = torch.where(weights > 0, hidden, torch.zeros_like(hidden)).sum(dim=1)
    return summed / weights.sum(dim=1).clamp(min=1e-9)
