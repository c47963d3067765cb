"""What a person sees of an output: the generated image itself, or a card for a class or values.

Rendering is a pure function of the proven outputs (and the circuit's task), so anyone can
render them again and compare: pixels for images (PNG bytes depend on the zlib build),
bytes for cards (our own SVG text).
"""

from __future__ import annotations

import html
import io
import math
from dataclasses import dataclass

import numpy as np

IMAGE_MIN_WIDTH = 320  # ERC-7007 / marketplaces: images 320-1080 px wide
CARD_WIDTH, CARD_HEIGHT = 480, 320
CARD_MAX_VALUES = 10


@dataclass(frozen=True)
class Rendering:
    aigc_type: str  # ERC-7007's aigc_type: "image", "classification" or "regression"
    data: bytes  # the content itself (aigc_data): a native-size PNG, or the outputs as JSON
    data_type: str
    image: bytes  # what a marketplace shows (image): an upscaled PNG, or an SVG card
    image_type: str
    how: dict  # the rule used, recorded in the metadata so a verifier renders the same


def image_dims(shape: list[int]) -> tuple[int, int, int] | None:
    """(channels, height, width) when an output tensor is an image: N,C,H,W or C,H,W with
    1 or 3 channels and at least 2x2 pixels; None otherwise."""
    dims = list(shape[1:]) if len(shape) == 4 else list(shape)
    if len(dims) == 3 and dims[0] in (1, 3) and dims[1] >= 2 and dims[2] >= 2:
        return dims[0], dims[1], dims[2]
    return None


def value_range(values: np.ndarray) -> tuple[float, float]:
    """The range pixel values are mapped from: [0, 1] or [-1, 1] when the outputs lie there (a
    sigmoid or tanh head, with quantization slack), else the outputs' own min and max."""
    lo, hi = float(values.min()), float(values.max())
    for a, b in ((0.0, 1.0), (-1.0, 1.0)):
        if lo >= a - 0.05 and hi <= b + 0.05:
            return a, b
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


def pixels(values: np.ndarray, dims: tuple[int, int, int], lo: float, hi: float) -> np.ndarray:
    """uint8 H x W (x 3) pixels of an output tensor, mapped from [lo, hi]."""
    c, h, w = dims
    scaled = np.clip((np.asarray(values, dtype=np.float64).reshape(c, h, w) - lo) / (hi - lo), 0.0, 1.0)
    px = np.rint(scaled * 255).astype(np.uint8)
    return px[0] if c == 1 else np.moveaxis(px, 0, -1)


def upscale_factor(width: int) -> int:
    return max(1, math.ceil(IMAGE_MIN_WIDTH / width))


def png(px: np.ndarray, factor: int = 1) -> bytes:
    from PIL import Image

    img = Image.fromarray(px)
    if factor > 1:
        img = img.resize((img.width * factor, img.height * factor), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def png_pixels(data: bytes) -> np.ndarray:
    """The pixels of a PNG (what a verifier compares: encoders may differ, pixels may not)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img)


def card(title: str, lines: list[str]) -> bytes:
    """A plain SVG card: the model's name, then one line per value (escaped text only)."""
    rows = "".join(f'<text x="24" y="{96 + 24 * i}" font-size="18">{html.escape(line)}</text>'
                   for i, line in enumerate(lines))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{CARD_WIDTH}" height="{CARD_HEIGHT}" '
            f'viewBox="0 0 {CARD_WIDTH} {CARD_HEIGHT}" font-family="monospace">'
            f'<rect width="100%" height="100%" fill="#f6f4ee" stroke="#333" stroke-width="2"/>'
            f'<text x="24" y="48" font-size="22" font-weight="bold">{html.escape(title)}</text>'
            f'{rows}</svg>\n').encode()


def card_lines(values: np.ndarray, task: str) -> list[str]:
    flat = np.asarray(values, dtype=np.float64).ravel()
    if task == "classification":
        order = np.argsort(-flat, kind="stable")
        head = [f"class {int(order[0])}  (score {flat[order[0]]:.4f})"]
        return head + [f"  class {int(i)}: {flat[i]:.4f}" for i in order[1:CARD_MAX_VALUES]]
    lines = [f"output[{i}] = {v:.6g}" for i, v in enumerate(flat[:CARD_MAX_VALUES])]
    return lines + ([f"... {flat.size - CARD_MAX_VALUES} more"] if flat.size > CARD_MAX_VALUES else [])


def render(outputs: list[np.ndarray], shapes: list[list[int]], task: str, title: str,
           data_json: bytes) -> Rendering:
    """The rendering of one inference's outputs (``data_json``: those outputs as JSON)."""
    dims = image_dims(shapes[0]) if len(outputs) == 1 else None
    if dims is not None:
        lo, hi = value_range(outputs[0])
        px = pixels(outputs[0], dims, lo, hi)
        factor = upscale_factor(dims[2])
        how = {"kind": "image", "range": [lo, hi], "upscale": factor, "resampling": "nearest"}
        return Rendering("image", png(px), "image/png", png(px, factor), "image/png", how)
    kind = "classification" if task == "classification" else "regression"
    lines = card_lines(np.concatenate([np.ravel(o) for o in outputs]), kind)
    return Rendering(kind, data_json, "application/json", card(title, lines), "image/svg+xml",
                     {"kind": "card"})
