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
- ``"chunked"``: pure PyTorch, a custom autograd function run block by block over time
  (blocks of ~4 MB of state, carried across). Inside a block the recurrence
  h_t = a_t h_{t-1} + b_t is solved by a two-level scan (a vectorised sequential pass inside
  ~sqrt(l) sub-chunks at once, a short pass over the sub-chunk carries, a broadcast fix-up). It
  only ever multiplies by a_t in (0, 1] and products of them, so nothing can overflow (no
  exp(-cumsum) tricks). The backward pass recomputes each block from its saved boundary state
  and runs the adjoint as a reverse scan (g_t = dh_t + a_{t+1} g_{t+1}; dL/da_t = g_t h_{t-1};
  dL/db_t = g_t). Memory is O(B*D*L + B*D*N*L/block), time ~linear in L.
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

    ``chunk_size`` (chunked path only) overrides the automatic block length (time steps per
    block whose state is carried to the next); it changes speed and memory, never the result.
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
        initial_state.float() if initial_state is not None else u.new_zeros(batch, dim, A.shape[1])
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
    for c in range(n_chunks - 1, -1, -1) if reverse else range(n_chunks):
        entry[c] = state
        state = torch.addcmul(h[c, last], prod[c, last], state)
    h.addcmul_(prod, entry[:, None, :])
    h = h.view(n_chunks * k, width)
    return h[pad:] if reverse else h[:length]


def _auto_block_len(width: int, length: int) -> int:
    """Steps per block so one (steps, B*D*N) float32 temporary is ~4 MB: it stays in cache and
    is recycled by the allocator, where whole-sequence temporaries cost page faults."""
    return max(1, min(length, 2 ** max(4, round(math.log2(max(1, 2**20 // width))))))


class _ChunkedSelectiveScan(torch.autograd.Function):
    """The discretised scan and read-out, fused and run block by block over time.

    Forward, per block of time steps: build a = exp(delta*A) and b = delta*B*u (only for this
    block), solve the recurrence with :func:`_linear_scan` from the carried state, read out
    y = sum_n C h. Only the inputs and the state at each block boundary are saved, so memory is
    O(B*D*L + B*D*N*L/block) and every large temporary is cache-sized.
    Backward, blocks in reverse: recompute a, b, h from the saved boundary state, then the
    adjoint g_t = dL/dh_t + a_{t+1} g_{t+1} (a reverse scan, carried across blocks), and
        dL/da_t = g_t h_{t-1},  dL/db_t = g_t,  dL/dC_t = sum_d dy_t h_t,
    chained through a = exp(delta*A), b = delta*B*u to delta, u, A, B.
    """

    @staticmethod
    def forward(ctx, delta, u, A, B, C, h0, block):
        # delta, u: (L, Bt, D); A: (D, N); B, C: (L, Bt, N); h0: (Bt, D, N)  (time-major)
        length, batch, dim = u.shape
        starts = range(0, length, block)
        y = u.new_empty(length, batch, dim)
        boundary = u.new_empty(len(starts), batch, dim, A.shape[1])  # state entering block
        state = h0
        for i, s in enumerate(starts):
            e = min(s + block, length)
            boundary[i] = state
            a, b = _discretise(delta[s:e], u[s:e], A, B[s:e])
            h = _scan_block(a, b, state)  # (l, Bt, D, N)
            torch.sum(h * C[s:e, :, None, :], dim=-1, out=y[s:e])
            state = h[-1].clone()
        ctx.save_for_backward(delta, u, A, B, C, boundary)
        ctx.block = block
        return y, state

    @staticmethod
    def backward(ctx, grad_y, grad_final):
        delta, u, A, B, C, boundary = ctx.saved_tensors
        length = u.shape[0]
        grad_delta, grad_u = torch.empty_like(delta), torch.empty_like(u)
        grad_B, grad_C = torch.empty_like(B), torch.empty_like(C)
        grad_A = torch.zeros_like(A)
        grad_y = grad_y.contiguous()
        # carry = dL/d(state leaving the block); for the last block, the final-state gradient.
        carry = torch.zeros_like(boundary[0]) if grad_final is None else grad_final.clone()
        starts = list(range(0, length, ctx.block))
        for i in range(len(starts) - 1, -1, -1):
            s, e = starts[i], min(starts[i] + ctx.block, length)
            d, x, b_in, c, dy = delta[s:e], u[s:e], B[s:e], C[s:e], grad_y[s:e]
            a, b = _discretise(d, x, A, b_in)
            h = _scan_block(a, b, boundary[i])  # recomputed: (l, Bt, D, N)
            # Multiply-and-sum rather than einsum: einsum becomes L*Bt tiny matmuls here.
            torch.sum(dy[..., None] * h, dim=2, out=grad_C[s:e])  # sum over D
            grad_h = dy[..., None] * c[:, :, None, :]  # (l, Bt, D, N)
            grad_h[-1] += carry
            g = _adjoint_block(a, grad_h)  # (l, Bt, D, N)
            carry = a[0] * g[0]
            # dL/d(delta*A) = g_t * h_{t-1} * a_t, with h_{-1} = the boundary state.
            grad_log_a = torch.empty_like(h)
            torch.mul(g[1:], h[:-1], out=grad_log_a[1:])
            torch.mul(g[0], boundary[i], out=grad_log_a[0])
            grad_log_a.mul_(a)
            g_b = (g * b_in[:, :, None, :]).sum(-1)  # sum_n g B: (l, Bt, D)
            grad_delta[s:e] = (grad_log_a * A).sum(-1) + g_b * x
            grad_u[s:e] = g_b * d
            torch.sum(g * (d * x)[..., None], dim=2, out=grad_B[s:e])
            grad_A += (grad_log_a * d[..., None]).sum((0, 1))
        return grad_delta, grad_u, grad_A, grad_B, grad_C, carry, None


def _discretise(delta, u, A, B) -> tuple[torch.Tensor, torch.Tensor]:
    """delta, u: (l, Bt, D); A: (D, N); B: (l, Bt, N) -> a = exp(delta A), b = delta B u."""
    a = torch.exp(delta[..., None] * A)  # (l, Bt, D, N)
    b = (delta * u)[..., None] * B[:, :, None, :]  # (l, Bt, D, N)
    return a, b


def _scan_block(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
    """h_t = a_t h_{t-1} + b_t over one block; a, b: (l, Bt, D, N), h0: (Bt, D, N)."""
    length = a.shape[0]
    h = _linear_scan(
        a.view(length, -1), b.view(length, -1), h0.reshape(-1), _auto_chunk_size(length)
    )
    return h.view(a.shape)


def _adjoint_block(a: torch.Tensor, grad_h: torch.Tensor) -> torch.Tensor:
    """g_t = grad_h_t + a_{t+1} g_{t+1} within a block, g_{l-1} = grad_h_{l-1} (carry included)."""
    length = a.shape[0]
    g = torch.empty_like(grad_h)
    g[-1] = grad_h[-1]
    if length > 1:
        flat = _linear_scan(
            a[1:].reshape(length - 1, -1),
            grad_h[:-1].reshape(length - 1, -1),
            grad_h[-1].reshape(-1),
            _auto_chunk_size(length - 1),
            reverse=True,
        )
        g[:-1] = flat.view(grad_h[:-1].shape)
    return g


def _selective_scan_chunked(
    u, delta, A, B, C, D, z, delta_bias, delta_softplus, initial_state, chunk_size
):
    """Time-major small inputs -> :class:`_ChunkedSelectiveScan` -> skip term and gate."""
    dtype = u.dtype
    u = u.float()
    delta = _prepare_delta(delta, delta_bias, delta_softplus)
    batch, dim, length = u.shape
    n_state = A.shape[1]
    h0 = initial_state.float() if initial_state is not None else u.new_zeros(batch, dim, n_state)
    if length == 0:
        return _finish_output(u.new_zeros(batch, dim, 0), u, D, z, dtype), h0

    def time_major(t: torch.Tensor) -> torch.Tensor:  # (B, X, L) -> (L, B, X) contiguous
        return t.float().permute(2, 0, 1).contiguous()

    block = chunk_size or _auto_block_len(batch * dim * n_state, length)
    y, final_state = _ChunkedSelectiveScan.apply(
        time_major(delta), time_major(u), A.float(), time_major(B), time_major(C), h0, block
    )
    return _finish_output(y.permute(1, 2, 0), u, D, z, dtype), final_state


# --------------------------------------------------------------------------------------------
# CUDA: mamba_ssm's fused kernel (not importable on this CPU-only machine)


def _cuda_kernel_usable(u: torch.Tensor) -> bool:
    if not u.is_cuda:
        return False
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn  # noqa: F401
    except (ImportError, OSError):  # not installed, or a broken CUDA extension build
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
