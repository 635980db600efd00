"""A labeled scene-recognition set, the offline stand-in for SUN397: :data:`CLASSES` scene
classes that differ in layout (walls both sides, open ground, a ceiling, scattered
billboards, a forest of posts, a shore, a room with pictures, ...) and in their texture
palette; the camera (position, heading, height, pitch, field of view) and the layout's
sizes are drawn anew for every image. Written as ``DIR/train/<class>/<k>.png`` and
``DIR/test/<class>/<k>.png`` (``docs/render.md``).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from keras_ssl.render import textures as tx
from keras_ssl.render.drives import ROAD_HALF, _facing, rot_y
from keras_ssl.render.raycast import BandGround, Rects, World, intrinsics, render_view

#: Scene classes in the order ``--classes K`` takes them.
CLASSES = ("street", "field", "corridor", "plaza", "forest", "shore", "gallery", "night_street",
           "stadium", "canyon")
#: Per-image exposure (a factor drawn in this range) and white balance (each channel's
#: factor within 1 +- this).
EXPOSURE, WHITE_BALANCE = (0.55, 1.35), 0.15


class _Builder:
    def __init__(self):
        self.textures, self.rects, self._index = [], [], {}

    def tex(self, name, tint=None, wrap=True, contrast=1.0):
        key = (name, None if tint is None else tuple(tint), wrap, contrast)
        if key not in self._index:
            self._index[key] = len(self.textures)
            self.textures.append(tx.texture(name, tint=tint, wrap=wrap, contrast=contrast))
        return self._index[key]

    def rect(self, centre_xz, toward_xz, w, h, bottom, ground_y, tex, su=None, sv=None, shade=1.0):
        p0, a, b = _facing(np.asarray(centre_xz, np.float64), toward_xz, w, h, bottom, ground_y)
        self.rects.append(dict(p0=p0, a=a, b=b, w=w, h=h, tex=tex, su=su or w, sv=sv or h, shade=shade))

    def world(self, ground, ground_y, **kw):
        return World(ground, Rects.from_list(self.rects), self.textures, ground_y=ground_y, **kw)


def _plain(texture, tile):
    return BandGround(lambda x, z: np.zeros_like(x), [(texture, tile, np.inf)])


def _jitter(rng, colour, amount=20):
    return tuple(np.clip(np.asarray(colour, np.float64) + rng.uniform(-amount, amount, 3), 0, 255))


#: ``palette="shared"``: every tint (surfaces and sky) drawn from this one range, whatever the class.
SHARED_RANGE = (40.0, 225.0)
PALETTES = ("own", "shared")


def _palette(rng, palette):
    if palette == "own":
        return lambda colour, amount=20: _jitter(rng, colour, amount)
    if palette == "shared":
        return lambda colour, amount=20: tuple(rng.uniform(*SHARED_RANGE, 3))
    raise ValueError(f"unknown palette {palette!r} (known: {', '.join(PALETTES)})")


def _walls_along(b, rng, jit, side, x_off, z0, z1, ground_y, heights, names_tints, shade=1.0):
    """Building fronts facing the line x = 0 at x = side * x_off, from z0 to z1."""
    z = z0
    while z < z1:
        length = rng.uniform(6, 25)
        name, tint = names_tints[int(rng.integers(len(names_tints)))]
        h = rng.uniform(*heights)
        t = b.tex(name, jit(tint))
        tile = rng.uniform(2.0, 4.0)
        b.rect((side * (x_off + rng.uniform(0, 1.0)), z + length / 2), (0.0, z + length / 2), length, h, 0.0,
               ground_y, t, tile, tile, shade)
        z += length + rng.uniform(0, 2)


def scene(name: str, rng: np.random.Generator, palette: str = "own"):
    """(World, camera pose in it (4x4), horizontal field of view in degrees) of one image of
    class ``name``. ``palette``: "own" (each class its colours, jittered) or "shared" (every
    tint drawn from :data:`SHARED_RANGE`: only layout and texture tell the classes apart)."""
    jit = _palette(rng, palette)
    b = _Builder()
    h = rng.uniform(1.3, 1.9)                      # camera height above the ground
    heading = np.radians(rng.uniform(-25, 25))
    x = rng.uniform(-1.5, 1.5)
    kw = {}
    if name in ("street", "night_street"):
        night = name == "night_street"
        shade = 0.35 if night else 1.0
        for side in (1, -1):
            _walls_along(b, rng, jit, side, rng.uniform(6, 9), -30, 150, h, (4, 14),
                         [("brick", (150, 80, 62)), ("brick", (185, 165, 120)), ("gravel", (160, 158, 150))], shade)
        asphalt = tx.texture("gravel", tint=(88, 88, 92), contrast=0.45)
        side_walk = tx.texture("brick", tint=(150, 150, 150))
        ground = BandGround(lambda x, z: np.abs(x), [(asphalt, 3.0, ROAD_HALF), (side_walk, 1.5, np.inf)],
                            lines=(ROAD_HALF - 0.3,))
        if night:
            ground = _Dimmed(ground, 0.35)
            kw = dict(horizon=jit((45, 45, 70), 10), zenith=jit((8, 8, 25), 5), haze_m=120.0)
        else:
            kw = dict(horizon=jit((205, 215, 228)), zenith=jit((75, 125, 205)))
    elif name == "field":
        ground = _plain(tx.texture("grass", tint=jit((95, 140, 55))), 3.0)
        heading = rng.uniform(-np.pi, np.pi)
        for _ in range(int(rng.integers(0, 4))):
            r, a = rng.uniform(30, 120), rng.uniform(-np.pi, np.pi)
            b.rect((r * np.sin(a), r * np.cos(a)), (0, 0), 0.3, 8.0, 0.0, h, b.tex("gravel", (120, 100, 80)), 0.5, 0.5)
        kw = dict(horizon=jit((210, 220, 235)), zenith=jit((60, 120, 215)), haze_m=400.0)
    elif name == "corridor":
        half, length = rng.uniform(1.2, 2.0), rng.uniform(15, 40)
        h = rng.uniform(1.4, 1.7)
        heading = np.radians(rng.uniform(-12, 12))
        x = rng.uniform(-0.4, 0.4) * half
        wall = b.tex(str(rng.choice(["cell", "gravel"])), jit((200, 195, 180)), contrast=0.5)
        for side in (1, -1):
            b.rect((side * half, length / 2 - 2), (0, length / 2 - 2), length, 2.8, 0.0, h, wall, 2.0, 2.0,
                   0.9 if side > 0 else 0.75)
            for z in np.arange(2, length - 3, rng.uniform(4, 7)):          # doors
                b.rect((side * (half - 0.01), z), (0, z), 1.0, 2.1, 0.0, h, b.tex("gravel", (120, 80, 50), contrast=0.4),
                       1.0, 2.1)
        b.rect((0, length - 2), (0, 0), 2 * half, 2.8, 0.0, h, wall, 2.0, 2.0, 0.6)
        ground = _plain(tx.texture("brick", tint=jit((170, 160, 150)), contrast=0.6), 1.2)
        kw = dict(ceiling_y=h - 2.8, ceiling=(tx.texture("gravel", tint=(225, 225, 220), contrast=0.3), 2.0, 1.0),
                  haze_m=None, horizon=(0.0, 0.0, 0.0), zenith=(0.0, 0.0, 0.0))
    elif name == "plaza":
        heading = rng.uniform(-np.pi, np.pi)
        x = 0.0
        for _ in range(int(rng.integers(6, 11))):
            r, a = rng.uniform(7, 25), rng.uniform(-np.pi, np.pi)
            photo = str(rng.choice(tx.PHOTOS))
            w = rng.uniform(3, 6)
            b.rect((r * np.sin(a), r * np.cos(a)), (0, 0), w, w * rng.uniform(0.5, 0.8), rng.uniform(1.5, 3.0), h,
                   b.tex(photo, wrap=False))
        ground = _plain(tx.texture("brick", tint=jit((175, 170, 160)), contrast=0.8), 2.0)
        kw = dict(horizon=jit((205, 215, 228)), zenith=jit((75, 125, 205)))
    elif name == "forest":
        heading = rng.uniform(-np.pi, np.pi)
        x = 0.0
        bark = b.tex("gravel", jit((85, 60, 40), 10), contrast=1.3)
        for _ in range(int(rng.integers(60, 110))):
            r, a = rng.uniform(1.5, 45), rng.uniform(-np.pi, np.pi)
            w = rng.uniform(0.25, 0.7)
            b.rect((r * np.sin(a), r * np.cos(a)), (0, 0), w, rng.uniform(8, 16), 0.0, h, bark, 0.6, 1.5,
                   rng.uniform(0.6, 1.0))
        ground = _plain(tx.texture("gravel", tint=jit((95, 80, 50), 12)), 2.0)
        kw = dict(horizon=jit((170, 180, 165), 10), zenith=jit((130, 150, 140), 10), haze_m=45.0)
    elif name == "shore":
        heading = np.radians(rng.uniform(-40, 40))
        shore_z = rng.uniform(4, 15)
        sand = tx.texture("gravel", tint=jit((210, 190, 140), 12), contrast=0.6)
        water = tx.texture("moon", tint=jit((40, 90, 150), 15), contrast=2.0)
        ground = BandGround(lambda x, z: z - shore_z + 100.0, [(sand, 3.0, 100.0), (water, 6.0, np.inf)], blend=0.4)
        kw = dict(horizon=jit((215, 225, 235)), zenith=jit((60, 130, 220)), haze_m=600.0)
    elif name == "gallery":
        half_w, depth = rng.uniform(4, 7), rng.uniform(6, 10)
        h = rng.uniform(1.5, 1.7)
        heading = np.radians(rng.uniform(-35, 35))
        x = rng.uniform(-1, 1)
        plaster = b.tex("gravel", jit((225, 220, 210), 10), contrast=0.25)
        mid = depth / 2 - 1
        for (cx, cz), toward, w in (((0, depth), (0, 0), 2 * half_w), ((half_w, mid), (0, mid), depth + 2),
                                    ((-half_w, mid), (0, mid), depth + 2)):
            b.rect((cx, cz), toward, w, 3.5, 0.0, h, plaster, 2.0, 2.0, 0.9)
        for _ in range(int(rng.integers(3, 7))):
            wall = int(rng.integers(3))
            pw = rng.uniform(0.8, 1.8)
            if wall == 0:
                c = (rng.uniform(-half_w + 1, half_w - 1), depth - 0.02)
                toward = (c[0], 0)
            else:
                s = 1 if wall == 1 else -1
                c = (s * (half_w - 0.02), rng.uniform(0, depth - 1))
                toward = (0, c[1])
            b.rect(c, toward, pw, pw * rng.uniform(0.6, 1.2), rng.uniform(1.0, 1.5), h,
                   b.tex(str(rng.choice(tx.PHOTOS)), wrap=False))
        ground = _plain(tx.texture("brick", tint=jit((140, 95, 60), 15), contrast=0.5), 1.0)
        kw = dict(ceiling_y=h - 3.5, ceiling=(tx.texture("gravel", tint=(235, 235, 230), contrast=0.2), 2.0, 1.0),
                  haze_m=None, horizon=(0.0, 0.0, 0.0), zenith=(0.0, 0.0, 0.0))
    elif name == "stadium":
        heading = rng.uniform(-np.pi, np.pi)
        x = 0.0
        radius = rng.uniform(35, 60)
        n = 24
        for k in range(n):
            a = 2 * np.pi * k / n
            w = 2 * radius * np.sin(np.pi / n) + 0.2
            b.rect((radius * np.sin(a), radius * np.cos(a)), (0, 0), w, rng.uniform(6, 9), 0.0, h,
                   b.tex(str(rng.choice(["text", "page", "coins"])), jit((180, 180, 190))), 3.0, 3.0)
        pitch_tex = tx.texture("grass", tint=(70, 150, 60), contrast=0.6)
        track = tx.texture("gravel", tint=(170, 80, 60))
        ground = BandGround(lambda x, z: np.sqrt(x * x + z * z), [(pitch_tex, 2.0, radius - 6), (track, 2.0, np.inf)])
        kw = dict(horizon=jit((200, 210, 225)), zenith=jit((70, 120, 210)))
    elif name == "canyon":
        heading = np.radians(rng.uniform(-20, 20))
        rock = (str(rng.choice(["moon", "gravel"])), jit((175, 115, 70), 15))
        for side in (1, -1):
            _walls_along(b, rng, jit, side, rng.uniform(4, 12), -20, 200, h, (15, 40), [rock])
        ground = _plain(tx.texture("gravel", tint=jit((200, 165, 110), 12)), 3.0)
        kw = dict(horizon=jit((230, 215, 190)), zenith=jit((90, 140, 210)))
    else:
        raise ValueError(f"unknown scene class {name!r} (known: {', '.join(CLASSES)})")
    world = b.world(ground, h, **kw)
    pose = np.eye(4)
    pitch = np.radians(rng.uniform(-6, 6))
    c, s = np.cos(pitch), np.sin(pitch)
    pose[:3, :3] = rot_y(heading) @ np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    pose[0, 3] = x
    return world, pose, float(rng.uniform(60, 80))


class _Dimmed:
    def __init__(self, ground, factor):
        self.ground, self.factor = ground, factor

    def shade(self, x, z, fp):
        return self.factor * self.ground.shade(x, z, fp)


def render_scene(name: str, seed, size: int = 64, palette: str = "own") -> np.ndarray:
    """uint8 [size, size, 3]: one image of class ``name`` drawn with ``default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    world, pose, fov = scene(name, rng, palette)
    f = (size / 2) / np.tan(np.radians(fov) / 2)
    K = intrinsics(f, f, (size - 1) / 2, (size - 1) / 2)
    rgb = render_view(world, pose, K, size, size).rgb
    # exposure and white balance per image, so that a class is not told by its mean colour alone
    gain = rng.uniform(*EXPOSURE) * rng.uniform(1 - WHITE_BALANCE, 1 + WHITE_BALANCE, 3)
    return np.clip(np.rint(rgb * gain), 0, 255).astype(np.uint8)


def write_scenes(out: Path, n_classes: int, per_class: int, test_per_class: int, size: int = 64,
                 seed: int = 0, overwrite: bool = False, progress: bool = True, palette: str = "own") -> dict:
    """Write the class-per-folder tree; image k of class c in split s uses seed
    (seed, s, c, k). Returns figures (images, seconds, images/s)."""
    import time

    from PIL import Image
    from tqdm.auto import tqdm

    out = Path(out)
    classes = CLASSES[:n_classes]
    if overwrite:
        for split in ("train", "test"):
            if (out / split).is_dir():
                shutil.rmtree(out / split)
    jobs = [(split, s, c, k) for s, (split, n) in enumerate((("train", per_class), ("test", test_per_class)))
            for c in range(n_classes) for k in range(n)]
    start = time.perf_counter()
    for split, s, c, k in tqdm(jobs, desc="render scenes", unit="image", disable=not progress, dynamic_ncols=True):
        d = out / split / classes[c]
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(render_scene(classes[c], (seed, s, c, k), size, palette)).save(d / f"{k:04d}.png", format="PNG",
                                                                                compress_level=1)
    seconds = time.perf_counter() - start
    return {"images": len(jobs), "seconds": seconds, "images_per_s": len(jobs) / seconds if seconds > 0 else float("inf")}
