"""Textures from the photographs and textures scikit-image ships (``skimage.data``, bundled
in its wheel: no download), with a box-filtered mip pyramid and bilinear lookup.

Only images that ``skimage.data`` loads without the optional ``pooch`` download are used
(:data:`PHOTOS`, :data:`GREY`).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

#: Colour photographs used on billboards and posters.
PHOTOS = ("astronaut", "coffee", "rocket", "chelsea", "cat", "hubble_deep_field",
          "immunohistochemistry", "colorwheel", "logo", "stereo_motorcycle")
#: Grey images used as tinted surface textures (ground, walls) or as posters.
GREY = ("grass", "gravel", "brick", "camera", "moon", "coins", "clock", "page", "text", "cell")
#: Smallest side of the coarsest mip level.
MIN_LEVEL_SIDE = 4


@lru_cache(maxsize=None)
def skimage_image(name: str) -> np.ndarray:
    """float32 [H, W, 3] in 0..255 of ``skimage.data.<name>`` (grey replicated; alpha
    composited on white; ``stereo_motorcycle``: its left view). Read-only, cached."""
    import skimage.data

    img = getattr(skimage.data, name)()
    if isinstance(img, tuple):
        img = img[0]
    img = np.asarray(img)
    if img.dtype == bool:
        img = img.astype(np.uint8) * 255
    img = img.astype(np.float32)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.shape[2] == 4:
        a = img[..., 3:] / 255.0
        img = img[..., :3] * a + 255.0 * (1.0 - a)
    img = np.ascontiguousarray(img[..., :3])
    img.setflags(write=False)
    return img


class Texture:
    """An image with its mip pyramid (2x2 box filter per level), sampled bilinearly.

    ``sample(s, t, footprint)``: ``s`` across, ``t`` down, in units of the image's width and
    height (``wrap``: tiled, else clamped to the border); ``footprint``: the size of a screen
    pixel in level-0 texels, which picks the level (nearest, log2) so that far surfaces are
    read prefiltered instead of aliasing.
    """

    def __init__(self, rgb: np.ndarray, wrap: bool = True):
        rgb = np.asarray(rgb, np.float32)
        self.levels = [rgb]
        while min(self.levels[-1].shape[:2]) >= 2 * MIN_LEVEL_SIDE:
            a = self.levels[-1]
            h, w = (a.shape[0] // 2) * 2, (a.shape[1] // 2) * 2
            a = a[:h, :w]
            self.levels.append(0.25 * (a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2]))
        self.wrap = wrap
        self.height, self.width = rgb.shape[:2]
        self.mean = rgb.reshape(-1, 3).mean(0)

    def sample(self, s: np.ndarray, t: np.ndarray, footprint: np.ndarray) -> np.ndarray:
        """float32 [N, 3] colours at (s, t) (each [N]); see the class docstring."""
        out = np.empty(s.shape + (3,), np.float32)
        lev = np.log2(np.maximum(footprint, 1e-6)) + 0.5
        lev = np.clip(lev, 0, len(self.levels) - 1).astype(np.int32)
        for k in np.flatnonzero(np.bincount(lev.ravel(), minlength=1)):
            m = lev == k
            out[m] = self._bilinear(self.levels[k], s[m], t[m])
        return out

    def _bilinear(self, img: np.ndarray, s: np.ndarray, t: np.ndarray) -> np.ndarray:
        h, w = img.shape[:2]
        flat = img.reshape(-1, 3)
        x = s.astype(np.float32) * np.float32(w) - np.float32(0.5)
        y = t.astype(np.float32) * np.float32(h) - np.float32(0.5)
        x0f, y0f = np.floor(x), np.floor(y)
        fx, fy = (x - x0f)[:, None], (y - y0f)[:, None]
        x0, y0 = x0f.astype(np.int32), y0f.astype(np.int32)
        x1, y1 = x0 + 1, y0 + 1
        if self.wrap:
            x0, x1, y0, y1 = x0 % w, x1 % w, y0 % h, y1 % h
        else:
            x0, x1 = np.clip(x0, 0, w - 1), np.clip(x1, 0, w - 1)
            y0, y1 = np.clip(y0, 0, h - 1), np.clip(y1, 0, h - 1)
        r0, r1 = y0 * w, y1 * w
        top = flat.take(r0 + x0, axis=0)
        top += fx * (flat.take(r0 + x1, axis=0) - top)
        bot = flat.take(r1 + x0, axis=0)
        bot += fx * (flat.take(r1 + x1, axis=0) - bot)
        return top + fy * (bot - top)


@lru_cache(maxsize=None)
def _texture(name: str, grey: bool, wrap: bool, contrast: float, crop: tuple) -> Texture:
    img = skimage_image(name)
    if crop:
        y0, y1, x0, x1 = crop
        h, w = img.shape[:2]
        img = img[int(y0 * h):int(y1 * h), int(x0 * w):int(x1 * w)]
    if grey:
        g = img.mean(axis=2, keepdims=True)
        m = max(float(g.mean()), 1.0)
        img = np.repeat(1.0 + contrast * (g / m - 1.0), 3, axis=2)     # mean 1
    return Texture(img, wrap)


class Tinted:
    """A grey :class:`Texture` of mean 1 times a colour: what :func:`texture` returns for a tint."""

    def __init__(self, base: Texture, tint):
        self.base, self.tint = base, np.asarray(tint, np.float32)
        self.width, self.height, self.wrap = base.width, base.height, base.wrap
        self.mean = self.tint * base.mean

    def sample(self, s, t, footprint):
        return self.base.sample(s, t, footprint) * self.tint


def texture(name: str, tint=None, wrap: bool = True, contrast: float = 1.0, crop=()):
    """The :class:`Texture` of ``skimage.data.<name>`` (its mip pyramid cached). ``tint``
    (r, g, b in 0..255): the image made grey, its contrast about the mean multiplied by
    ``contrast``, scaled so that its mean is ``tint`` (grass becomes green, gravel asphalt,
    ...); None keeps its colours. ``crop``: (y0, y1, x0, x1) as fractions of the image."""
    base = _texture(name, tint is not None, bool(wrap), float(contrast) if tint is not None else 1.0,
                    tuple(crop))
    return base if tint is None else Tinted(base, tint)
