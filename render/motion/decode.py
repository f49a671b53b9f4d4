"""Reading a video with PyAV: its frames, rate and length, and its audio track for the output."""

from __future__ import annotations

import heapq
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import torch
from torch import Tensor

from render.errors import UserError

#: Audio codecs an MP4 holds as they are: their packets are copied, not re-encoded.
MP4_AUDIO = {"aac", "mp3", "alac", "opus", "flac", "ac3", "eac3"}


@dataclass(frozen=True)
class VideoInfo:
    """What a render needs to know of an input video before it decodes a frame."""

    path: Path
    size: tuple[int, int]
    """(height, width) of its frames."""
    fps: Fraction
    frames: int
    has_audio: bool

    @property
    def duration(self) -> float:
        """Seconds of video: frames / fps."""
        return float(self.frames / self.fps)


def _open(path: Path) -> Any:
    """``av.open(path)`` with a user's mistake (no file, not a video) as a UserError."""
    if not path.is_file():
        raise UserError(f"init.path {str(path)!r} is not a file; give a video file (MP4, ...)")
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as error:
        raise UserError(f"init.path {str(path)!r} is not a readable video ({error})") from None
    if not container.streams.video:
        container.close()
        raise UserError(f"init.path {str(path)!r} has no video stream")
    return container


def probe(path: str | os.PathLike[str]) -> VideoInfo:
    """Size, frame rate, frame count and whether there is audio, without decoding frames."""
    path = Path(path)
    with _open(path) as container:
        stream = container.streams.video[0]
        fps = stream.average_rate or stream.guessed_rate
        if not fps:
            raise UserError(f"init.path {str(path)!r}: its video stream has no frame rate")
        # Containers that do not record the count: count the packets (no decoding).
        frames = stream.frames or sum(
            1 for packet in container.demux(stream) if packet.size and packet.dts is not None
        )
        return VideoInfo(
            path,
            (stream.height, stream.width),
            Fraction(fps),
            frames,
            bool(container.streams.audio),
        )


def read_frames(path: str | os.PathLike[str], start: int = 0) -> Iterator[Tensor]:
    """Frames ``start``, ``start + 1``, ... of the video as ``[1, 3, H, W]`` RGB floats in [0, 1]
    (the earlier ones are decoded and skipped: a compressed video has no cheaper way in)."""
    with _open(Path(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for index, frame in enumerate(container.decode(stream)):
            if index >= start:
                rgb = torch.from_numpy(frame.to_ndarray(format="rgb24"))
                yield (rgb.permute(2, 0, 1)[None].float() / 255).contiguous()


def _packets(container: Any, stream: Any, until: float | None) -> Iterator[tuple[float, Any]]:
    """``(decoding time in seconds, packet)`` of ``stream``, those shown before ``until``
    seconds when given."""
    for packet in container.demux(stream):
        if packet.dts is None:  # the demuxer's flush packet
            continue
        if until is not None and packet.pts is not None and packet.pts * packet.time_base >= until:
            break
        yield float(packet.dts * packet.time_base), packet


def _transcoded(
    container: Any, stream: Any, target: Any, until: float
) -> Iterator[tuple[float, Any]]:
    """``(time, packet)`` of ``stream`` re-encoded by ``target``, an AAC stream (for a codec MP4
    cannot hold: PCM from a MOV or AVI, ...)."""
    resampler = av.AudioResampler(format="fltp", layout=stream.layout.name, rate=stream.rate)
    for frame in container.decode(stream):
        if frame.time is not None and frame.time >= until:
            break
        for part in resampler.resample(frame):
            for packet in target.encode(part):
                yield float(packet.dts * packet.time_base), packet
    for packet in target.encode(None):
        yield float(packet.dts * packet.time_base), packet


def add_audio(video: str | os.PathLike[str], source: str | os.PathLike[str]) -> bool:
    """Give ``video`` (an MP4) the audio track of ``source``, cut to the video's length.

    The packets are copied as they are (no re-encoding) when MP4 can hold the codec, else the
    audio is re-encoded as AAC; the video's packets and metadata are always copied. ``video`` is
    replaced
    atomically. Returns False (and leaves ``video`` alone) when ``source`` has no audio.
    """
    video, source = Path(video), Path(source)
    tmp = video.with_name(f".{video.stem}.audio{video.suffix}")
    with av.open(str(source)) as audio_in:
        if not audio_in.streams.audio:
            return False
        with av.open(str(video)) as video_in, av.open(str(tmp), "w", format="mp4") as out:
            out.metadata.update(video_in.metadata)  # the recipe render.mp4 carries, ...
            vstream, astream = video_in.streams.video[0], audio_in.streams.audio[0]
            vout = out.add_stream_from_template(vstream)
            length = probe(video).duration
            if astream.codec_context.name in MP4_AUDIO:
                aout = out.add_stream_from_template(astream)
                audio = _packets(audio_in, astream, length)
            else:
                aout = None  # the encoder's packets already belong to its stream
                target = out.add_stream("aac", rate=astream.rate)
                target.layout = astream.layout.name
                audio = _transcoded(audio_in, astream, target, length)
            # Interleaved by decoding time, so a player (and the muxer) never buffers a track.
            merged = heapq.merge(
                ((t, 0, p) for t, p in _packets(video_in, vstream, None)),
                ((t, 1, p) for t, p in audio),
                key=lambda item: (item[0], item[1]),
            )
            for _, kind, packet in merged:
                if kind == 0:
                    packet.stream = vout
                elif aout is not None:
                    packet.stream = aout
                out.mux(packet)
    os.replace(tmp, video)
    return True
