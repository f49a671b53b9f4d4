"""The GPU path: a render step that never waits for the device, offload, tiling on CUDA.

Skipped without CUDA; ``scripts/gpu_check.py`` runs them on a GPU machine (``pytest -m cuda``).
"""

from functools import partial

import pytest
import torch
from conftest import fit

from render.models import efficientnet_lite0
from render.objectives import channel
from render.params import FourierParam
from render.renderer import TileRenderer
from render.transforms import NoTransforms, RobustnessTransforms
from tiling import TilingModule

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


class NoSyncRenderer(TileRenderer):
    """Every training step runs with CUDA's sync debug mode set to raise on any host sync."""

    def training_step(self, idx, batch_idx):
        torch.cuda.set_sync_debug_mode("error")
        try:
            return super().training_step(idx, batch_idx)
        finally:
            torch.cuda.set_sync_debug_mode("default")


def renderer(cls=TileRenderer, *, offload=False, fused=True, seed=0, transforms=None):
    return cls(
        model=efficientnet_lite0(),
        objective=channel("blocks.3.0", 5),
        param=FourierParam((64, 64)),
        transforms=transforms or RobustnessTransforms(),
        tiling=TilingModule(64, 0.25, 160),
        optimizer=partial(torch.optim.Adam, lr=0.05, fused=fused),
        tiles_per_step=3,
        seed=seed,
        offload=offload,
    )


def fit_on_gpu(module, steps, precision="32-true"):
    fit(module, steps, accelerator="gpu", devices=1, precision=precision, log_every_n_steps=50)
    return module


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_a_render_step_never_waits_for_the_device(precision):
    module = fit_on_gpu(renderer(NoSyncRenderer), 12, precision)
    assert torch.isfinite(module.store.params).all()
    assert module.store.state["step"].device.type == "cuda", "fused Adam keeps steps on device"
    assert module.store.updates.sum() == 12 * 3


def test_offload_gives_the_same_tiles_as_a_canvas_on_the_device():
    # Deterministic kernels and no warps (grid_sample's backward adds with atomics): Adam turns
    # float noise in near-zero gradients into lr-sized steps, which would hide a real mismatch.
    flags = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        first, second, offloaded = (
            fit_on_gpu(renderer(offload=offload, transforms=NoTransforms()), 6).store.params.cpu()
            for offload in (False, False, True)
        )
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = flags
    run_to_run = (first - second).abs().max()
    assert (offloaded - first).abs().max() <= run_to_run + 1e-5


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_tiling_on_cuda_equals_the_cpu(dtype):
    module = TilingModule(224, 0.25, 512)
    image = torch.rand(2, 3, 512, 512, dtype=torch.float64).to(dtype)
    cpu_tiles = module.split_into_tiles(image)
    gpu_tiles = module.split_into_tiles(image.cuda())
    assert torch.equal(gpu_tiles.cpu(), cpu_tiles)
    tol = {torch.float16: 2e-3, torch.bfloat16: 2e-2}.get(dtype, 1e-6)
    for out in (module(gpu_tiles), module.rebuild_with_masks(gpu_tiles)):
        assert out.is_cuda and out.dtype == dtype
    torch.testing.assert_close(module(gpu_tiles).cpu(), module(cpu_tiles), atol=tol, rtol=0)
    ones = torch.ones(module.num_tiles(), 3, 224, 224, dtype=dtype, device="cuda")
    torch.testing.assert_close(module(ones), ones, atol=tol, rtol=0)
