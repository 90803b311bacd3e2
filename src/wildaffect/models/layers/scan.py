"""Selective scan (the S6 recurrence of Mamba), with a slow oracle and a fast CPU path.

One public function, :func:`selective_scan`, with the signature of
``mamba_ssm.ops.selective_scan_interface.selective_scan_fn`` (plus ``initial_state``):

    u, delta, z: (B, D, L)   A: (D, N) real, negative (A = -exp(A_log))
    B, C:        (B, N, L)   D: (D,)   initial / final state: (B, D, N)

Per channel d and state n (all shapes as above):

    delta_t = softplus(delta_t + delta_bias)                    (if delta_softplus)
    h_t     = exp(delta_t * A) * h_{t-1} + delta_t * B_t * u_t   (h_{-1} = initial_state or 0)
    y_t     = sum_n C_t h_t + D * u_t,   then  y *= silu(z)      (if z is given)

Discretisation: zero-order hold for A (dA = exp(delta*A)) but the simplified Euler form for B
(dB*u = delta*B*u) instead of ZOH's (dA - 1)/A * B. This is exactly what Mamba's CUDA kernel and
its ``selective_scan_ref`` compute: the two agree to first order in delta, Euler needs no
division by A, and matching Mamba keeps weights and the CUDA path interchangeable.

Implementations (``impl``):

- ``"reference"``: a plain Python loop over time. The oracle for tests; slow.
- ``"chunked"``: pure PyTorch. The recurrence h_t = a_t h_{t-1} + b_t is solved by a two-level
  scan (time cut into ~sqrt(L) chunks: a vectorised sequential pass inside all chunks at once, a
  short sequential pass over chunk carries, then a broadcast fix-up). It only multiplies by
  a_t in (0, 1] and cumulative products of them, so nothing can overflow. A custom autograd
  function makes the backward pass a reverse scan (g_t = dh_t + a_{t+1} g_{t+1};
  dL/da_t = g_t h_{t-1}; dL/db_t = g_t), so memory is O(B*D*L*N) and time ~linear in L.
- ``"cuda"``: mamba_ssm's fused kernel when importable and the inputs live on CUDA. It takes no
  initial state, so calls with ``initial_state`` use ``"chunked"`` instead.
- ``"auto"`` (default): ``"cuda"`` when possible, else ``"chunked"``.

All implementations compute in float32 and return ``y`` in the dtype of ``u``; the final state
is float32 (as in mamba_ssm).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

IMPLS = ("auto", "reference", "chunked", "cuda")


def selective_scan(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = True,
    initial_state: torch.Tensor | None = None,
    return_final_state: bool = False,
    impl: str = "auto",
    *,
    chunk_size: int | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Run the selective scan; returns ``y: (B, D, L)`` (and the final state ``(B, D, N)``).

    ``chunk_size`` (chunked path only) overrides the automatic ~sqrt(L) chunk length; it changes
    speed, never the result.
    """
    _check_shapes(u, delta, A, B, C, D, z, delta_bias, initial_state)
    if impl not in IMPLS:
        raise ValueError(f"selective_scan: impl must be one of {IMPLS}, got {impl!r}")
    if impl == "cuda" and not _cuda_kernel_usable(u):
        raise RuntimeError(
            "selective_scan(impl='cuda') needs mamba_ssm installed and inputs on a CUDA device"
        )
    if impl in ("auto", "cuda") and initial_state is None and _cuda_kernel_usable(u):
        return _selective_scan_cuda(
            u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_final_state
        )
    fn = _selective_scan_reference if impl == "reference" else _selective_scan_chunked
    y, final_state = fn(
        u, delta, A, B, C, D, z, delta_bias, delta_softplus, initial_state, chunk_size
    )
    return (y, final_state) if return_final_state else y


# --------------------------------------------------------------------------------------------
# Shared pieces


def _check_shapes(u, delta, A, B, C, D, z, delta_bias, initial_state) -> None:
    """Fail early with the offending shape instead of deep inside a broadcast."""
    if u.dim() != 3:
        raise ValueError(f"selective_scan: u must be (B, D, L), got {tuple(u.shape)}")
    batch, dim, length = u.shape
    if A.dim() != 2 or A.shape[0] != dim:
        raise ValueError(f"selective_scan: A must be (D={dim}, N), got {tuple(A.shape)}")
    n_state = A.shape[1]
    expected = {
        "delta": (delta, (batch, dim, length)),
        "B": (B, (batch, n_state, length)),
        "C": (C, (batch, n_state, length)),
        "D": (D, (dim,)),
        "z": (z, (batch, dim, length)),
        "delta_bias": (delta_bias, (dim,)),
        "initial_state": (initial_state, (batch, dim, n_state)),
    }
    for name, (tensor, shape) in expected.items():
        if tensor is not None and tuple(tensor.shape) != shape:
            raise ValueError(
                f"selective_scan: {name} must have shape {shape}, got {tuple(tensor.shape)}"
            )


def _prepare_delta(delta, delta_bias, delta_softplus) -> torch.Tensor:
    """delta: (B, D, L) -> float32, biased and made positive as requested."""
    delta = delta.float()
    if delta_bias is not None:
        delta = delta + delta_bias.float()[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    return delta


def _finish_output(y, u, D, z, dtype) -> torch.Tensor:
    """y: (B, D, L) float32 -> add the skip term D*u, gate by silu(z), cast back."""
    if D is not None:
        y = y + u * D.float()[:, None]
    if z is not None:
        y = y * F.silu(z.float())
    return y.to(dtype)


# --------------------------------------------------------------------------------------------
# Reference: the oracle


def _selective_scan_reference(
    u, delta, A, B, C, D, z, delta_bias, delta_softplus, initial_state, chunk_size
):
    """Sequential loop over time, written to be obviously correct (like mamba's scan_ref)."""
    dtype = u.dtype
    u = u.float()
    delta = _prepare_delta(delta, delta_bias, delta_softplus)
    A, B, C = A.float(), B.float(), C.float()
    batch, dim, length = u.shape
    h = (
        initial_state.float()
        if initial_state is not None
        else u.new_zeros(batch, dim, A.shape[1])
    )  # (B, D, N)
    ys = []
    for t in range(length):
        dA = torch.exp(delta[:, :, t, None] * A)  # (B, D, N)
        dBu = delta[:, :, t, None] * B[:, None, :, t] * u[:, :, t, None]  # (B, D, N)
        h = dA * h + dBu
        ys.append((h * C[:, None, :, t]).sum(-1))  # (B, D)
    y = torch.stack(ys, dim=-1) if ys else u.new_zeros(batch, dim, 0)  # (B, D, L)
    return _finish_output(y, u, D, z, dtype), h


# --------------------------------------------------------------------------------------------
# Chunked: the fast pure-PyTorch path


def _auto_chunk_size(length: int) -> int:
    """~sqrt(L) balances the two Python loops (K steps inside chunks, L/K over chunk carries);
    a power of two so that power-of-two lengths need no padding."""
    return 2 ** math.ceil(math.log2(math.sqrt(max(length, 1))))


def _linear_scan(
    a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor, chunk: int, reverse: bool = False
) -> torch.Tensor:
    """Solve h_t = a_t * h_{t-1} + b_t for all t; a, b: (L, M), h0: (M,) -> h: (L, M).

    With ``reverse`` time runs backwards: h_t = a_t * h_{t+1} + b_t, h0 being the state after
    the end. Two levels: time is cut into C chunks of K steps (padded at the far end with a=1,
    b=0, which leaves every real step unchanged), then
      1. inside every chunk at once, a sequential pass from a zero state gives the local h and
         the running product P of a (values in (0, 1]: may underflow to 0, never overflows);
      2. a sequential pass over the C chunk ends carries the true state across chunks;
      3. fix-up: h_t = local_t + P_t * state_entering_the_chunk.
    No autograd graph is built here (see :class:`_LinearScan`).
    """
    length, width = a.shape
    k = max(1, min(chunk, length))
    n_chunks = math.ceil(length / k)
    pad = n_chunks * k - length
    real = slice(pad, None) if reverse else slice(0, length)  # where the real steps go
    padding = slice(0, pad) if reverse else slice(length, None)
    h = b.new_empty(n_chunks * k, width)  # becomes the local scan
    prod = a.new_empty(n_chunks * k, width)  # becomes the running product of a
    h[real], prod[real] = b, a
    h[padding], prod[padding] = 0.0, 1.0
    h, prod = h.view(n_chunks, k, width), prod.view(n_chunks, k, width)  # (C, K, M)
    steps = range(k - 2, -1, -1) if reverse else range(1, k)
    for step in steps:
        prev = step + 1 if reverse else step - 1
        h[:, step].addcmul_(prod[:, step], h[:, prev])  # prod[:, step] still holds a_step here
        prod[:, step].mul_(prod[:, prev])

    entry = torch.empty(n_chunks, width, dtype=a.dtype, device=a.device)  # state entering chunk
    state, last = h0, (0 if reverse else k - 1)
    for c in (range(n_chunks - 1, -1, -1) if reverse else range(n_chunks)):
        entry[c] = state
        state = torch.addcmul(h[c, last], prod[c, last], state)
    h.addcmul_(prod, entry[:, None, :])
    h = h.view(n_chunks * k, width)
    return h[pad:] if reverse else h[:length]


class _LinearScan(torch.autograd.Function):
    """h = scan(a, b, h0) with a reverse-scan backward, so autograd stores only a, h, h0."""

    @staticmethod
    def forward(ctx, a, b, h0, chunk):  # a, b: (L, M), h0: (M,)
        h = _linear_scan(a, b, h0, chunk)
        ctx.save_for_backward(a, h, h0)
        ctx.chunk = chunk
        return h

    @staticmethod
    def backward(ctx, grad_h):  # grad_h: (L, M)
        a, h, h0 = ctx.saved_tensors
        # g_t = grad_h_t + a_{t+1} g_{t+1} with g_{L-1} = grad_h_{L-1}: a reverse scan.
        g = torch.empty_like(grad_h)
        g[-1] = grad_h[-1]
        if len(g) > 1:
            g[:-1] = _linear_scan(a[1:], grad_h[:-1], grad_h[-1], ctx.chunk, reverse=True)
        grad_a = torch.empty_like(a)  # dL/da_t = g_t * h_{t-1}, h_{-1} = h0
        torch.mul(g[1:], h[:-1], out=grad_a[1:])
        torch.mul(g[0], h0, out=grad_a[0])
        grad_h0 = a[0] * g[0]
        return grad_a, g, grad_h0, None


def _selective_scan_chunked(
    u, delta, A, B, C, D, z, delta_bias, delta_softplus, initial_state, chunk_size
):
    """Discretise in time-major layout (L, B, D, N), scan with :class:`_LinearScan`, read out."""
    dtype = u.dtype
    u = u.float()
    delta = _prepare_delta(delta, delta_bias, delta_softplus)
    batch, dim, length = u.shape
    n_state = A.shape[1]
    if length == 0:
        h0 = initial_state.float() if initial_state is not None else u.new_zeros(batch, dim, n_state)
        return _finish_output(u.new_zeros(batch, dim, 0), u, D, z, dtype), h0

    # Small tensors made contiguous time-major first, so that the big (L, B, D, N) products
    # come out contiguous in that order (elementwise ops keep their inputs' memory layout).
    delta_t = delta.permute(2, 0, 1).contiguous()  # (L, B, D)
    u_t = u.permute(2, 0, 1).contiguous()  # (L, B, D)
    b_t = B.float().permute(2, 0, 1).contiguous()  # (L, B, N)
    a = torch.exp(delta_t[..., None] * A.float())  # (L, B, D, N)
    b = (delta_t * u_t)[..., None] * b_t[:, :, None, :]  # (L, B, D, N)
    h0 = (
        initial_state.float().reshape(-1)
        if initial_state is not None
        else u.new_zeros(batch * dim * n_state)
    )
    chunk = chunk_size or _auto_chunk_size(length)
    h = _LinearScan.apply(a.reshape(length, -1), b.reshape(length, -1), h0, chunk)
    h = h.view(length, batch, dim, n_state)  # (L, B, D, N)
    # Multiply-and-sum, not matmul: a batch of L tiny gemv calls is slow on CPU.
    c_t = C.float().permute(2, 0, 1).contiguous()  # (L, B, N)
    y = (h * c_t[:, :, None, :]).sum(-1).permute(1, 2, 0)  # (B, D, L)
    return _finish_output(y, u, D, z, dtype), h[-1]


# --------------------------------------------------------------------------------------------
# CUDA: mamba_ssm's fused kernel (not importable on this CPU-only machine)


def _cuda_kernel_usable(u: torch.Tensor) -> bool:
    if not u.is_cuda:
        return False
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn  # noqa: F401
    except Exception:  # ImportError, or a broken CUDA extension build
        return False
    return True


def _selective_scan_cuda(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_final):
    from mamba_ssm.ops.selective_scan_interface import selective_scan_fn

    out = selective_scan_fn(
        u,
        delta,
        A,
        B,
        C,
        D=D,
        z=z,
        delta_bias=delta_bias,
        delta_softplus=delta_softplus,
        return_last_state=return_final,
    )
    return out  # y, or (y, last_state) — the same contract as ours
