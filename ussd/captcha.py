"""Captchas of the personal-account website (docs/account.md "Website"): a PNG of digits.

Sans-IO: time is a parameter. The answer lives only in this object's memory and in the image's
pixels, never in HTML or JSON. A captcha is single use (checked once, right or wrong), expires
after `ttl` seconds, and at most `cap` are outstanding: the oldest is dropped first, so a client
asking for captchas in a loop costs bounded memory.

The image is written with zlib alone (PNG, ISO/IEC 15948 §11: IHDR, IDAT, IEND; 8-bit
greyscale, filter type 0 on every row), so the gateway needs no imaging library.
"""

from __future__ import annotations

import hmac
import random
import secrets
import struct
import zlib
from collections import OrderedDict
from dataclasses import dataclass

MODES = ("on", "off", "test")
TEST_ANSWER = "12345"  # every captcha's answer in `website.captcha: test` (docs/account.md)
LENGTH = 5
CAP = 1000  # outstanding captchas kept; the oldest goes first
MAX_ANSWER = 16
WIDTH, HEIGHT = 160, 60
SCALE = 4  # a 5x7 glyph becomes 20x28 pixels

# 5x7 digit glyphs, one string of five bits per row.
_GLYPHS = {
    "0": ("01110", "10001", "10011", "10101", "11001", "10001", "01110"),
    "1": ("00100", "01100", "00100", "00100", "00100", "00100", "01110"),
    "2": ("01110", "10001", "00001", "00010", "00100", "01000", "11111"),
    "3": ("11110", "00001", "00001", "01110", "00001", "00001", "11110"),
    "4": ("00010", "00110", "01010", "10010", "11111", "00010", "00010"),
    "5": ("11111", "10000", "11110", "00001", "00001", "10001", "01110"),
    "6": ("00110", "01000", "10000", "11110", "10001", "10001", "01110"),
    "7": ("11111", "00001", "00010", "00100", "01000", "01000", "01000"),
    "8": ("01110", "10001", "10001", "01110", "10001", "10001", "01110"),
    "9": ("01110", "10001", "10001", "01111", "00001", "00010", "01100"),
}
# Drawn answers skip 0 and 1, which a reader may take for O and l.
_ALPHABET = "23456789"


class CaptchaError(Exception):
    """A captcha answer refused; `code` is the API's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Challenge:
    """An issued captcha: its id and image (the answer stays inside Captchas)."""

    id: str
    png: bytes
    expires: float


def _chunk(kind: bytes, data: bytes) -> bytes:
    # PNG §5.3: length, type, data, CRC-32 of type + data.
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_greyscale(rows: list[bytearray]) -> bytes:
    """An 8-bit greyscale PNG of `rows` (equal lengths), filter type 0 on each row."""
    height, width = len(rows), len(rows[0])
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # depth 8, colour type 0
    raw = b"".join(b"\x00" + bytes(row) for row in rows)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(raw, 6))
        + _chunk(b"IEND", b"")
    )


def render(text: str, rng: random.Random | None = None) -> bytes:
    """A noisy PNG of `text` (digits): each glyph shifted and shaded at random, speckles, lines.

    The noise need not be secret (the answer is, and comes from `secrets`): a Mersenne
    Twister seeded from the system's randomness draws it at a fraction of urandom's cost.
    """
    rng = rng or random.Random(secrets.randbits(64))
    rows = [bytearray(b"\xf4" * WIDTH) for _ in range(HEIGHT)]
    speckles = WIDTH * HEIGHT // 12
    noise = rng.randbytes(3 * speckles)  # one draw for all of them: per-pixel calls cost ms
    for i in range(0, 3 * speckles, 3):
        pos = (noise[i] << 8 | noise[i + 1]) % (WIDTH * HEIGHT)
        rows[pos // WIDTH][pos % WIDTH] = 120 + noise[i + 2] % 100
    step = (WIDTH - 16) // max(len(text), 1)
    for i, ch in enumerate(text):
        glyph = _GLYPHS[ch]
        x0 = 8 + i * step + rng.randrange(-3, 4)
        y0 = (HEIGHT - 7 * SCALE) // 2 + rng.randrange(-8, 9)
        ink = rng.randrange(20, 90)
        slant = rng.choice((-1, 0, 1))
        for gy, line in enumerate(glyph):
            for gx, bit in enumerate(line):
                if bit != "1":
                    continue
                for dy in range(SCALE):
                    y = y0 + gy * SCALE + dy
                    shift = slant * (gy - 3)
                    for dx in range(SCALE):
                        x = x0 + gx * SCALE + dx + shift
                        if 0 <= x < WIDTH and 0 <= y < HEIGHT:
                            rows[y][x] = ink
    for _ in range(3):  # lines across the digits
        start, slope = rng.randrange(HEIGHT), rng.uniform(-0.4, 0.4)
        shade = rng.randrange(40, 140)
        for x in range(WIDTH):
            yy = int(start + slope * x)
            if 0 <= yy < HEIGHT:
                rows[yy][x] = shade
    return png_greyscale(rows)


class Captchas:
    """Issued captchas by id: single use, expiring, at most `cap` (LRU)."""

    def __init__(self, mode: str, ttl: float, cap: int = CAP) -> None:
        if mode not in MODES:
            raise ValueError(f"captcha mode must be one of {MODES}, got {mode!r}")
        self.mode = mode
        self.ttl = ttl
        self.cap = cap
        self._rng = secrets.SystemRandom()
        self._answers: OrderedDict[str, tuple[str, float]] = OrderedDict()

    @property
    def required(self) -> bool:
        """Whether an SMS-password request must carry a solved captcha."""
        return self.mode != "off"

    def __len__(self) -> int:
        return len(self._answers)

    def issue(self, now: float) -> Challenge:
        """A new captcha; the oldest outstanding one is dropped past `cap`."""
        if self.mode == "test":
            answer = TEST_ANSWER
        else:
            answer = "".join(self._rng.choice(_ALPHABET) for _ in range(LENGTH))
        captcha_id = secrets.token_urlsafe(16)
        expires = now + self.ttl
        self._answers[captcha_id] = (answer, expires)
        while len(self._answers) > self.cap:
            self._answers.popitem(last=False)
        return Challenge(captcha_id, render(answer), expires)

    def check(self, captcha_id: object, answer: object, now: float) -> None:
        """Accept the answer or raise CaptchaError; the captcha is spent either way."""
        if not self.required:
            return
        if not isinstance(captcha_id, str) or not captcha_id or not isinstance(answer, str):
            raise CaptchaError("captcha_required", "solve the captcha first")
        entry = self._answers.pop(captcha_id, None)
        if entry is None or entry[1] <= now:
            raise CaptchaError(
                "captcha_expired", "the captcha has expired or was used; ask for a new one"
            )
        given = answer.strip()[:MAX_ANSWER]
        if not given.isascii() or not hmac.compare_digest(given.encode(), entry[0].encode()):
            raise CaptchaError("bad_captcha", "the captcha was answered wrongly; ask for a new one")
