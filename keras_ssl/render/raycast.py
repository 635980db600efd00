"""Inverse-mapping ray caster: for each pixel a ray from a pinhole camera, intersected with
the ground plane, an optional ceiling plane and a list of rectangles (walls, billboards,
posts); the nearest hit wins; its colour by bilinear lookup in a mip-mapped texture.

Conventions (those of :mod:`keras_ssl.data.motion` and KITTI): camera frame x right, y down,
z forward; a pose is the 4x4 camera-to-world transform [R | c]; the world's y axis points
down too (the world is frame 0's camera in a drive), so the ground is the plane
``y = ground_y`` (> 0: below the camera) and "up" is -y. Pixel (row r, column c) is the ray
through image point (c, r) (pixel centres at integer coordinates, as OpenCV and KITTI's
projection matrices), direction ``R @ inv(K) @ [c, r, 1]``: its ray parameter at a hit is
the hit's camera z-depth.

Everything is vectorised numpy in float32 over the pixels; a rectangle is tested only on the
pixels of its projected bounding box (when it lies in front of the camera) and only if it
is not outside the view frustum, so a frame costs a few ms per visible rectangle.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np

from keras_ssl.render.textures import Texture

#: Sky id, ground id, ceiling id in the surface map; rectangle k has id RECT0 + k.
SKY, GROUND, CEILING, RECT0 = -1, 0, 1, 2
#: Hits nearer than this (metres of camera z) are ignored.
NEAR = 0.05


def smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


@dataclass
class BandGround:
    """A ground whose material depends on the distance ``d`` to a centre line (a road):
    ``materials[k] = (texture, tile_m, edge)`` is used for ``edges[k-1] <= d < edge`` (the
    last edge may be inf), blended over ``blend`` metres at each edge. ``lines``: distances
    at which a painted line ``line_width`` wide is drawn in ``line_colour``. ``macro``: a
    texture and tile (metres) whose brightness modulates everything at a large scale (no
    visible tiling). ``distance(x, z)`` -> d, float32 arrays."""
    distance: Callable[[np.ndarray, np.ndarray], np.ndarray]
    materials: Sequence[tuple]
    blend: float = 0.25
    lines: Sequence[float] = ()
    line_width: float = 0.15
    line_colour: tuple = (225.0, 225.0, 215.0)
    macro: Optional[tuple] = None

    def shade(self, x: np.ndarray, z: np.ndarray, footprint_m: np.ndarray) -> np.ndarray:
        d = self.distance(x, z)
        out = np.zeros(x.shape + (3,), np.float32)
        lower = None
        for k, (tex, tile, edge) in enumerate(self.materials):
            w = np.ones_like(d) if lower is None else smoothstep(lower - self.blend, lower + self.blend, d)
            if np.isfinite(edge) and k < len(self.materials) - 1:
                w = w * (1.0 - smoothstep(edge - self.blend, edge + self.blend, d))
            lower = edge
            m = w > 1e-3
            if m.any():
                out[m] += w[m, None] * tex.sample(x[m] / tile, z[m] / tile, footprint_m[m] * tex.width / tile)
        for ld in self.lines:
            # the line fades out where a pixel is wider than the line (no far aliasing)
            w = np.clip(1.0 - np.abs(d - ld) / (0.5 * self.line_width), 0.0, 1.0)
            w = w * np.clip(self.line_width / np.maximum(footprint_m, 1e-6) - 0.5, 0.0, 1.0)
            m = w > 1e-3
            if m.any():
                out[m] += w[m, None] * (np.asarray(self.line_colour, np.float32) - out[m])
        if self.macro is not None:
            tex, tile = self.macro
            m = tex.sample(x / tile + 0.37, z / tile + 0.61, footprint_m * tex.width / tile)
            out *= (0.7 + 0.6 * m.mean(axis=1, keepdims=True) / max(float(tex.mean.mean()), 1.0) * 0.5)
        return out


@dataclass
class Rects:
    """Rectangles ``p0 + u a + v b``, 0 <= u <= w, 0 <= v <= h (a, b orthonormal; b = up =
    (0, -1, 0) for a vertical wall; p0 its bottom-left corner seen from the side a x b
    points away from). Texture ``textures[tex[k]]`` repeats every ``su[k]`` x ``sv[k]``
    metres from the top-left corner (a billboard: su = w, sv = h and a clamped texture);
    ``shade[k]`` scales its colour (lighting by orientation)."""
    p0: np.ndarray
    a: np.ndarray
    b: np.ndarray
    w: np.ndarray
    h: np.ndarray
    tex: np.ndarray
    su: np.ndarray
    sv: np.ndarray
    shade: np.ndarray

    @classmethod
    def empty(cls) -> "Rects":
        z3, z = np.zeros((0, 3), np.float32), np.zeros(0, np.float32)
        return cls(z3, z3, z3, z, z, np.zeros(0, np.int32), z, z, z)

    @classmethod
    def from_list(cls, items: list[dict]) -> "Rects":
        if not items:
            return cls.empty()
        get = lambda k, dt=np.float32: np.asarray([it[k] for it in items], dt)  # noqa: E731
        return cls(get("p0"), get("a"), get("b"), get("w"), get("h"), get("tex", np.int32),
                   get("su"), get("sv"), get("shade"))

    def __len__(self) -> int:
        return len(self.w)

    @property
    def normal(self) -> np.ndarray:
        return np.cross(self.a, self.b)

    def corners(self) -> np.ndarray:
        """[M, 4, 3] world corners."""
        p, aw, bh = self.p0, self.a * self.w[:, None], self.b * self.h[:, None]
        return np.stack([p, p + aw, p + aw + bh, p + bh], axis=1)


@dataclass
class World:
    """What a camera sees: a ground (``BandGround``-like: ``shade(x, z, footprint_m)``) at
    ``y = ground_y``, optionally a ceiling at ``y = ceiling_y`` (< 0, above) with a texture,
    rectangles, the sky (gradient from ``horizon`` to ``zenith`` colour) and haze towards the
    horizon colour with distance (``haze_m``: 63% at that many metres; None: none)."""
    ground: object
    rects: Rects = field(default_factory=Rects.empty)
    textures: list = field(default_factory=list)
    ground_y: float = 1.65
    ceiling_y: Optional[float] = None
    ceiling: Optional[tuple] = None          # (Texture, tile_m, shade)
    horizon: tuple = (200.0, 215.0, 230.0)
    zenith: tuple = (70.0, 120.0, 200.0)
    haze_m: Optional[float] = 250.0
    max_distance: float = 200.0


def intrinsics(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    return np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], np.float64)


def camera_rays(K: np.ndarray, height: int, width: int) -> np.ndarray:
    """float32 [3, H, W]: inv(K) @ [c, r, 1] for every pixel (z component 1)."""
    r, c = np.mgrid[0:height, 0:width].astype(np.float64)
    pts = np.stack([c, r, np.ones_like(c)])
    return np.einsum("ij,jhw->ihw", np.linalg.inv(K), pts).astype(np.float32)


@dataclass
class View:
    """A rendered frame: ``rgb`` uint8 [H, W, 3]; ``depth`` float32 [H, W] camera z of the
    hit (inf for sky); ``surface`` int32 [H, W]: :data:`SKY`, :data:`GROUND`,
    :data:`CEILING` or :data:`RECT0` + k."""
    rgb: np.ndarray
    depth: np.ndarray
    surface: np.ndarray


def render_view(world: World, pose: np.ndarray, K: np.ndarray, height: int, width: int,
                rays: Optional[np.ndarray] = None) -> View:
    """Render ``world`` from camera-to-world ``pose`` (4x4) with intrinsics ``K`` (3x3)."""
    if rays is None:
        rays = camera_rays(K, height, width)
    R = np.asarray(pose[:3, :3], np.float32)
    c = np.asarray(pose[:3, 3], np.float32)
    D = np.einsum("ij,jhw->ihw", R, rays)               # world ray directions, [3, H, W]
    Dx, Dy, Dz = D
    H, W = height, width
    zbuf = np.full((H, W), np.inf, np.float32)
    sid = np.full((H, W), SKY, np.int32)
    U = np.zeros((H, W), np.float32)
    V = np.zeros((H, W), np.float32)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        t = (np.float32(world.ground_y) - c[1]) / Dy
        m = (Dy > 0) & (t > NEAR) & (t < world.max_distance)
        zbuf[m], sid[m] = t[m], GROUND
        if world.ceiling_y is not None:
            t = (np.float32(world.ceiling_y) - c[1]) / Dy
            m = (Dy < 0) & (t > NEAR) & (t < zbuf)
            zbuf[m], sid[m] = t[m], CEILING
        for k, (r0, r1, c0, c1) in _visible_rects(world, R, c, K, H, W):
            rs = world.rects
            n = np.cross(rs.a[k], rs.b[k])
            rel = c - rs.p0[k]
            dx, dy, dz = Dx[r0:r1, c0:c1], Dy[r0:r1, c0:c1], Dz[r0:r1, c0:c1]
            den = n[0] * dx + n[1] * dy + n[2] * dz
            t = -(n @ rel) / den
            a, b = rs.a[k], rs.b[k]
            u = (a @ rel) + t * (a[0] * dx + a[1] * dy + a[2] * dz)
            v = (b @ rel) + t * (b[0] * dx + b[1] * dy + b[2] * dz)
            zb = zbuf[r0:r1, c0:c1]
            m = (t > NEAR) & (t < zb) & (u >= 0) & (u <= rs.w[k]) & (v >= 0) & (v <= rs.h[k])
            if m.any():
                zb[m] = t[m]
                sid[r0:r1, c0:c1][m] = RECT0 + k
                U[r0:r1, c0:c1][m] = u[m]
                V[r0:r1, c0:c1][m] = v[m]
    rgb = _shade(world, c, D, rays, K, zbuf, sid, U, V)
    return View(rgb, zbuf, sid)


def _visible_rects(world: World, R, c, K, H, W):
    """(k, (r0, r1, c0, c1)) of the rectangles that may be visible, with the pixel box to
    test (the whole image when a corner is behind the camera)."""
    rs = world.rects
    if len(rs) == 0:
        return []
    corners = (rs.corners() - c) @ R                   # camera coordinates, [M, 4, 3]
    x, y, z = corners[..., 0], corners[..., 1], corners[..., 2]
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    outside = ((fx * x + cx * z < 0).all(1) | (fx * x + (cx - (W - 1)) * z > 0).all(1)
               | (fy * y + cy * z < 0).all(1) | (fy * y + (cy - (H - 1)) * z > 0).all(1)
               | (z < NEAR).all(1))
    # distance from the camera to the nearest point of each rectangle
    rel = c - rs.p0
    u = np.clip(np.einsum("mi,mi->m", rel, rs.a), 0, rs.w)
    v = np.clip(np.einsum("mi,mi->m", rel, rs.b), 0, rs.h)
    near = rs.p0 + rs.a * u[:, None] + rs.b * v[:, None]
    far = np.linalg.norm(near - c, axis=1) > world.max_distance
    out = []
    for k in np.flatnonzero(~(outside | far)):
        if (z[k] > NEAR).all():
            px = fx * x[k] / z[k] + cx
            py = fy * y[k] / z[k] + cy
            c0, c1 = int(max(np.floor(px.min()) - 1, 0)), int(min(np.ceil(px.max()) + 2, W))
            r0, r1 = int(max(np.floor(py.min()) - 1, 0)), int(min(np.ceil(py.max()) + 2, H))
            if c0 >= c1 or r0 >= r1:
                continue
        else:
            r0, r1, c0, c1 = 0, H, 0, W
        out.append((int(k), (r0, r1, c0, c1)))
    return out


def _shade(world: World, c, D, rays, K, zbuf, sid, U, V) -> np.ndarray:
    H, W = zbuf.shape
    f = float(min(K[0, 0], K[1, 1]))
    flat_sid = sid.ravel()
    Dn = np.sqrt((rays ** 2).sum(0)).ravel()            # |D| (a rotation keeps it)
    Df = D.reshape(3, -1)
    zf = zbuf.ravel()
    dist = zf * Dn                                       # metres along the ray
    col = np.zeros((H * W, 3), np.float32)
    order = np.argsort(flat_sid, kind="stable")
    ids, starts, counts = np.unique(flat_sid[order], return_index=True, return_counts=True)
    horizon = np.asarray(world.horizon, np.float32)
    for s, st, cnt in zip(ids, starts, counts):
        idx = order[st:st + cnt]
        if s == SKY:
            e = np.clip(-Df[1, idx] / Dn[idx], 0.0, 1.0)
            w = (np.clip(e * 2.0, 0.0, 1.0) ** 0.7)[:, None]
            col[idx] = horizon * (1 - w) + np.asarray(world.zenith, np.float32) * w
            continue
        t = zf[idx]
        cos = np.abs(Df[1, idx]) / Dn[idx] if s in (GROUND, CEILING) else None
        if s == GROUND:
            x, z = c[0] + t * Df[0, idx], c[2] + t * Df[2, idx]
            fp = dist[idx] / f / np.maximum(cos, 0.15)
            col[idx] = world.ground.shade(x, z, fp)
        elif s == CEILING:
            tex, tile, shade = world.ceiling
            x, z = c[0] + t * Df[0, idx], c[2] + t * Df[2, idx]
            fp = dist[idx] / f / np.maximum(cos, 0.15)
            col[idx] = shade * tex.sample(x / tile, z / tile, fp * tex.width / tile)
        else:
            k = s - RECT0
            rs = world.rects
            n = np.cross(rs.a[k], rs.b[k])
            cos = np.abs(n @ Df[:, idx]) / Dn[idx]
            fp = dist[idx] / f / np.maximum(cos, 0.15)
            tex: Texture = world.textures[rs.tex[k]]
            su, sv = rs.su[k], rs.sv[k]
            uu, vv = U.ravel()[idx], V.ravel()[idx]
            col[idx] = rs.shade[k] * tex.sample(uu / su, (rs.h[k] - vv) / sv, fp * tex.width / su)
        if world.haze_m:
            hz = (1.0 - np.exp(-dist[idx] / world.haze_m))[:, None]
            col[idx] = col[idx] * (1 - hz) + horizon * hz
    return np.clip(np.rint(col), 0, 255).astype(np.uint8).reshape(H, W, 3)
