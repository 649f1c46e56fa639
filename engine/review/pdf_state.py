"""The PDF graphics and text state that engine/review/visible.py follows through a page: affine matrices, boxes,
device colours, a font's advance widths, the saved state (Gfx) and content-stream parsing; facts of the PDF format
(ISO 32000-1, sections 8 and 9), nothing about what is hidden."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pypdf.generic import ArrayObject, ContentStream, DictionaryObject

Matrix = tuple[float, float, float, float, float, float]
Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in device space (points)
RGB = tuple[float, float, float]
IDENTITY: Matrix = (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)
WHITE: RGB = (1.0, 1.0, 1.0)

COLOUR_OPS = {b"g", b"G", b"rg", b"RG", b"k", b"K", b"cs", b"CS", b"sc", b"SC", b"scn", b"SCN"}
TEXT_STATE_OPS = {b"Tf", b"Tc", b"Tw", b"Tz", b"TL", b"Ts", b"Tr"}
MOVE_OPS = {b"Td", b"TD", b"Tm", b"T*"}
SHOW_OPS = {b"Tj", b"TJ", b"'", b'"'}
PATH_OPS = {b"m", b"l", b"c", b"v", b"y", b"re", b"h"}
FILL_OPS = {b"f", b"F", b"f*", b"B", b"B*", b"b", b"b*"}
PAINT_OPS = FILL_OPS | {b"n", b"S", b"s"}
DEVICE_SPACES = {"/DeviceGray": "gray", "/CalGray": "gray", "/G": "gray", "/DeviceRGB": "rgb", "/CalRGB": "rgb",
                 "/RGB": "rgb", "/DeviceCMYK": "cmyk", "/CMYK": "cmyk"}
DEVICE_COLOUR_OPS = {b"g": "gray", b"rg": "rgb", b"k": "cmyk"}
BLACK = {"gray": [0.0], "rgb": [0.0, 0.0, 0.0], "cmyk": [0.0, 0.0, 0.0, 1.0]}


def mult(m: Matrix, n: Matrix) -> Matrix:
    """m then n (PDF's row-vector convention: a point p goes to p * m * n)."""
    a, b, c, d, e, f = m
    A, B, C, D, E, F = n
    return (a * A + b * C, a * B + b * D, c * A + d * C, c * B + d * D, e * A + f * C + E, e * B + f * D + F)


def apply(m: Matrix, x: float, y: float) -> tuple[float, float]:
    return x * m[0] + y * m[2] + m[4], x * m[1] + y * m[3] + m[5]


def bounding_box(points: list[tuple[float, float]]) -> Box:
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return min(xs), min(ys), max(xs), max(ys)


def meet(a: Box, b: Box, slack: float = 0.5) -> bool:
    return a[0] <= b[2] + slack and b[0] <= a[2] + slack and a[1] <= b[3] + slack and b[1] <= a[3] + slack


def intersect(a: Box, b: Box) -> Box:
    return max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])


def numbers(operands: list[Any]) -> list[float]:
    return [float(x) for x in operands if isinstance(x, (int, float))]


def number(value: Any, default: float) -> float:
    """A PDF number (direct or indirect) as a float; `default` for anything else."""
    value = value.get_object() if hasattr(value, "get_object") else value
    return float(value) if isinstance(value, (int, float)) else default


def to_rgb(space: str, values: list[float]) -> RGB | None:
    """A colour in RGB (0..1), or None when the space is not a device space we can judge (pattern, spot)."""
    try:
        if space == "gray":
            return (values[0],) * 3
        if space == "rgb":
            return values[0], values[1], values[2]
        if space == "cmyk":
            c, m, y, k = values[:4]
            return (1 - c) * (1 - k), (1 - m) * (1 - k), (1 - y) * (1 - k)
    except IndexError:
        return None
    return None


class FontWidths:
    """The advance widths (thousandths of an em) a string's codes take, for the positions of the strings after it."""

    def __init__(self, font: Any):
        font = font.get_object() if font is not None else DictionaryObject()
        self.two_byte = font.get("/Subtype") == "/Type0"
        self.widths: dict[int, float] = {}
        self.default = 500.0
        self.height = 1.0  # a Type3 font's glyph space, relative to the usual 1/1000 em
        scale = 1.0
        matrix = font.get("/FontMatrix")
        if font.get("/Subtype") == "/Type3" and isinstance(matrix, ArrayObject) and len(matrix) == 6:
            scale, self.height = abs(number(matrix[0], 0.001)) * 1000, abs(number(matrix[3], 0.001)) * 1000
        widths = font.get("/Widths")
        widths = widths.get_object() if widths is not None else None
        if not self.two_byte and isinstance(widths, ArrayObject):
            first = int(number(font.get("/FirstChar"), 0))
            for i, w in enumerate(widths):
                self.widths[first + i] = number(w, self.default) * scale

    def codes(self, raw: bytes) -> list[int]:
        if self.two_byte:
            return [raw[i] << 8 | (raw[i + 1] if i + 1 < len(raw) else 0) for i in range(0, len(raw), 2)]
        return list(raw)

    def width(self, code: int) -> float:
        return self.widths.get(code, self.default)


@dataclass
class Gfx:
    """The graphics state a q saves and a Q restores (text state included, as in PDF)."""
    ctm: Matrix
    clip: Box
    fill: RGB | None = (0.0, 0.0, 0.0)
    stroke: RGB | None = (0.0, 0.0, 0.0)
    fill_space: str = "gray"
    stroke_space: str = "gray"
    fill_alpha: float = 1.0
    stroke_alpha: float = 1.0
    font: FontWidths | None = None
    size: float = 0.0
    render: int = 0
    char_spacing: float = 0.0
    word_spacing: float = 0.0
    hscale: float = 1.0
    leading: float = 0.0
    rise: float = 0.0


def operations(stream: Any, pdf: Any) -> list[tuple[Any, bytes]]:
    """The operators of a content stream, strings kept as bytes (as pypdf's text extraction parses them, so that
    it decodes a rewritten copy with the font's encoding, the same way)."""
    return ContentStream(stream, pdf, "bytes").operations


def path_points(op: bytes, v: list[float]) -> list[tuple[float, float]]:
    """The points a path operator names (a rectangle's four corners)."""
    if op == b"re":
        if len(v) != 4:
            return []
        x, y, w, h = v
        return [(x, y), (x + w, y), (x + w, y + h), (x, y + h)]
    return [(v[i], v[i + 1]) for i in range(0, len(v) - 1, 2)]


def extend_path(path: list[list], op: bytes, points: list[tuple[float, float]]) -> None:
    """Add to a path kept as [points, straight] subpaths (straight: lines only, no curve)."""
    if op in (b"re", b"m") or not path:
        path.append([[], True])
    path[-1][0] += points
    if op in (b"c", b"v", b"y"):
        path[-1][1] = False
    if op == b"re":
        path.append([[], True])


def is_rectangle(points: list[tuple[float, float]]) -> bool:
    """True for an upright rectangle (every corner on one of two x and two y values)."""
    return len({round(x, 1) for x, _ in points}) <= 2 and len({round(y, 1) for _, y in points}) <= 2


def raw_bytes(s: Any) -> bytes:
    raw = getattr(s, "original_bytes", None)
    if isinstance(raw, bytes):
        return raw
    return bytes(s) if isinstance(s, bytes) else str(s).encode("latin-1", "replace")


def resolved(d: Any, key: str) -> Any:
    """d[key] resolved, or None (d may be an indirect reference or None)."""
    d = d.get_object() if d is not None else None
    value = d.get(key) if isinstance(d, DictionaryObject) else None
    return value.get_object() if value is not None else None
