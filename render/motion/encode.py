"""``render.mp4``: frames encoded as H.264 in yuv420p (what every player plays) through PyAV."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
from PIL import Image

from render.errors import UserError
from render.outputs import atomic_path

log = logging.getLogger(__name__)

#: Frames per second are kept as a fraction with at most this denominator (29.97 = 30000/1001).
FPS_DENOMINATOR = 1001


def write_mp4(
    frames: Iterable[Path | Image.Image],
    path: Path,
    fps: float,
    crf: int = 18,
    comment: str | None = None,
) -> int:
    """Encode ``frames`` (picture files or pillow images, all one size) into ``path``,
    atomically, at ``fps`` frames per second and quality ``crf`` (x264's constant rate factor, 0
    lossless to 51); ``comment`` goes into the file's metadata. Returns the frames written.

    yuv420p halves the colour resolution, so a frame of odd width or height loses its last
    column or row in the video (the frames' PNGs keep it).
    """
    if not 0 <= crf <= 51:
        raise UserError(f"video.crf must be an integer in [0, 51], got {crf}")
    count = 0
    with atomic_path(path) as tmp, av.open(str(tmp), mode="w", format="mp4") as container:
        if comment:
            container.metadata["comment"] = comment
        stream: av.VideoStream | None = None
        for item in frames:
            if isinstance(item, Image.Image):
                image = item.convert("RGB")
            else:
                with Image.open(item) as picture:
                    image = picture.convert("RGB")
            if stream is None:
                width, height = image.width // 2 * 2, image.height // 2 * 2
                if (width, height) != image.size:
                    log.info(
                        "render.mp4: %dx%d frames are cut to %dx%d (yuv420p needs even sizes)",
                        *image.size,
                        width,
                        height,
                    )
                stream = container.add_stream(
                    "libx264", rate=Fraction(fps).limit_denominator(FPS_DENOMINATOR)
                )
                stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
                stream.options = {"crf": str(crf)}
            if image.size != (stream.width, stream.height):
                image = image.crop((0, 0, stream.width, stream.height))
            frame = av.VideoFrame.from_image(image).reformat(format="yuv420p")
            container.mux(stream.encode(frame))
            count += 1
        if stream is not None:
            container.mux(stream.encode(None))  # the frames x264 still holds
    return count
