"""Audio-Guided Selective State Space Model (AG-SSM), seed 002 §3.3.

A Mamba block whose selection parameters (delta, B, C) are computed from the visual stream AND
the frame-aligned audio, plus an audio gate on the visual input. ``audio_guided=False`` gives the
plain Mamba block; ``bidirectional=True`` adds a Vision-Mamba backward branch.

Data flow of one block (x: (B, L, d_model) visual tokens, a: (B, L, d_audio) audio):

    x_n = LayerNorm(x)                                  pre-norm
    x'  = sigmoid(W_g a) * x_n                          audio gate (audio_guided only)
    x_in, z = in_proj(x')                               each (B, L, d_inner)
    per branch (forward; plus time-reversed if bidirectional):
        x_c = silu(causal depthwise conv1d(x_in))
        h   = concat(x_c, audio_proj(a))                descriptor (x_c alone if not guided)
        delta, B, C = projections of h                  delta via low-rank dt_rank -> d_inner
        y   = selective_scan(x_c, delta, A, B, C, D, z)
    out = x + dropout(out_proj(sum of branches))        residual

Padding: with ``valid`` (B, L) given, x_in and x_c are zeroed on padded frames, so the state
stays exactly zero through them (h = exp(delta A) h + delta B x with h = 0, x = 0) and the
convolution sees the zeros an unpadded sequence starts with. The time-reversed branch of a
right-padded sequence therefore meets its last real frame as if the sequence ended there:
valid outputs equal those of the unpadded sequence.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from wildaffect.models.layers.scan import selective_scan

# Mamba's initialisation of the time step (state-spaces/mamba, mamba_simple.py).
DT_MIN = 1e-3
DT_MAX = 1e-1
DT_INIT_FLOOR = 1e-4

# Streaming state: (conv tail (B, d_inner, d_conv-1), ssm state (B, d_inner, N)).
BlockState = tuple[torch.Tensor, torch.Tensor]


def resolve_dt_rank(dt_rank: int | str, d_model: int) -> int:
    """Mamba's default: ceil(d_model / 16)."""
    return math.ceil(d_model / 16) if dt_rank == "auto" else int(dt_rank)


class SSMBranch(nn.Module):
    """One selective-scan path: causal conv -> (delta, B, C) from the descriptor -> scan.

    Paper: "our AG-SSM fuses both modalities to generate the selection parameters. First, we
    compute an audio-visual semantic descriptor [...] where [;] denotes channel-wise
    concatenation. We then project this fused descriptor to dynamically synthesize the discrete
    SSM parameters for the visual stream." With ``d_audio=None`` the descriptor is the visual
    input alone (plain Mamba).
    """

    def __init__(
        self, d_inner: int, d_state: int, d_conv: int, dt_rank: int, d_audio: int | None
    ) -> None:
        super().__init__()
        self.d_inner, self.d_state, self.d_conv, self.dt_rank = d_inner, d_state, d_conv, dt_rank
        # Depthwise, no padding: causality comes from the tail we prepend in forward().
        self.conv1d = nn.Conv1d(d_inner, d_inner, d_conv, groups=d_inner)
        self.audio_proj = nn.Linear(d_audio, d_inner) if d_audio is not None else None
        d_descriptor = 2 * d_inner if d_audio is not None else d_inner
        self.x_proj = nn.Linear(d_descriptor, dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(dt_rank, d_inner)
        self._init_dt_proj()
        # S4D-real: A = -(1..N) per channel, stored as log so that A stays negative.
        a_init = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(d_inner, 1)
        self.A_log = nn.Parameter(torch.log(a_init))  # (d_inner, N)
        self.D = nn.Parameter(torch.ones(d_inner))  # (d_inner,)
        self.A_log._no_weight_decay = True
        self.D._no_weight_decay = True

    def _init_dt_proj(self) -> None:
        """Mamba's delta init: softplus(bias) ~ log-uniform in [DT_MIN, DT_MAX]."""
        std = self.dt_rank**-0.5
        nn.init.uniform_(self.dt_proj.weight, -std, std)
        dt = torch.exp(
            torch.rand(self.d_inner) * (math.log(DT_MAX) - math.log(DT_MIN)) + math.log(DT_MIN)
        ).clamp(min=DT_INIT_FLOOR)
        inv_softplus_dt = dt + torch.log(-torch.expm1(-dt))
        with torch.no_grad():
            self.dt_proj.bias.copy_(inv_softplus_dt)
        self.dt_proj.bias._no_reinit = True

    def selection_params(
        self, x_conv: torch.Tensor, audio: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x_conv: (B, L, d_inner), audio: (B, L, d_audio) -> delta (pre-softplus, no bias)
        (B, d_inner, L), B and C (B, N, L).

        Paper: "[delta] acts as an audio-guided temporal gate: when a salient audio cue (e.g., a
        sigh) is detected [...], [it] induces a larger [delta], forcing the visual state to
        focus heavily on the current frame's visual input."
        """
        descriptor = x_conv
        if self.audio_proj is not None:
            descriptor = torch.cat([x_conv, self.audio_proj(audio)], dim=-1)
        dt, b, c = self.x_proj(descriptor).split([self.dt_rank, self.d_state, self.d_state], -1)
        delta = F.linear(dt, self.dt_proj.weight)  # bias is added (then softplus) in the scan
        return delta.transpose(1, 2), b.transpose(1, 2), c.transpose(1, 2)

    def forward(
        self,
        x_in: torch.Tensor,
        z: torch.Tensor,
        audio: torch.Tensor | None,
        state: BlockState | None = None,
        valid: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, BlockState]:
        """x_in, z: (B, L, d_inner); audio: (B, L, d_audio); valid: (B, L) bool, False on
        padding (kept out of the state) -> y (B, L, d_inner), new state."""
        batch = x_in.shape[0]
        keep = None if valid is None else valid[:, None, :].to(x_in.dtype)  # (B, 1, L)
        x_in = x_in.transpose(1, 2)  # (B, d_inner, L)
        if keep is not None:
            x_in = x_in * keep
        if state is None:
            tail = x_in.new_zeros(batch, self.d_inner, self.d_conv - 1)
            ssm_state = None
        else:
            tail, ssm_state = state
        x_padded = torch.cat([tail.to(x_in.dtype), x_in], dim=-1)  # (B, d_inner, K-1+L)
        new_tail = x_padded[:, :, x_padded.shape[-1] - (self.d_conv - 1) :]
        x_conv = F.silu(self.conv1d(x_padded))  # (B, d_inner, L): causal
        if keep is not None:
            x_conv = x_conv * keep
        delta, b, c = self.selection_params(x_conv.transpose(1, 2), audio)
        y, new_ssm_state = selective_scan(
            x_conv,
            delta,
            -torch.exp(self.A_log.float()),
            b,
            c,
            D=self.D.float(),
            z=z.transpose(1, 2),
            delta_bias=self.dt_proj.bias.float(),
            delta_softplus=True,
            initial_state=ssm_state,
            return_final_state=True,
        )
        return y.transpose(1, 2), (new_tail, new_ssm_state)


class AGSSMBlock(nn.Module):
    """Pre-norm residual AG-SSM (or plain Mamba / Vision-Mamba) block.

    Paper: "we propose an Audio-Guided Selective State Space Model (AG-SSM). This novel
    formulation deeply integrates the paralinguistic audio cues to dynamically modulate the
    temporal state transitions of the visual stream." and "we also introduce an audio-driven
    gating mechanism directly applied to the visual input via element-wise multiplication".

    Missing audio (``audio`` None or ``audio_mask`` False at a frame) is replaced by a learned
    "no audio" embedding, so gate and descriptor always see a defined vector.
    """

    def __init__(
        self,
        d_model: int,
        d_audio: int,
        d_state: int = 16,
        d_inner: int = 64,
        d_conv: int = 4,
        dt_rank: int | str = "auto",
        bidirectional: bool = False,
        audio_guided: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if d_conv < 1:
            raise ValueError(f"AGSSMBlock: d_conv must be >= 1, got {d_conv}")
        self.d_model, self.d_audio, self.d_inner = d_model, d_audio, d_inner
        self.bidirectional, self.audio_guided = bidirectional, audio_guided
        rank = resolve_dt_rank(dt_rank, d_model)
        branch_audio = d_audio if audio_guided else None
        self.norm = nn.LayerNorm(d_model)
        if audio_guided:
            self.no_audio = nn.Parameter(torch.zeros(d_audio))  # learned "no audio" vector
            self.gate = nn.Linear(d_audio, d_model)  # x' = sigmoid(W_g a) * x
        self.in_proj = nn.Linear(d_model, 2 * d_inner)
        self.forward_branch = SSMBranch(d_inner, d_state, d_conv, rank, branch_audio)
        self.backward_branch = (
            SSMBranch(d_inner, d_state, d_conv, rank, branch_audio) if bidirectional else None
        )
        self.out_proj = nn.Linear(d_inner, d_model)
        self.dropout = nn.Dropout(dropout)

    def fill_audio(
        self, audio: torch.Tensor | None, audio_mask: torch.Tensor | None, like: torch.Tensor
    ) -> torch.Tensor:
        """audio: (B, L, d_audio) or None; mask: (B, L) True = audio present -> (B, L, d_audio)
        with absent frames replaced by the learned no-audio embedding."""
        batch, length, _ = like.shape
        missing = self.no_audio.to(like.dtype).expand(batch, length, self.d_audio)
        if audio is None:
            return missing
        if audio.shape[:2] != (batch, length) or audio.shape[-1] != self.d_audio:
            raise ValueError(
                f"AGSSMBlock: audio must be (B={batch}, L={length}, {self.d_audio}), "
                f"got {tuple(audio.shape)}"
            )
        if audio_mask is None:
            return audio
        return torch.where(audio_mask[..., None], audio, missing)

    def mix_inputs(
        self, x: torch.Tensor, audio: torch.Tensor | None, audio_mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Everything before the branches: norm, audio gate, in_proj.

        Returns x_in, z: (B, L, d_inner) and the filled audio (B, L, d_audio) or None.
        """
        x_n = self.norm(x)
        a = None
        if self.audio_guided:
            a = self.fill_audio(audio, audio_mask, x)
            x_n = torch.sigmoid(self.gate(a)) * x_n
        x_in, z = self.in_proj(x_n).chunk(2, dim=-1)
        return x_in, z, a

    def forward(
        self,
        x: torch.Tensor,
        audio: torch.Tensor | None = None,
        audio_mask: torch.Tensor | None = None,
        state: BlockState | None = None,
        valid: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, BlockState | None]:
        """x: (B, L, d_model); valid: (B, L) bool, False on padding, or None ->
        (y: (B, L, d_model), new state; None when bidirectional)."""
        if state is not None and self.bidirectional:
            raise ValueError(
                "AGSSMBlock: streaming state is not defined for a bidirectional block "
                "(its backward branch needs the whole sequence); pass state=None"
            )
        x_in, z, a = self.mix_inputs(x, audio, audio_mask)
        y, new_state = self.forward_branch(x_in, z, a, state, valid)
        if self.backward_branch is not None:
            y_back, _ = self.backward_branch(
                x_in.flip(1), z.flip(1), _flip_time(a), valid=_flip_time(valid)
            )
            y = y + y_back.flip(1)
            new_state = None
        return x + self.dropout(self.out_proj(y)), new_state


def _flip_time(t: torch.Tensor | None) -> torch.Tensor | None:
    """(B, L, ...) -> the same sequence reversed in time (None stays None)."""
    return None if t is None else t.flip(1)


class AGSSM(nn.Module):
    """A stack of :class:`AGSSMBlock` with a final LayerNorm (pre-norm blocks need one)."""

    def __init__(self, d_model: int, d_audio: int, n_layers: int, **block_kwargs) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            AGSSMBlock(d_model, d_audio, **block_kwargs) for _ in range(n_layers)
        )
        self.norm = nn.LayerNorm(d_model)

    def forward(
        self,
        x: torch.Tensor,
        audio: torch.Tensor | None = None,
        audio_mask: torch.Tensor | None = None,
        state: list[BlockState] | None = None,
        valid: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, list[BlockState | None]]:
        """x: (B, L, d_model); valid: (B, L) bool, False on padding -> (B, L, d_model),
        per-layer states."""
        if state is not None and len(state) != len(self.layers):
            raise ValueError(f"AGSSM: expected {len(self.layers)} layer states, got {len(state)}")
        new_states = []
        for i, layer in enumerate(self.layers):
            layer_state = None if state is None else state[i]
            x, layer_state = layer(x, audio, audio_mask, layer_state, valid)
            new_states.append(layer_state)
        return self.norm(x), new_states
