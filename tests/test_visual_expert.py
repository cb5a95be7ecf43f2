"""The Visual Expert's interface: shapes in 2D and 3D, matching, loading refusals."""

import pytest
import torch

from physworld.models.visual_expert import (
    VisualExpert,
    VisualExpertConfig,
    VisualExpertLoadError,
    hungarian_match,
    load_visual_expert,
    masks_from_segmentation,
)


@pytest.mark.parametrize("dims,size", [(2, 6), (3, 13)])
def test_forward_shapes(dims, size):
    torch.manual_seed(0)
    cfg = VisualExpertConfig(dims=dims, image_size=16, frames=3, slots=4, channels=8, dim=16, heads=2)
    model = VisualExpert(cfg)
    out = model(torch.rand(2, 3, 3, 16, 16))
    assert out["state"].shape == (2, 4, 3, size)
    assert out["params"].shape == (2, 4, 3)
    assert out["exist_logit"].shape == (2, 4)
    assert out["mask_logits"].shape == (2, 3, 4, 4, 4)
    if dims == 3:  # unit quaternions
        torch.testing.assert_close(out["state"][..., 3:7].norm(dim=-1), torch.ones(2, 4, 3))
    else:  # the angle comes back wrapped
        assert out["state"][..., 2].abs().max() <= torch.pi + 1e-6
    out["state"].sum().backward()  # every head is differentiable


def test_hungarian_match_finds_the_slot_that_draws_each_body():
    """Slots whose masks sit on bodies 1 and 0 are matched to them; a body never visible is skipped."""
    t, k, h = 2, 3, 4
    seg = torch.zeros(t, 8, 8, dtype=torch.int32)
    seg[:, 0:4, 0:4] = 1  # body 0 top-left
    seg[:, 4:8, 4:8] = 2  # body 1 bottom-right; body 2 never shows
    masks = masks_from_segmentation(seg, 3, h)
    assert masks.shape == (t, 3, h, h) and masks[:, 2].sum() == 0
    logits = torch.full((1, t, k, h, h), -8.0)
    logits[0, :, 0, 2:, 2:] = 8.0  # slot 0 draws body 1
    logits[0, :, 2, :2, :2] = 8.0  # slot 2 draws body 0
    outputs = {
        "mask_logits": logits,
        "state": torch.zeros(1, k, t, 6),
        "exist_logit": torch.zeros(1, k),
    }
    ((slots, bodies),) = hungarian_match(outputs, [torch.zeros(t, 3, 6)], [masks])
    assert dict(zip(bodies.tolist(), slots.tolist(), strict=True)) == {0: 2, 1: 0}


def test_load_refuses_other_files(tmp_path):
    model, info = load_visual_expert(
        None, VisualExpertConfig(image_size=16, frames=2, slots=2, dim=16, channels=8)
    )
    assert info["state_fields"][:2] == ["x", "y"] and info["frames"] == 2
    with pytest.raises(VisualExpertLoadError, match="no such checkpoint"):
        load_visual_expert(tmp_path / "missing.safetensors")
    from physworld.training.checkpoint import save_checkpoint

    other = save_checkpoint(tmp_path / "other.safetensors", model, extra={"recipe": "physics-expert"})
    with pytest.raises(VisualExpertLoadError, match="physics-expert, not of visual-expert"):
        load_visual_expert(other)
