"""``viewer.html``: the deep-zoom pyramid in OpenSeadragon, working offline from the run folder.

OpenSeadragon (pinned, with its licence, in render/assets/openseadragon) is copied next to the
page. The page holds the DZI descriptor itself: a browser refuses to read ``render.dzi`` through
XMLHttpRequest from ``file://``, but loads the tiles as images.
"""

from __future__ import annotations

import html
import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

__all__ = ["ASSETS", "read_dzi", "tile_source", "write_viewer"]

ASSETS = Path(__file__).resolve().parent / "assets" / "openseadragon"
DZI_NS = "{http://schemas.microsoft.com/deepzoom/2008}"


def read_dzi(dzi: Path) -> dict[str, str]:
    """The descriptor's Format, Overlap, TileSize, Width and Height."""
    root = ET.parse(dzi).getroot()
    size = root.find(f"{DZI_NS}Size")
    if size is None:
        raise ValueError(f"{dzi} is not a DZI descriptor: it has no Size")
    return {**root.attrib, **size.attrib}


def tile_source(dzi: Path) -> dict[str, object]:
    """The descriptor ``dzi`` as OpenSeadragon's inline DZI tile source, tiles beside it."""
    dz = read_dzi(dzi)
    return {
        "Image": {
            "xmlns": DZI_NS.strip("{}"),
            "Url": f"{dzi.stem}_files/",
            "Format": dz["Format"],
            "Overlap": dz["Overlap"],
            "TileSize": dz["TileSize"],
            "Size": {"Width": dz["Width"], "Height": dz["Height"]},
        }
    }


def page(source: dict[str, object], title: str) -> str:
    """The viewer page for an inline tile source."""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>html, body, #viewer {{ margin: 0; width: 100%; height: 100%; background: #111; }}</style>
</head><body><div id="viewer"></div>
<script src="openseadragon/openseadragon.min.js"></script>
<script>
window.viewer = OpenSeadragon({{
  id: "viewer",
  prefixUrl: "openseadragon/images/",
  tileSources: {json.dumps(source)},
  // A page opened from file:// may not upload its tiles to WebGL (a browser rule); 2-D canvas may.
  drawer: "canvas",
  showNavigator: true,
  maxZoomPixelRatio: 4
}});
</script></body></html>
"""


def write_viewer(run_dir: Path) -> Path:
    """``viewer.html`` and ``openseadragon/`` in ``run_dir``, for its ``render.dzi``."""
    # Here, not at the top: Hydra imports this module (through the gallery callback) before
    # a render checks its values, and render.outputs imports torch (seconds).
    from render.outputs import atomic_path

    shutil.copytree(ASSETS, run_dir / "openseadragon", dirs_exist_ok=True)
    path = run_dir / "viewer.html"
    with atomic_path(path) as tmp:
        tmp.write_text(
            page(tile_source(run_dir / "render.dzi"), f"{run_dir.name}: render"), encoding="utf-8"
        )
    return path
