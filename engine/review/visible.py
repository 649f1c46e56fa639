"""What a reader of a PDF page sees, and what is drawn so that no reader sees it.

pypdf parses the page's content stream (and the Form XObjects it draws: included figures); this module follows
the graphics and text state through it (transformation matrix, fill and stroke colour and alpha, text render mode,
font size, text and line matrices, clipping rectangle, the areas painted so far) and judges every string shown:
visible, or hidden with a reason (`why`). pypdf's own text extraction then reads a copy of the page whose
content keeps only the strings wanted: the visible ones for the model, each hidden kind for the report. A string
that is dropped becomes a TJ offset of the same width, so the text around it keeps its place.

pypdf's `visitor_text` callback is not enough on its own: it reports text in chunks that run across colour and
render-mode changes (pdfTeX writes `1 g` for white text in the middle of a line, inside one text object), so the
state has to be judged per string, here.

Not detected: text covered by something painted later over it, text clipped by a non-rectangular path (judged by
the path's bounding box), soft masks; positions inside a composite-font (Type0) string are estimated at half an
em per glyph."""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from pypdf.generic import ArrayObject, ContentStream, DictionaryObject, FloatObject, NameObject

from engine.review.pdf_state import (
    BLACK,
    COLOUR_OPS,
    DEVICE_COLOUR_OPS,
    DEVICE_SPACES,
    FILL_OPS,
    IDENTITY,
    MOVE_OPS,
    PAINT_OPS,
    PATH_OPS,
    RGB,
    SHOW_OPS,
    TEXT_STATE_OPS,
    WHITE,
    Box,
    FontWidths,
    Gfx,
    Matrix,
    apply,
    bounding_box,
    extend_path,
    intersect,
    is_rectangle,
    meet,
    mult,
    number,
    numbers,
    operations,
    path_points,
    raw_bytes,
    resolved,
    to_rgb,
)

TINY_PT = 4.0           # text smaller than this (its height on the page, in points) is not read
SAME_COLOUR = 0.1       # text within this of its background (each RGB channel, 0..1) is not seen
INVISIBLE_ALPHA = 0.05  # a fill alpha below this paints nothing a reader sees
SCANNED_IMAGE_SHARE = 0.5  # a page whose images cover this much of it is a scan: its invisible text is the OCR layer

WHY_RENDER = "text render mode {mode} (invisible)"
WHY_TRANSPARENT = "fully transparent text"
WHY_OFF_PAGE = "outside the page's crop box"
WHY_CLIPPED = "clipped away (outside the area its figure or clip shows)"
WHY_WHITE = "white text on a white background"
WHY_SAME = "text in the colour of its background"
WHY_TINY = "font size under 4 pt"

MAX_FORM_DEPTH = 12  # forms drawn inside forms, followed this deep

Keep = Callable[[str | None], bool]  # given a string's verdict (None: visible), whether a copy keeps it


def _close(a: RGB, b: RGB) -> bool:
    return max(abs(x - y) for x, y in zip(a, b)) <= SAME_COLOUR


class PageWalk:
    """One pass over a page's content: every string shown is judged (`found` counts the hidden ones by reason);
    with `keep`, `run` returns the content rewritten to show only the strings `keep` accepts."""

    def __init__(self, page: Any, keep: Keep | None = None):
        self.page, self.keep = page, keep
        box = page.cropbox
        self.crop: Box = (float(box.left), float(box.bottom), float(box.right), float(box.top))
        self.found: Counter[str] = Counter()
        self.regions: list[tuple[Box, RGB | None]] = []  # painted areas in painting order (None: an image)
        self.colours: list[RGB] = [WHITE]  # the colours painted (and the paper's), to skip most lookups
        self.image_area = 0.0
        self._fonts: dict[int, FontWidths] = {}
        self._copies = 0

    def run(self) -> ContentStream | None:
        if self.page.get("/Contents") is None:
            return None
        resources = resolved(self.page, "/Resources") or DictionaryObject()
        ops, _ = self._walk(operations(self.page["/Contents"], self.page.pdf), resources, Gfx(IDENTITY, self.crop), 0)
        if self.keep is None:
            return None
        out = ContentStream(None, self.page.pdf)
        out.operations = ops
        return out

    def _walk(self, ops: list[tuple[Any, bytes]], res: Any, g: Gfx, depth: int) -> tuple[list, bool]:
        out: list[tuple[Any, bytes]] = []
        changed, saved, path, clip_next = False, [], [], False
        tm = tlm = IDENTITY
        for operands, op in ops:
            new = None
            if op == b"q":
                saved.append(replace(g))
            elif op == b"Q":
                g = saved.pop() if saved else g
            elif op == b"cm" and len(numbers(operands)) == 6:
                g.ctm = mult(tuple(numbers(operands)), g.ctm)  # type: ignore[arg-type]
            elif op in COLOUR_OPS:
                self._colour(g, op, operands, res)
            elif op == b"gs" and operands:
                state = resolved(resolved(res, "/ExtGState"), operands[0]) or {}
                g.fill_alpha = number(state.get("/ca"), g.fill_alpha)
                g.stroke_alpha = number(state.get("/CA"), g.stroke_alpha)
            elif op in TEXT_STATE_OPS:
                self._text_state(g, op, operands, res)
            elif op == b"BT":
                tm = tlm = IDENTITY
            elif op in MOVE_OPS:
                tm = tlm = self._move(g, op, operands, tlm)
            elif op in SHOW_OPS:
                new, tm, tlm = self._show(g, op, operands, tm, tlm)
            elif op in PATH_OPS:
                extend_path(path, op, [apply(g.ctm, x, y) for x, y in path_points(op, numbers(operands))])
            elif op in (b"W", b"W*"):
                clip_next = True
            elif op in PAINT_OPS:
                if path and op in FILL_OPS:
                    for points, straight in path:
                        if points:  # a filled rectangle is a background of its colour; another shape's is unknown
                            self._paint(g, bounding_box(points), g.fill if straight and is_rectangle(points) else None,
                                        g.fill_alpha)
                corners = [p for points, _ in path for p in points]
                if corners and clip_next:
                    g.clip = intersect(g.clip, bounding_box(corners))
                path, clip_next = [], False
            elif op == b"Do" and operands:
                new = self._do(g, operands[0], res, depth)
            elif op == b"INLINE IMAGE":
                self._image(g)
            elif op == b"sh":
                self.regions.append((g.clip, None))
            if new is None:
                out.append((operands, op))
            else:
                out.extend(new)
                changed = True
        return out, changed

    def _colour(self, g: Gfx, op: bytes, operands: list[Any], res: Any) -> None:
        fill = op.islower()
        kind = op.lower()
        if kind in DEVICE_COLOUR_OPS:
            space = DEVICE_COLOUR_OPS[kind]
            colour = to_rgb(space, numbers(operands))
        elif kind == b"cs":
            space = self._space(operands[0] if operands else None, res)
            colour = to_rgb(space, BLACK.get(space, []))
        else:  # sc / scn: in the current space; a pattern name makes it unknown
            space = g.fill_space if fill else g.stroke_space
            named = any(isinstance(x, NameObject) for x in operands)
            colour = None if named else to_rgb(space, numbers(operands))
        if fill:
            g.fill_space, g.fill = space, colour
        else:
            g.stroke_space, g.stroke = space, colour

    def _space(self, name: Any, res: Any) -> str:
        if name in DEVICE_SPACES:
            return DEVICE_SPACES[name]
        cs = resolved(resolved(res, "/ColorSpace"), name) if name is not None else None
        if isinstance(cs, NameObject):
            return DEVICE_SPACES.get(cs, "other")
        if isinstance(cs, ArrayObject) and cs:
            if cs[0] == "/ICCBased":
                n = resolved(cs[1], "/N") if len(cs) > 1 else None
                return {1: "gray", 3: "rgb", 4: "cmyk"}.get(int(n) if isinstance(n, int) else 0, "other")
            return DEVICE_SPACES.get(cs[0], "other")
        return "other"

    def _text_state(self, g: Gfx, op: bytes, operands: list[Any], res: Any) -> None:
        v = numbers(operands)
        if op == b"Tf" and operands:
            font = resolved(resolved(res, "/Font"), operands[0])
            key = id(font)
            if key not in self._fonts:
                self._fonts[key] = FontWidths(font)
            g.font = self._fonts[key]
            g.size = v[0] if v else g.size
        elif v:
            value = v[0]
            if op == b"Tc":
                g.char_spacing = value
            elif op == b"Tw":
                g.word_spacing = value
            elif op == b"Tz":
                g.hscale = value / 100
            elif op == b"TL":
                g.leading = value
            elif op == b"Ts":
                g.rise = value
            elif op == b"Tr":
                g.render = int(value)

    def _move(self, g: Gfx, op: bytes, operands: list[Any], tlm: Matrix) -> Matrix:
        v = numbers(operands)
        if op == b"Tm":
            return tuple(v) if len(v) == 6 else tlm  # type: ignore[return-value]
        if op == b"T*":
            return mult((1.0, 0.0, 0.0, 1.0, 0.0, -g.leading), tlm)
        if len(v) < 2:
            return tlm
        if op == b"TD":
            g.leading = -v[1]
        return mult((1.0, 0.0, 0.0, 1.0, v[0], v[1]), tlm)

    def _show(self, g: Gfx, op: bytes, operands: list[Any], tm: Matrix,
              tlm: Matrix) -> tuple[list | None, Matrix, Matrix]:
        """Judge each string of a show operator; the operators that replace it when `keep` drops some of them."""
        prefix: list[tuple[Any, bytes]] = []
        if op in (b"'", b'"'):
            if op == b'"' and len(operands) >= 3:
                spacing = numbers(operands[:2])
                if len(spacing) == 2:
                    g.word_spacing, g.char_spacing = spacing
                prefix = [([operands[0]], b"Tw"), ([operands[1]], b"Tc")]
                operands = operands[2:]
            tm = tlm = mult((1.0, 0.0, 0.0, 1.0, 0.0, -g.leading), tlm)
            prefix.append(([], b"T*"))
        items = operands[0] if op == b"TJ" and operands and isinstance(operands[0], ArrayObject) else operands[:1]
        font, scale = g.font or FontWidths(None), g.size * g.hscale
        kept: list[Any] = []
        dropped = False
        for item in items:
            if isinstance(item, (int, float)):  # a TJ offset, in thousandths of an em, backwards
                tm = mult((1.0, 0.0, 0.0, 1.0, -float(item) / 1000 * scale, 0.0), tm)
                kept.append(item)
                continue
            if not isinstance(item, (str, bytes)):
                continue
            codes = font.codes(raw_bytes(item))
            advance = sum((font.width(c) / 1000 * g.size + g.char_spacing
                           + (g.word_spacing if c == 32 and not font.two_byte else 0.0)) * g.hscale for c in codes)
            verdict = self._judge(g, tm, advance)
            if verdict:
                self.found[verdict] += 1
            tm = mult((1.0, 0.0, 0.0, 1.0, advance, 0.0), tm)
            if self.keep is None or self.keep(verdict):
                kept.append(item)
            else:
                dropped = True
                if scale:
                    kept.append(FloatObject(-advance * 1000 / scale))
        if not dropped:
            return None, tm, tlm
        return prefix + [([ArrayObject(kept)], b"TJ")], tm, tlm

    def _judge(self, g: Gfx, tm: Matrix, advance: float) -> str | None:
        """Why a string at text matrix `tm`, `advance` wide, is not seen; None when it is."""
        m = mult(tm, g.ctm)
        up = g.size * (g.font.height if g.font else 1.0)
        corners = [apply(m, x, y) for x in (0.0, advance) for y in (g.rise, g.rise + up)]
        box = bounding_box(corners)
        height = abs(up) * math.hypot(m[2], m[3])
        stroked = g.render in (1, 5)
        if g.render in (3, 7) and not self._ocr_layer(box):
            return WHY_RENDER.format(mode=g.render)
        if (g.stroke_alpha if stroked else g.fill_alpha) < INVISIBLE_ALPHA:
            return WHY_TRANSPARENT
        if not meet(box, self.crop):
            return WHY_OFF_PAGE
        if not meet(box, g.clip):
            return WHY_CLIPPED
        why = self._background(g.stroke if stroked else g.fill, box, height)
        if why:
            return why
        return WHY_TINY if height < TINY_PT else None

    def _background(self, colour: RGB | None, box: Box, height: float) -> str | None:
        """WHY_WHITE or WHY_SAME when the text's colour is that of the topmost area painted under its middle."""
        if colour is None or not any(_close(colour, c) for c in self.colours):
            return None
        x, y = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        under: RGB | None = WHITE
        for area, paint in reversed(self.regions):
            if area[0] <= x <= area[2] and area[1] <= y <= area[3] and \
                    min(area[2] - area[0], area[3] - area[1]) >= 0.5 * height:
                under = paint
                break
        if under is None or not _close(colour, under):
            return None
        return WHY_WHITE if _close(under, WHITE) else WHY_SAME

    def _ocr_layer(self, box: Box) -> bool:
        """True on a scanned page (images cover most of it) for text over an image: the OCR text layer."""
        page = (self.crop[2] - self.crop[0]) * (self.crop[3] - self.crop[1])
        if self.image_area < SCANNED_IMAGE_SHARE * page:
            return False
        x, y = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        return any(paint is None and a[0] <= x <= a[2] and a[1] <= y <= a[3] for a, paint in self.regions)

    def _paint(self, g: Gfx, box: Box, colour: RGB | None, alpha: float) -> None:
        area = intersect(box, g.clip)
        if alpha < 0.5 or area[2] - area[0] < 1 or area[3] - area[1] < 1:
            return  # translucent, or a rule or a marker: no background for text
        self.regions.append((area, colour))
        if colour is not None and colour not in self.colours:
            self.colours.append(colour)

    def _image(self, g: Gfx) -> None:
        box = bounding_box([apply(g.ctm, x, y) for x in (0.0, 1.0) for y in (0.0, 1.0)])
        self.regions.append((intersect(box, g.clip), None))
        seen = intersect(box, self.crop)
        self.image_area += max(0.0, seen[2] - seen[0]) * max(0.0, seen[3] - seen[1])

    def _do(self, g: Gfx, name: Any, res: Any, depth: int) -> list | None:
        """An image is painted area; a form (an included figure) is walked in its own frame and, when a string in
        it is dropped, replaced by a rewritten copy under a new name."""
        xobjects = resolved(res, "/XObject")
        xobj = resolved(xobjects, name) if xobjects is not None else None
        if xobj is None:
            return None
        if xobj.get("/Subtype") == "/Image":
            self._image(g)
            return None
        if xobj.get("/Subtype") != "/Form" or depth >= MAX_FORM_DEPTH:
            return None
        matrix = numbers(list(xobj.get("/Matrix") or [])) or list(IDENTITY)
        inner = replace(g, ctm=mult(tuple(matrix) if len(matrix) == 6 else IDENTITY, g.ctm))  # type: ignore[arg-type]
        bbox = numbers(list(xobj.get("/BBox") or []))
        if len(bbox) == 4:
            corners = [apply(inner.ctm, x, y) for x in bbox[::2] for y in bbox[1::2]]
            inner.clip = intersect(g.clip, bounding_box(corners))
        ops, changed = self._walk(operations(xobj, self.page.pdf),
                                  resolved(xobj, "/Resources") or res, inner, depth + 1)
        if not changed:
            return None
        copy = ContentStream(None, self.page.pdf)
        copy.operations = ops
        for key, value in xobj.items():
            if key not in ("/Length", "/Filter", "/DecodeParms"):
                copy[NameObject(key)] = value
        self._copies += 1
        new_name = NameObject(f"/VisibleCopy{id(self)}x{self._copies}")
        xobjects[new_name] = copy
        return [([new_name], b"Do")]


def page_text(page: Any) -> tuple[str, dict[str, str]]:
    """A page's visible text (pypdf's extract_text of the page as it is, when nothing on it is hidden) and its
    hidden text by reason."""
    walk = PageWalk(page)
    walk.run()
    if not walk.found:
        return page.extract_text() or "", {}
    visible = _extract(page, lambda verdict: verdict is None)
    return visible, {why: _extract(page, lambda verdict, why=why: verdict == why) for why in walk.found}


def _extract(page: Any, keep: Keep) -> str:
    """pypdf's text of the page with only the strings `keep` accepts (the page is restored after)."""
    original = page.get("/Contents")
    page[NameObject("/Contents")] = PageWalk(page, keep).run()
    try:
        return page.extract_text() or ""
    finally:
        page[NameObject("/Contents")] = original
