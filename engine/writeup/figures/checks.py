"""Checks on a paper's figure set: no blank image, no image twice (compared as pictures, not by name), and no
more than the limit. numpy on the decoded PNGs (Pillow resamples them); each rejection comes with its reason."""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib import image as mpimg
from PIL import Image

log = logging.getLogger(__name__)

THUMB = 128  # width of the grey thumbnails two figures are compared on
INK = 0.1  # a pixel this far from the background colour (0..1 grey) is ink
MIN_INK_FRACTION = 0.002  # less ink than this: a blank figure
# no thumbnail cell differs by more: the same picture (measured on real figures: re-encoded <= 0.02,
# rescaled ~0.06; other plots, even one differing only in its title, >= 0.13)
NEAR_CELL_DIFF = 0.08
ASPECT_TOLERANCE = 0.03


@dataclass(frozen=True)
class Candidate:
    """A figure file on disk, before the checks; `priority` decides what the limit keeps (lower = kept first)."""
    file: Path
    priority: int
    key: str  # an identifier for the caller (its place in the set)


@dataclass(frozen=True)
class Rejection:
    key: str
    reason: str


def gray(path: Path) -> np.ndarray:
    """The image as a 2-D float array of grey levels in [0, 1] (transparent pixels count as white)."""
    img = np.asarray(mpimg.imread(str(path)), dtype=float)
    if img.dtype.kind != "f" or img.max(initial=0.0) > 1.0:
        img = img / 255.0
    if img.ndim == 2:
        return img
    rgb, alpha = img[..., :3], img[..., 3:4] if img.shape[-1] == 4 else None
    if alpha is not None:
        rgb = rgb * alpha + (1.0 - alpha)
    return rgb @ np.array([0.299, 0.587, 0.114])


def blank_reason(g: np.ndarray) -> str | None:
    """Why the picture is blank (nearly every pixel the background colour), or None."""
    if g.size == 0 or min(g.shape) < 8:
        return f"blank: the image is only {g.shape[1] if g.ndim == 2 else 0}x{g.shape[0]} pixels"
    background = float(np.median(g))
    ink = float(np.mean(np.abs(g - background) > INK))
    if ink < MIN_INK_FRACTION:
        return f"blank: {ink:.2%} of its pixels differ from the background"
    return None


def _resample(g: np.ndarray, width: int, height: int, box: bool) -> np.ndarray:
    img = Image.fromarray(g.astype(np.float32), mode="F")
    return np.asarray(img.resize((width, height), Image.Resampling.BOX if box else Image.Resampling.LANCZOS))


def thumbnail(g: np.ndarray, width: int = THUMB) -> np.ndarray:
    """Area-averaged grey thumbnail `width` wide: re-encoding noise averages out, shapes and text stay."""
    return _resample(g, width, max(1, round(width * g.shape[0] / g.shape[1])), box=True)


@dataclass(frozen=True)
class Fingerprint:
    digest: str  # of the decoded pixels: the same picture under another name or in another container
    pixels: np.ndarray  # grey levels, float32

    @property
    def aspect(self) -> float:
        return self.pixels.shape[1] / self.pixels.shape[0]

    def same_picture(self, other: Fingerprint) -> bool:
        """Identical pixels, or the same picture re-encoded (lossy compression, a palette) or rescaled: the
        larger is resampled to the smaller's size and no cell of their thumbnails differs by NEAR_CELL_DIFF."""
        if self.digest == other.digest:
            return True
        if abs(self.aspect - other.aspect) > ASPECT_TOLERANCE * max(self.aspect, other.aspect):
            return False
        a, b = self.pixels, other.pixels
        if a.shape != b.shape:
            a, b = (a, b) if a.size >= b.size else (b, a)
            a = _resample(a, b.shape[1], b.shape[0], box=False)
        return float(np.max(np.abs(thumbnail(a) - thumbnail(b)))) < NEAR_CELL_DIFF


def fingerprint(g: np.ndarray) -> Fingerprint:
    quantised = np.round(g * 255).astype(np.uint8)
    digest = hashlib.sha256(quantised.tobytes() + str(g.shape).encode()).hexdigest()
    return Fingerprint(digest, g.astype(np.float32))


def check_set(candidates: list[Candidate], max_figures: int) -> tuple[list[Candidate], list[Rejection]]:
    """The candidates that pass, in priority order, at most `max_figures`; and every rejection with its reason.

    A file that cannot be read or is blank is rejected; of two that show the same picture (identical, or equal
    up to re-encoding and resolution) the one with the lower priority goes; past the limit, the rest go."""
    kept: list[tuple[Candidate, Fingerprint]] = []
    rejected: list[Rejection] = []
    for cand in sorted(candidates, key=lambda c: c.priority):
        try:
            g = gray(cand.file)
        except (OSError, ValueError, SyntaxError) as e:  # PIL reports a corrupt PNG as SyntaxError
            rejected.append(Rejection(cand.key, f"unreadable image: {type(e).__name__}: {e}"))
            continue
        reason = blank_reason(g)
        if reason is None:
            fp = fingerprint(g)
            twin = next((c for c, other in kept if fp.same_picture(other)), None)
            if twin is not None:
                reason = f"duplicate of {twin.file.name}"
        if reason is None and len(kept) >= max_figures:
            reason = f"over the limit of {max_figures} figures"
        if reason is not None:
            log.info("figure %s dropped: %s", cand.file.name, reason)
            rejected.append(Rejection(cand.key, reason))
            continue
        kept.append((cand, fp))
    return [c for c, _ in kept], rejected
