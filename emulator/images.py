"""Simple drawn product pictures for the demo corpus.

One drawing routine per kind of picture (distinct shape and base colour), with random
position, size, rotation, colour jitter, background, occasional small distractor shapes
from other kinds and pixel noise: an image model can learn the kinds, but not from one
constant pixel. Sibling codes share a kind, as their photos would (fresh and frozen beef
look alike, a T-shirt is a T-shirt whatever its fibre): the picture tells the family, the
text the subheading.
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SIZE = 64
# Drawing happens at 2x and is downsampled, so edges are anti-aliased like a photo.
_CANVAS = SIZE * 2

RGB = tuple[int, int, int]


def _jitter(rng: random.Random, base: RGB, amount: int = 40) -> RGB:
    return tuple(max(0, min(255, c + rng.randint(-amount, amount))) for c in base)  # type: ignore[return-value]


def _box(rng: random.Random, w_frac: float, h_frac: float) -> tuple[int, int, int, int]:
    """A random box of roughly the given fraction of the canvas, anywhere it fits."""
    scale = rng.uniform(0.7, 1.15)
    w = max(8, int(_CANVAS * w_frac * scale))
    h = max(8, int(_CANVAS * h_frac * scale))
    w, h = min(w, _CANVAS - 4), min(h, _CANVAS - 4)
    x0 = rng.randint(2, _CANVAS - w - 2)
    y0 = rng.randint(2, _CANVAS - h - 2)
    return x0, y0, x0 + w, y0 + h


def _pen(d: ImageDraw.ImageDraw, rng: random.Random, colour: RGB) -> None:
    x0, y0, x1, y1 = _box(rng, 0.85, 0.12)
    d.rectangle((x0, y0, x1 - 14, y1), fill=colour)
    d.polygon([(x1 - 14, y0), (x1, (y0 + y1) // 2), (x1 - 14, y1)], fill=(200, 200, 200))
    d.rectangle((x0, y0, x0 + 16, y1), fill=_jitter(rng, (30, 30, 30), 20))  # cap


def _tshirt(d: ImageDraw.ImageDraw, rng: random.Random, colour: RGB) -> None:
    x0, y0, x1, y1 = _box(rng, 0.7, 0.7)
    w, h = x1 - x0, y1 - y0
    body = [
        (x0 + w * 0.25, y0),
        (x0 + w * 0.4, y0 + h * 0.08),
        (x0 + w * 0.6, y0 + h * 0.08),
        (x0 + w * 0.75, y0),
        (x1, y0 + h * 0.22),
        (x0 + w * 0.85, y0 + h * 0.38),
        (x0 + w * 0.78, y0 + h * 0.3),
        (x0 + w * 0.78, y1),
        (x0 + w * 0.22, y1),
        (x0 + w * 0.22, y0 + h * 0.3),
        (x0 + w * 0.15, y0 + h * 0.38),
        (x0, y0 + h * 0.22),
    ]
    d.polygon(body, fill=colour)


def _shoe(d: ImageDraw.ImageDraw, rng: random.Random, colour: RGB) -> None:
    x0, y0, x1, y1 = _box(rng, 0.8, 0.45)
    w, h = x1 - x0, y1 - y0
    d.polygon(
        [
            (x0, y0 + h * 0.45),
            (x0 + w * 0.45, y0),
            (x0 + w * 0.6, y0 + h * 0.35),
            (x1, y0 + h * 0.6),
            (x1, y1 - h * 0.15),
            (x0, y1 - h * 0.15),
        ],
        fill=colour,
    )
    d.rectangle((x0, y1 - h * 0.18, x1, y1), fill=_jitter(rng, (235, 235, 235), 15))  # sole


def _laptop(d: ImageDraw.ImageDraw, rng: random.Random, colour: RGB) -> None:
    x0, y0, x1, y1 = _box(rng, 0.8, 0.7)
    w, h = x1 - x0, y1 - y0
    d.rectangle((x0 + w * 0.1, y0, x1 - w * 0.1, y0 + h * 0.62), fill=colour)
    d.rectangle(
        (x0 + w * 0.15, y0 + h * 0.06, x1 - w * 0.15, y0 + h * 0.56),
        fill=_jitter(rng, (90, 140, 200), 30),
    )  # screen
    d.polygon(
        [(x0 + w * 0.1, y0 + h * 0.66), (x1 - w * 0.1, y0 + h * 0.66), (x1, y1), (x0, y1)],
        fill=colour,
    )


def _phone(d: ImageDraw.ImageDraw, rng: random.Random, colour: RGB) -> None:
    x0, y0, x1, y1 = _box(rng, 0.38, 0.8)
    w, h = x1 - x0, y1 - y0
    d.rounded_rectangle((x0, y0, x1, y1), radius=max(2, int(w * 0.18)), fill=colour)
    d.rectangle(
        (x0 + w * 0.1, y0 + h * 0.08, x1 - w * 0.1, y1 - h * 0.1),
        fill=_jitter(rng, (60, 80, 110), 30),
    )


def _beef(d: ImageDraw.ImageDraw, rng: random.Random, colour: RGB) -> None:
    x0, y0, x1, y1 = _box(rng, 0.75, 0.55)
    d.ellipse((x0, y0, x1, y1), fill=colour)
    for _ in range(rng.randint(3, 7)):  # marbling
        ax, ay = rng.randint(x0, x1), rng.randint(y0, y1)
        d.line(
            (ax, ay, ax + rng.randint(-15, 15), ay + rng.randint(-10, 10)),
            fill=_jitter(rng, (240, 225, 220), 10),
            width=2,
        )


def _toy(d: ImageDraw.ImageDraw, rng: random.Random, colour: RGB) -> None:
    x0, y0, x1, y1 = _box(rng, 0.75, 0.5)
    w, h = x1 - x0, y1 - y0
    d.rectangle((x0, y0 + h * 0.3, x1, y0 + h * 0.75), fill=colour)
    d.rectangle((x0 + w * 0.25, y0, x1 - w * 0.2, y0 + h * 0.35), fill=colour)
    r = h * 0.22
    for cx in (x0 + w * 0.22, x1 - w * 0.22):
        d.ellipse((cx - r, y1 - 2 * r, cx + r, y1), fill=(25, 25, 25))


def _lipstick(d: ImageDraw.ImageDraw, rng: random.Random, colour: RGB) -> None:
    x0, y0, x1, y1 = _box(rng, 0.22, 0.8)
    w, h = x1 - x0, y1 - y0
    d.rectangle((x0, y0 + h * 0.45, x1, y1), fill=_jitter(rng, (200, 170, 60), 30))  # case
    d.polygon(
        [
            (x0 + w * 0.15, y0 + h * 0.45),
            (x0 + w * 0.15, y0 + h * 0.12),
            (x1 - w * 0.15, y0),
            (x1 - w * 0.15, y0 + h * 0.45),
        ],
        fill=colour,
    )


def _backpack(d: ImageDraw.ImageDraw, rng: random.Random, colour: RGB) -> None:
    x0, y0, x1, y1 = _box(rng, 0.6, 0.78)
    w, h = x1 - x0, y1 - y0
    d.arc(
        (x0 + w * 0.3, y0 - h * 0.02, x1 - w * 0.3, y0 + h * 0.25),
        180,
        360,
        fill=_jitter(rng, (40, 40, 40), 20),
        width=3,
    )
    d.rounded_rectangle((x0, y0 + h * 0.1, x1, y1), radius=int(w * 0.2), fill=colour)
    d.rounded_rectangle(
        (x0 + w * 0.2, y0 + h * 0.55, x1 - w * 0.2, y1 - h * 0.08),
        radius=int(w * 0.1),
        fill=_jitter(rng, colour, 50),
    )  # pocket


def _lamp(d: ImageDraw.ImageDraw, rng: random.Random, colour: RGB) -> None:
    x0, y0, x1, y1 = _box(rng, 0.55, 0.8)
    w, h = x1 - x0, y1 - y0
    cx = (x0 + x1) / 2
    d.ellipse((x0, y0, x1, y0 + h * 0.6), fill=colour)  # bulb
    d.rectangle((cx - w * 0.18, y0 + h * 0.58, cx + w * 0.18, y1), fill=(150, 150, 150))
    for i in range(h // 10):  # screw thread
        y = y0 + h * 0.62 + i * 4
        if y < y1:
            d.line((cx - w * 0.18, y, cx + w * 0.18, y), fill=(110, 110, 110), width=1)


def _chip(d: ImageDraw.ImageDraw, rng: random.Random, colour: RGB) -> None:
    x0, y0, x1, y1 = _box(rng, 0.5, 0.5)
    w, h = x1 - x0, y1 - y0
    pin = _jitter(rng, (190, 190, 195), 15)
    n = rng.randint(4, 8)
    for i in range(n):  # pins on two sides (or four)
        y = y0 + h * (i + 0.5) / n
        d.line((x0 - 6, y, x0, y), fill=pin, width=3)
        d.line((x1, y, x1 + 6, y), fill=pin, width=3)
        if rng.random() < 0.5:
            x = x0 + w * (i + 0.5) / n
            d.line((x, y0 - 6, x, y0), fill=pin, width=3)
            d.line((x, y1, x, y1 + 6), fill=pin, width=3)
    d.rectangle((x0, y0, x1, y1), fill=colour)
    r = max(2, int(w * 0.06))
    d.ellipse((x0 + r, y0 + r, x0 + 3 * r, y0 + 3 * r), fill=_jitter(rng, colour, 30))  # pin 1


def _pcb(d: ImageDraw.ImageDraw, rng: random.Random, colour: RGB) -> None:
    x0, y0, x1, y1 = _box(rng, 0.85, 0.6)
    w, h = x1 - x0, y1 - y0
    d.rectangle((x0, y0, x1, y1), fill=colour)
    trace = _jitter(rng, (200, 170, 80), 30)
    for _ in range(rng.randint(4, 9)):  # copper traces
        ax, ay = rng.uniform(x0, x1), rng.uniform(y0, y1)
        d.line((ax, ay, rng.uniform(x0, x1), ay), fill=trace, width=1)
    for _ in range(rng.randint(2, 5)):  # components
        cw, ch = w * rng.uniform(0.08, 0.22), h * rng.uniform(0.1, 0.3)
        cx, cy = rng.uniform(x0, x1 - cw), rng.uniform(y0, y1 - ch)
        d.rectangle((cx, cy, cx + cw, cy + ch), fill=_jitter(rng, (30, 30, 30), 20))


def _part(d: ImageDraw.ImageDraw, rng: random.Random, colour: RGB) -> None:
    """A machined metal part: a gear-like disc or a drilled bracket."""
    x0, y0, x1, y1 = _box(rng, 0.65, 0.65)
    w, h = x1 - x0, y1 - y0
    if rng.random() < 0.5:
        cx, cy, r = (x0 + x1) / 2, (y0 + y1) / 2, min(w, h) / 2
        teeth = rng.randint(8, 14)
        for i in range(teeth):
            a = i / teeth * 6.2832
            tx, ty = cx + r * 0.95 * np.cos(a), cy + r * 0.95 * np.sin(a)
            d.ellipse((tx - r * 0.12, ty - r * 0.12, tx + r * 0.12, ty + r * 0.12), fill=colour)
        d.ellipse((cx - r * 0.85, cy - r * 0.85, cx + r * 0.85, cy + r * 0.85), fill=colour)
        hole = _jitter(rng, (225, 225, 220), 25)
        d.ellipse((cx - r * 0.25, cy - r * 0.25, cx + r * 0.25, cy + r * 0.25), fill=hole)
    else:
        d.polygon(
            [(x0, y0), (x0 + w * 0.35, y0), (x0 + w * 0.35, y1 - h * 0.35), (x1, y1 - h * 0.35),
             (x1, y1), (x0, y1)],
            fill=colour,
        )  # fmt: skip
        hole = _jitter(rng, (225, 225, 220), 25)
        for hx, hy in ((x0 + w * 0.17, y0 + h * 0.2), (x1 - w * 0.15, y1 - h * 0.17)):
            d.ellipse((hx - 5, hy - 5, hx + 5, hy + 5), fill=hole)


def _bottle(d: ImageDraw.ImageDraw, rng: random.Random, colour: RGB) -> None:
    x0, y0, x1, y1 = _box(rng, 0.32, 0.85)
    w, h = x1 - x0, y1 - y0
    d.rounded_rectangle((x0, y0 + h * 0.3, x1, y1), radius=max(2, int(w * 0.2)), fill=colour)
    d.polygon(
        [(x0 + w * 0.1, y0 + h * 0.32), (x0 + w * 0.35, y0 + h * 0.15),
         (x1 - w * 0.35, y0 + h * 0.15), (x1 - w * 0.1, y0 + h * 0.32)],
        fill=colour,
    )  # fmt: skip
    d.rectangle((x0 + w * 0.33, y0, x1 - w * 0.33, y0 + h * 0.16), fill=_jitter(rng, (40, 40, 40)))
    d.rectangle(
        (x0 + w * 0.08, y0 + h * 0.5, x1 - w * 0.08, y0 + h * 0.75),
        fill=_jitter(rng, (245, 245, 240), 10),
    )  # label


def _box_pack(d: ImageDraw.ImageDraw, rng: random.Random, colour: RGB) -> None:
    """A retail carton in perspective, with a printed band."""
    x0, y0, x1, y1 = _box(rng, 0.65, 0.6)
    w, h = x1 - x0, y1 - y0
    depth = w * 0.2
    d.polygon(
        [(x0, y0 + depth), (x0 + depth, y0), (x1, y0), (x1 - depth, y0 + depth)],
        fill=_jitter(rng, colour, 25),
    )
    d.polygon(
        [(x1 - depth, y0 + depth), (x1, y0), (x1, y1 - depth), (x1 - depth, y1)],
        fill=_jitter(rng, colour, 45),
    )
    d.rectangle((x0, y0 + depth, x1 - depth, y1), fill=colour)
    d.rectangle(
        (x0, y0 + depth + h * 0.3, x1 - depth, y0 + depth + h * 0.45),
        fill=_jitter(rng, (245, 245, 240), 10),
    )


def _trousers(d: ImageDraw.ImageDraw, rng: random.Random, colour: RGB) -> None:
    x0, y0, x1, y1 = _box(rng, 0.5, 0.85)
    w, h = x1 - x0, y1 - y0
    mid = x0 + w / 2
    d.rectangle((x0, y0, x1, y0 + h * 0.1), fill=_jitter(rng, colour, 20))  # waistband
    d.polygon([(x0, y0 + h * 0.1), (mid, y0 + h * 0.1), (mid - w * 0.05, y1), (x0 - w * 0.05, y1)],
              fill=colour)  # fmt: skip
    d.polygon([(mid, y0 + h * 0.1), (x1, y0 + h * 0.1), (x1 + w * 0.05, y1), (mid + w * 0.05, y1)],
              fill=colour)  # fmt: skip


def _chair(d: ImageDraw.ImageDraw, rng: random.Random, colour: RGB) -> None:
    x0, y0, x1, y1 = _box(rng, 0.6, 0.85)
    w, h = x1 - x0, y1 - y0
    leg = _jitter(rng, (60, 60, 60), 30)
    d.rectangle((x0 + w * 0.1, y0, x1 - w * 0.1, y0 + h * 0.45), fill=colour)  # back
    d.rectangle((x0, y0 + h * 0.45, x1, y0 + h * 0.58), fill=_jitter(rng, colour, 25))  # seat
    for lx in (x0 + w * 0.05, x1 - w * 0.12):
        d.rectangle((lx, y0 + h * 0.58, lx + w * 0.07, y1), fill=leg)


# class key -> (draw function, base colours); colours overlap across classes on purpose.
DRAWERS: dict[str, tuple[Callable[[ImageDraw.ImageDraw, random.Random, RGB], None], list[RGB]]] = {
    "pen": (_pen, [(30, 60, 180), (20, 20, 20), (190, 30, 30)]),
    "tshirt": (_tshirt, [(240, 240, 240), (40, 60, 120), (200, 60, 60), (90, 90, 90)]),
    "shoe": (_shoe, [(30, 30, 30), (230, 230, 230), (60, 90, 170), (200, 80, 40)]),
    "laptop": (_laptop, [(120, 120, 125), (40, 40, 45), (190, 190, 195)]),
    "phone": (_phone, [(20, 20, 20), (200, 200, 205), (60, 70, 120)]),
    "beef": (_beef, [(150, 30, 35), (170, 45, 50)]),
    "toy": (_toy, [(230, 190, 30), (200, 40, 40), (40, 140, 60), (40, 90, 200)]),
    "lipstick": (_lipstick, [(190, 20, 50), (220, 90, 120), (150, 30, 60)]),
    "backpack": (_backpack, [(30, 30, 30), (40, 60, 120), (110, 80, 50), (60, 110, 60)]),
    "lamp": (_lamp, [(250, 240, 170), (255, 255, 230), (240, 220, 120)]),
    "chip": (_chip, [(25, 25, 28), (45, 45, 50), (70, 70, 75)]),
    "pcb": (_pcb, [(20, 110, 50), (30, 60, 130), (20, 20, 20)]),
    "part": (_part, [(150, 150, 155), (110, 110, 115), (180, 170, 150), (60, 60, 65)]),
    "bottle": (_bottle, [(240, 240, 245), (200, 60, 90), (60, 140, 200), (90, 160, 90)]),
    "box": (_box_pack, [(200, 60, 40), (230, 190, 60), (60, 110, 180), (120, 80, 50)]),
    "trousers": (_trousers, [(40, 60, 120), (30, 30, 35), (170, 150, 110), (90, 90, 95)]),
    "chair": (_chair, [(30, 30, 30), (120, 80, 50), (60, 90, 140), (150, 150, 150)]),
}


def draw_product(kind: str, rng: random.Random) -> bytes:
    """A 64x64 JPEG of one product of class ``kind``; deterministic for a given rng state."""
    if kind not in DRAWERS:
        raise ValueError(f"unknown product image class {kind!r}; known: {sorted(DRAWERS)}")
    draw_fn, colours = DRAWERS[kind]
    background = _jitter(rng, (225, 225, 220), 30)
    img = Image.new("RGB", (_CANVAS, _CANVAS), background)
    d = ImageDraw.Draw(img)
    if rng.random() < 0.25:  # a small object from another class in the scene
        other = rng.choice([k for k in DRAWERS if k != kind])
        o_fn, o_colours = DRAWERS[other]
        small = Image.new("RGB", (_CANVAS, _CANVAS), background)
        o_fn(ImageDraw.Draw(small), rng, _jitter(rng, rng.choice(o_colours)))
        small = small.resize((_CANVAS // 3, _CANVAS // 3))
        img.paste(
            small, (rng.randint(0, _CANVAS - small.width), rng.randint(0, _CANVAS - small.height))
        )
    draw_fn(d, rng, _jitter(rng, rng.choice(colours)))
    img = img.rotate(rng.uniform(-25, 25), resample=Image.Resampling.BILINEAR, fillcolor=background)
    if rng.random() < 0.3:
        img = img.filter(ImageFilter.GaussianBlur(radius=rng.uniform(0.5, 1.5)))
    img = img.resize((SIZE, SIZE), Image.Resampling.LANCZOS)
    noise = np.random.default_rng(rng.getrandbits(32)).normal(
        0, rng.uniform(4, 14), (SIZE, SIZE, 3)
    )
    pixels = np.clip(np.asarray(img, dtype=np.float32) + noise, 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG", quality=rng.randint(70, 92))
    return out.getvalue()
