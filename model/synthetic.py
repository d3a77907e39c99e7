"""Small synthetic-but-realistic cases for tests and dev runs (no real data needed).

Titles mix Korean and English product words with brands and model numbers, as customs case
names do; the product word decides the code and the brand/model number never does. Photos are
drawn with PIL: each code has its own shape (a phone is a tall rounded slab, a shoe a low wedge,
...) in a random colour, size and position on a light background, saved as JPEG bytes.
"""

from __future__ import annotations

import io
import random

from PIL import Image, ImageDraw

from model.records import Example

# code -> (product words, description phrases, shape)
PRODUCTS: dict[str, tuple[list[str], list[str], str]] = {
    "8517130000": (
        ["스마트폰", "smartphone", "mobile phone", "휴대전화"],
        ["터치스크린과 카메라를 갖춘 무선 통신 기기", "cellular network handset with touchscreen"],
        "slab",
    ),
    "8528520000": (
        ["모니터", "monitor", "LCD monitor", "컴퓨터 모니터"],
        ["컴퓨터에 연결하는 평판 디스플레이", "flat panel display for computers"],
        "screen",
    ),
    "6403990000": (
        ["가죽 구두", "leather shoes", "formal shoes", "구두"],
        ["가죽 갑피와 고무 밑창의 신발", "footwear with leather uppers and rubber soles"],
        "wedge",
    ),
    "4202920000": (
        ["백팩", "backpack", "배낭", "travel backpack"],
        ["섬유 소재의 등에 메는 가방", "bag of textile material carried on the back"],
        "bag",
    ),
    "9102110000": (
        ["손목시계", "wrist watch", "watch", "전자 손목시계"],
        ["전지로 작동하는 손목 착용 시계", "battery operated wrist watch"],
        "ring",
    ),
}
BRANDS = ["samsung", "lg", "sony", "nike", "casio", "삼성", "현대", "boxlight", "acme", "puma"]


def model_number(rng: random.Random) -> str:
    letters = "".join(rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ") for _ in range(rng.randint(1, 3)))
    return f"{letters}-{rng.randint(100, 99999)}{rng.choice('ABCDN')}"


def draw_product(shape: str, rng: random.Random, size: int = 48) -> bytes:
    """A JPEG of one product shape, randomly coloured, scaled and placed."""
    bg = tuple(rng.randint(215, 255) for _ in range(3))
    img = Image.new("RGB", (size, size), bg)
    d = ImageDraw.Draw(img)
    colour = tuple(rng.randint(0, 150) for _ in range(3))
    s = size * rng.uniform(0.75, 1.0)
    ox = rng.uniform(0, size - s * 0.9)
    oy = rng.uniform(0, size - s * 0.9)

    def box(x0, y0, x1, y1):
        return [ox + x0 * s, oy + y0 * s, ox + x1 * s, oy + y1 * s]

    if shape == "slab":  # tall rounded rectangle
        d.rounded_rectangle(box(0.3, 0.05, 0.6, 0.85), radius=int(s * 0.06), fill=colour)
    elif shape == "screen":  # wide rectangle on a stand
        d.rectangle(box(0.05, 0.1, 0.85, 0.55), fill=colour)
        d.rectangle(box(0.4, 0.55, 0.5, 0.75), fill=colour)
        d.rectangle(box(0.25, 0.75, 0.65, 0.8), fill=colour)
    elif shape == "wedge":  # low shoe silhouette
        pts = [(0.05, 0.7), (0.85, 0.7), (0.85, 0.55), (0.35, 0.4), (0.1, 0.45)]
        d.polygon([(ox + x * s, oy + y * s) for x, y in pts], fill=colour)
    elif shape == "bag":  # rounded body with a handle loop
        d.ellipse(box(0.25, 0.05, 0.65, 0.35), outline=colour, width=max(1, int(s * 0.06)))
        d.rounded_rectangle(box(0.15, 0.2, 0.75, 0.85), radius=int(s * 0.15), fill=colour)
    else:  # ring: watch face with a strap
        d.rectangle(box(0.38, 0.0, 0.52, 0.9), fill=colour)
        d.ellipse(box(0.2, 0.25, 0.7, 0.65), fill=colour)
        d.ellipse(box(0.3, 0.35, 0.6, 0.55), fill=bg)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def make_cases(
    n: int,
    seed: int = 0,
    *,
    with_images: float = 1.0,
    with_descriptions: bool = True,
    title_words: bool = True,
    image_size: int = 48,
    prefix: str = "case",
) -> list[Example]:
    """``n`` cases spread over the codes of :data:`PRODUCTS`.

    ``with_images``: share of cases with a photo. ``title_words=False`` leaves the product word
    out of the title (brand + model number only), so only the photo or description can tell.
    """
    rng = random.Random(seed)
    codes = sorted(PRODUCTS)
    out = []
    for i in range(n):
        code = codes[i % len(codes)] if i < len(codes) else rng.choice(codes)
        words, descs, shape = PRODUCTS[code]
        parts = [rng.choice(BRANDS), model_number(rng)]
        if title_words:
            parts.insert(rng.randint(0, 2), rng.choice(words))
        image = draw_product(shape, rng, image_size) if rng.random() < with_images else None
        out.append(
            Example(
                key=f"{prefix}-{seed}-{i}",
                title=" ".join(parts),
                description=rng.choice(descs) if with_descriptions else None,
                image=image,
                label=code,
            )
        )
    return out
