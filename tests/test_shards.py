"""A canvas sharded over ranks: ownership, seeded rows, blends and rows from parts of the tiles."""

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torchvision.transforms.v2.functional as TF
from torchvision.transforms import InterpolationMode

from render import shards
from render.context import shrink
from render.params import FourierParam, PixelParam
from tiling import TilingModule

GEOMETRIES = [
    dict(tile_size=16, tile_overlap=0.25, base_size=(50, 61)),
    dict(tile_size=(12, 16), tile_overlap=0.6, base_size=(40, 45), placement="even"),
    dict(tile_size=16, tile_overlap=(5, 3), base_size=(16, 70), window="cosine"),
]


def test_each_rank_owns_a_contiguous_block_and_the_blocks_cover_the_canvas():
    for tiles in (1, 7, 10, 33):
        for world in (1, 2, 3, 5):
            blocks = [shards.owned_tiles(tiles, r, world) for r in range(world)]
            assert [i for b in blocks for i in b] == list(range(tiles))
            assert max(map(len, blocks)) - min(map(len, blocks)) <= 1
            owners = shards.tile_owners(tiles, world)
            assert all(owners[i] == r for r, b in enumerate(blocks) for i in b)


@pytest.mark.parametrize("param", [FourierParam((12, 10)), PixelParam((5, 3)), PixelParam((1, 1))])
def test_a_ranks_rows_are_the_one_process_rows_whatever_the_world_size(param):
    for tiles in (1, 3, 17, 40):
        whole = param.init(tiles, torch.Generator().manual_seed(7))
        for world in (1, 2, 3, 4):
            for rank in range(world):
                own = shards.owned_tiles(tiles, rank, world)
                rows = shards.init_rows(param, tiles, own, torch.Generator().manual_seed(7))
                assert torch.equal(rows, whole[own.start : own.stop]), (tiles, world, rank)


def _blocks(tiling, world):
    total = tiling.num_tiles()
    return [shards.owned_tiles(total, r, world) for r in range(world)]


@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("world", [2, 3, 5])
def test_blending_own_tiles_with_their_halo_equals_the_one_process_blend(geometry, world):
    tiling = TilingModule(**geometry)
    tiles = torch.rand(tiling.num_tiles(), 3, *tiling._tile_size, generator=torch.Generator())
    expected = tiling(tiles)
    parts = []
    for block in _blocks(tiling, world):
        own = torch.arange(block.start, block.stop)
        halo = shards.neighbours(tiling, own)
        halo = halo[(halo < block.start) | (halo >= block.stop)]
        assert len(halo) < tiling.num_tiles() - len(own) or world <= 2 or len(own) == 0
        top, bottom = shards.tile_rows(tiling, block)
        band = shards.place(tiling, [(tiles[own], own), (tiles[halo], halo)], top, bottom)
        mine = tiles[own].clone()
        parts.append(shards.crop_tiles(tiling, band, top, own, out=mine))
    assert torch.equal(torch.cat(parts), expected), "bit for bit"


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_the_ranks_thumbnails_of_their_own_tiles_sum_to_the_canvas_thumbnail(geometry):
    tiling = TilingModule(**geometry)
    tiles = torch.rand(tiling.num_tiles(), 3, *tiling._tile_size)
    canvas = tiling.rebuild_with_masks(tiles)
    height = canvas.shape[2]
    for size in [(9, 13), (height, 7)]:
        total = torch.zeros(1, 3, *size)
        for block in _blocks(tiling, 3):
            own = torch.arange(block.start, block.stop)
            top, bottom = shards.tile_rows(tiling, block)
            band = shards.place(tiling, [(tiles[own], own)], top, bottom)
            total += shards.shrink_rows(band, top, height, size)
        torch.testing.assert_close(total, shrink(canvas, size), atol=1e-5, rtol=0)


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_rows_from_the_tiles_over_them_and_their_enlargement_match_the_whole_canvas(geometry):
    tiling = TilingModule(**geometry)
    tiles = torch.rand(tiling.num_tiles(), 3, *tiling._tile_size)
    canvas = tiling.rebuild_with_masks(tiles)
    height, width = canvas.shape[2:]
    for top, bottom in [(0, height), (3, 11), (height - 5, height)]:
        idx = shards.tiles_in_rows(tiling, top, bottom)
        rows = shards.place(tiling, [(tiles[idx], idx)], top, bottom)
        assert torch.equal(rows, canvas[:, :, top:bottom])
    for size_out in [(2 * height, 2 * width), (height * 3 // 2 + 1, width + 5), (height, width)]:
        big = TF.resize(canvas, list(size_out), InterpolationMode.BICUBIC, antialias=True)
        last = size_out[0]
        for out in [(0, last), (0, 7), (5, min(23, last)), (last - 6, last)]:
            source = shards.source_rows(out, height, size_out[0])
            got = shards.upsample_rows(
                canvas[:, :, source[0] : source[1]],
                source[0],
                (height, width),
                size_out,
                range(*out),
            )
            torch.testing.assert_close(got, big[:, :, out[0] : out[1]], atol=1e-5, rtol=0)
            # One process enlarges its canvas band by band: the ranks' rows, bit for bit.
            assert torch.equal(
                shards.upsample(canvas, size_out, rows=4)[:, :, out[0] : out[1]], got
            )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _gather_on_rank_0(rank: int, world: int, port: int, queue) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        tiling = TilingModule(tile_size=16, tile_overlap=0.25, base_size=(40, 64))
        total = tiling.num_tiles()
        every = torch.rand(total, 3, 16, 16, generator=torch.Generator().manual_seed(1))
        own = shards.owned_tiles(total, rank, world)
        mine = every[own.start : own.stop].clone()
        # The strips' pattern: every rank asks for the same bands, in turn; rank 0 gets them.
        for band in torch.arange(total).split(5):
            wanted = [band if r == 0 else band[:0] for r in range(world)]
            got = shards.exchange(mine, own, total, wanted, torch.device("cpu"))
            if rank == 0:
                assert torch.equal(got, every[band])
            else:
                assert len(got) == 0
        # A halo exchange: each rank receives exactly its neighbours' tiles.
        wanted = []
        for block in (shards.owned_tiles(total, r, world) for r in range(world)):
            near = shards.neighbours(tiling, torch.arange(block.start, block.stop))
            wanted.append(near[(near < block.start) | (near >= block.stop)])
        got = shards.exchange(mine, own, total, wanted, torch.device("cpu"))
        assert torch.equal(got, every[wanted[rank]])
        queue.put((rank, "ok"))
    except Exception as error:  # reported to the test, which fails naming it
        queue.put((rank, repr(error)))
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("world", [2, pytest.param(3, marks=pytest.mark.slow)])
def test_owners_send_rank_0_the_tiles_it_asks_for_and_neighbours_their_halo(world):
    context = mp.get_context("spawn")
    queue = context.Queue()
    port = _free_port()
    processes = [
        context.Process(target=_gather_on_rank_0, args=(r, world, port, queue))
        for r in range(world)
    ]
    for p in processes:
        p.start()
    results = dict(queue.get(timeout=120) for _ in processes)
    for p in processes:
        p.join(timeout=60)
    assert results == {r: "ok" for r in range(world)}
