"""Media of a support session: a recognisable test pattern, silence, and real capture on Linux.

The test pattern (colour bars, a bar moving down the screen, the frame number in big digits)
is built straight into the planes of an `av.VideoFrame` (numpy is not a dependency). A viewer
sees at once that frames flow and how smoothly.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import os
import time

import av
from aiortc import AudioStreamTrack, MediaStreamTrack
from aiortc.contrib.media import MediaPlayer, MediaRecorder

from agent.platform.base import SupportMedia

log = logging.getLogger(__name__)

WIDTH, HEIGHT, FPS = 640, 360, 15
VIDEO_CLOCK = 90000
# YUV of the classic bars: white, yellow, cyan, green, magenta, red, blue, black.
_BARS = [
    (235, 128, 128),
    (210, 16, 146),
    (170, 166, 16),
    (145, 54, 34),
    (106, 202, 222),
    (81, 90, 240),
    (41, 240, 110),
    (16, 128, 128),
]
# A 3x5 font of the digits, one string of 15 pixels per digit, row by row.
_DIGITS = [
    "111101101101111",
    "010110010010111",
    "111001111100111",
    "111001111001111",
    "101101111001001",
    "111100111001111",
    "111100111101111",
    "111001001001001",
    "111101111101111",
    "111101111001111",
]
_SCALE = 8  # pixels per font pixel


def _plane_bytes(width: int, height: int, line: int, index: int) -> bytes:
    """One plane of the bars (index 0 = Y, 1 = U, 2 = V) with `line` bytes per row."""
    row = bytearray(line)
    bar_width = width / len(_BARS)
    for x in range(width):
        row[x] = _BARS[min(len(_BARS) - 1, int(x / bar_width))][index]
    return bytes(row) * height


class TestPatternTrack(MediaStreamTrack):
    """A synthetic screen: 640x360 at 15 fps."""

    kind = "video"

    def __init__(self, width: int = WIDTH, height: int = HEIGHT, fps: int = FPS) -> None:
        super().__init__()
        self.width, self.height, self.fps = width, height, fps
        self._count = 0
        self._start: float | None = None
        self._planes: list[bytes] | None = None

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            from aiortc.mediastreams import MediaStreamError

            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            wait = self._start + self._count / self.fps - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        frame = self._frame(self._count)
        frame.pts = self._count * VIDEO_CLOCK // self.fps
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        self._count += 1
        return frame

    def _frame(self, number: int) -> av.VideoFrame:
        frame = av.VideoFrame(self.width, self.height, "yuv420p")
        if self._planes is None:
            half = (self.width // 2, self.height // 2)
            sizes = [(self.width, self.height), half, half]
            self._planes = [
                _plane_bytes(w, h, frame.planes[i].line_size, i) for i, (w, h) in enumerate(sizes)
            ]
        y = bytearray(self._planes[0])
        line = frame.planes[0].line_size
        # A white bar 16 rows high moving down the screen, one pass every 4 seconds.
        top = (number * 4 * self.height // (self.fps * 16)) % (self.height - 16)
        y[top * line : (top + 16) * line] = b"\xeb" * (16 * line)
        self._draw_number(y, line, number)
        frame.planes[0].update(bytes(y))
        frame.planes[1].update(self._planes[1])
        frame.planes[2].update(self._planes[2])
        return frame

    def _draw_number(self, y: bytearray, line: int, number: int) -> None:
        """The frame number in black digits on a white box near the top left corner."""
        text = str(number)
        x0, y0, pad = 16, 16, 8
        box_w = len(text) * 4 * _SCALE + pad
        for row in range(y0 - pad // 2, y0 + 5 * _SCALE + pad // 2):
            y[row * line + x0 - pad // 2 : row * line + x0 - pad // 2 + box_w] = b"\xeb" * box_w
        for i, char in enumerate(text):
            glyph = _DIGITS[int(char)]
            for gy in range(5):
                for gx in range(3):
                    if glyph[gy * 3 + gx] != "1":
                        continue
                    x = x0 + (i * 4 + gx) * _SCALE
                    for row in range(y0 + gy * _SCALE, y0 + (gy + 1) * _SCALE):
                        y[row * line + x : row * line + x + _SCALE] = b"\x10" * _SCALE


class SilenceTrack(AudioStreamTrack):
    """Silence, paced in real time (aiortc's own)."""


def linux_media(video_size: str = "1280x720", display: str | None = None) -> SupportMedia:
    """The X screen and the microphone where they can be opened; else a test pattern, silence.

    `display` is the X display to capture (the DISPLAY environment variable when None)."""
    players: list[MediaPlayer] = []
    video: MediaStreamTrack | None = None
    audio: MediaStreamTrack | None = None
    display = display or os.environ.get("DISPLAY")
    if display:
        try:
            player = MediaPlayer(
                display, format="x11grab", options={"video_size": video_size, "framerate": "15"}
            )
            players.append(player)
            video = player.video
        except Exception as exc:
            log.info("remote support: cannot capture the screen (%s); sending a test pattern", exc)
    for fmt in ("pulse", "alsa"):
        try:
            player = MediaPlayer("default", format=fmt)
        except Exception as exc:
            log.debug("remote support: no %s microphone: %s", fmt, exc)
            continue
        players.append(player)
        audio = player.audio
        break

    async def close() -> None:
        for player in players:
            for track in (player.video, player.audio):
                if track is not None:
                    track.stop()

    return SupportMedia(
        video or TestPatternTrack(), audio or SilenceTrack(), close, speaker=_speaker
    )


def _speaker() -> MediaRecorder:
    """The default sound output (PulseAudio, else ALSA) for the professional's voice."""
    problems = []
    for fmt in ("pulse", "alsa"):
        try:
            return MediaRecorder("default", format=fmt)
        except Exception as exc:
            problems.append(f"{fmt}: {exc}")
    raise OSError("no sound output: " + "; ".join(problems))
