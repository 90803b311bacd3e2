"""Sentence embeddings of transcript segments from a transformers text encoder (MAVEN's text
stream, seed 003 ¶8): ``AutoModel`` + mean pooling of the last hidden states over the tokens.

The encoder is a local model folder or a hub id, resolved like the feature encoders' weights
(:func:`wildaffect.encoders.weights.resolve_weights`: folder, then the Hugging Face cache, then
the hub unless ``HF_HUB_OFFLINE``), so a machine without network needs the folder or the cache.
"""

from __future__ import annotations

from typing import Any

import numpy as np

DEFAULT_TEXT_ENCODER = "roberta-base"
#: Segments per forward pass.
TEXT_BATCH = 32


class TextEncoder:
    """A tokenizer + ``AutoModel`` pair that embeds sentences as (S, hidden) float32."""

    def __init__(self, name_or_path: str) -> None:
        from transformers import AutoModel, AutoTokenizer

        from wildaffect.encoders.weights import resolve_weights

        self.folder = resolve_weights(name_or_path, None, encoder_name=name_or_path)
        self.tokenizer = AutoTokenizer.from_pretrained(self.folder)
        self.model = AutoModel.from_pretrained(self.folder).eval()
        self.dim = int(self.model.config.hidden_size)
        self.max_length = self._max_length()

    def _max_length(self) -> int:
        """Tokens per segment the model can take: its position table, less RoBERTa's offset
        (its positions start after the padding index), and at most the tokenizer's limit."""
        config = self.model.config
        positions = int(getattr(config, "max_position_embeddings", 512))
        if "roberta" in str(getattr(config, "model_type", "")):
            positions -= int(getattr(config, "pad_token_id", 1) or 0) + 1
        return max(min(positions, int(self.tokenizer.model_max_length)), 2)

    def embed(self, texts: list[str], device: str = "cpu") -> np.ndarray:
        """texts -> (S, hidden) float32 mean-pooled token states (padding excluded)."""
        import torch

        pieces = [np.zeros((0, self.dim), np.float32)]
        self.model.to(device)
        for start in range(0, len(texts), TEXT_BATCH):
            tokens: Any = self.tokenizer(
                texts[start : start + TEXT_BATCH], padding=True, truncation=True,
                max_length=self.max_length, return_tensors="pt",
            )  # fmt: skip
            tokens = {k: v.to(device) for k, v in tokens.items()}
            with torch.inference_mode():
                states = self.model(**tokens).last_hidden_state  # (B, L, H)
            mask = tokens["attention_mask"][..., None].to(states.dtype)  # (B, L, 1)
            pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1)  # (B, H)
            pieces.append(pooled.float().cpu().numpy())
        return np.concatenate(pieces, axis=0)


__all__ = ["DEFAULT_TEXT_ENCODER", "TextEncoder"]
