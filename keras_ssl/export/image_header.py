"""The declared size of an encoded image, read from its header, and the guard that
refuses images declaring more pixels than :data:`~keras_ssl.export.contract.MAX_IMAGE_PIXELS`
before anything is decoded (used by the ``image_bytes`` signature, :mod:`.signatures`)."""
from __future__ import annotations


from keras_ssl.export.contract import MAX_IMAGE_PIXELS

# TF ops only (no Python at serving time), so the guard is part of the graph
# and holds in TF Serving too. The formats are recognised by the magic bytes
# tf.io.decode_image sniffs (any other input is refused, JPEG XL included), and
# the sizes are read where the decoders read them: PNG IHDR (big-endian uint32
# at bytes 16-23), JPEG SOF (tf.image.extract_jpeg_shape, header only), GIF
# logical screen (little-endian uint16 at 6-9) and every frame's image
# descriptor (the decoder's canvas is the largest frame, and it decodes every
# frame), BMP (little-endian int32 at 18-25, negative = top-down), WebP (VP8 /
# VP8L / VP8X chunk).

#: Names of the formats of :func:`declared_image_size` ("format" is an index).
IMAGE_FORMATS = ("unknown", "JPEG", "PNG", "GIF", "BMP", "WebP")
_HEAD = 32   # header bytes read for every format (WebP needs 30)


def _bytes_at(data, pos, n: int):
    """``n`` bytes of ``data`` from ``pos`` as int64 [n]; zeros past the end."""
    import tensorflow as tf

    pos = tf.minimum(tf.cast(pos, tf.int64), tf.cast(tf.strings.length(data), tf.int64))
    return tf.cast(tf.io.decode_raw(tf.strings.substr(data, pos, n), tf.uint8, fixed_length=n), tf.int64)


def _uint(b, offset: int, n: int, big_endian: bool = False):
    """Unsigned integer of bytes ``b[offset:offset + n]`` (int64 [k] from :func:`_bytes_at`)."""
    import tensorflow as tf

    shifts = [8 * (n - 1 - i) if big_endian else 8 * i for i in range(n)]
    return tf.reduce_sum(tf.bitwise.left_shift(b[offset:offset + n], tf.constant(shifts, tf.int64)))


def _starts_with(b, magic: bytes, offset: int = 0):
    import tensorflow as tf

    return tf.reduce_all(tf.equal(b[offset:offset + len(magic)], tf.constant(list(magic), tf.int64)))


#: The GIF walk of :func:`_gif_frames`: data sub-blocks skipped per step, and
#: the most steps. A step reads one record (extension or image descriptor) and
#: up to _GIF_HOPS sub-blocks of at most 255 bytes, so 8192 steps check a
#: noise GIF at the pixel limit (~5 MB, ~1400 steps) or ~4000 frames, in about
#: the time decoding a GIF at the limit takes; a GIF that needs more steps
#: (e.g. thousands of empty extensions) is refused.
_GIF_HOPS = 16
GIF_MAX_STEPS = 8192


def _gif_frames(data, start, length):
    """Walk a GIF's blocks from ``start`` (after the global colour table) as
    giflib's DGifSlurp does: (frames, largest frame width, largest frame
    height, pixels of all frames) as int64 scalars, and whether the walk ran
    out of steps with data left (bool).

    Records: 0x21 extension (a label byte, then a chain of sub-blocks), 0x2C
    image descriptor (left, top, width, height as uint16 LE, flags, a local
    colour table, the LZW code size byte, then a chain); a chain is sub-blocks
    of a size byte and that many bytes, ended by a size byte of 0. The walk
    stops at the trailer (0x3B), any other record (giflib fails there too),
    the end of the data, or after GIF_MAX_STEPS steps."""
    import tensorflow as tf

    i64 = lambda v: tf.constant(v, tf.int64)  # noqa: E731
    v = tf.io.decode_raw(data, tf.uint8)          # a copy of the bytes: gathered from below
    last = tf.maximum(length - 1, 0)

    def at(idx):  # bytes at idx (int64), 0 past the end
        return tf.where(idx < length, tf.cast(tf.gather(v, tf.minimum(idx, last)), tf.int64), i64(0))

    def cond(pos, in_chain, done, frames, max_w, max_h, total):
        return tf.logical_and(tf.logical_not(done), pos < length)

    def body(pos, in_chain, done, frames, max_w, max_h, total):
        # a record, unless a chain is being skipped
        b = at(pos + tf.range(10, dtype=tf.int64))
        is_ext = tf.logical_and(tf.logical_not(in_chain), tf.equal(b[0], 0x21))
        is_img = tf.logical_and(tf.logical_not(in_chain), tf.equal(b[0], 0x2C))
        w, h, packed = _uint(b, 5, 2), _uint(b, 7, 2), b[9]
        lct = tf.where(tf.bitwise.bitwise_and(packed, i64(0x80)) > 0,
                       3 * tf.bitwise.left_shift(i64(2), tf.bitwise.bitwise_and(packed, i64(7))), i64(0))
        pos = tf.where(is_ext, pos + 2, tf.where(is_img, pos + 11 + lct, pos))
        done = tf.logical_and(tf.logical_not(in_chain), tf.logical_not(tf.logical_or(is_ext, is_img)))
        in_chain = tf.logical_not(done)
        # then up to _GIF_HOPS sub-blocks of the chain (a size byte read past
        # the end is the last byte: the walk stops there, the decoder fails)
        for _ in range(_GIF_HOPS):
            c = tf.cast(tf.gather(v, tf.minimum(pos, last)), tf.int64)
            pos = tf.where(in_chain, pos + c + 1, pos)
            in_chain = tf.logical_and(in_chain, tf.not_equal(c, 0))
        return (pos, in_chain, done, frames + tf.cast(is_img, tf.int64),
                tf.where(is_img, tf.maximum(max_w, w), max_w),
                tf.where(is_img, tf.maximum(max_h, h), max_h),
                total + tf.where(is_img, w * h, i64(0)))

    init = (tf.cast(start, tf.int64), tf.constant(False), tf.constant(False),
            i64(0), i64(0), i64(0), i64(0))
    pos, _, done, frames, max_w, max_h, total = tf.while_loop(
        cond, body, init, maximum_iterations=GIF_MAX_STEPS)
    unfinished = tf.logical_and(tf.logical_not(done), pos < length)
    return frames, max_w, max_h, total, unfinished


def declared_image_size(data):
    """What the header of one encoded image (scalar string) declares, read
    with TF string ops; nothing is decoded.

    A dict of scalar tensors: ``format`` (int32 index into
    :data:`IMAGE_FORMATS`, 0 when not recognised), ``width`` and ``height``
    (int64; a GIF: the largest of its logical screen and of its frames, each
    way), ``frames`` (int64; 1 except for GIF), ``pixels`` (int64: width x
    height, or for a GIF its frames' pixels in all when more; each factor
    capped at 2**31 so that the product cannot overflow) and ``problem``
    (string: why the header cannot be read, empty when it can).
    """
    import tensorflow as tf

    data = tf.convert_to_tensor(data, tf.string)
    length = tf.cast(tf.strings.length(data), tf.int64)
    b = _bytes_at(data, 0, _HEAD)
    i64 = lambda v: tf.constant(v, tf.int64)  # noqa: E731
    fmt = tf.cast(tf.argmax(tf.cast(tf.stack([
        tf.constant(False),
        _starts_with(b, b"\xff\xd8\xff"),
        _starts_with(b, b"\x89PNG\r\n\x1a\n"),
        tf.logical_or(_starts_with(b, b"GIF87a"), _starts_with(b, b"GIF89a")),
        _starts_with(b, b"BM"),
        tf.logical_and(_starts_with(b, b"RIFF"), _starts_with(b, b"WEBP", 8)),
    ]), tf.int32)), tf.int32)  # the magic bytes exclude each other; none: index 0

    def size(w, h, frames=None, total=None, problem=""):
        return (tf.cast(w, tf.int64), tf.cast(h, tf.int64),
                i64(1) if frames is None else frames, i64(0) if total is None else total,
                tf.constant(problem))

    def short(name, need):
        return tf.strings.format(f"truncated {name} header: {{}} bytes, at least {{}} needed",
                                 (length, need))

    def unknown():
        jxl = tf.logical_or(_starts_with(b, b"\xff\x0a"), _starts_with(b, b"\x00\x00\x00\x0cJXL \r\n\x87\n"))
        problem = tf.where(
            jxl, tf.constant("JPEG XL images are not accepted (their size is not checked before decoding); "
                             "send PNG, JPEG, GIF, BMP or WebP"),
            tf.strings.format("unknown image format ({} bytes): send PNG, JPEG, GIF, BMP or WebP", length))
        return size(0, 0)[:4] + (problem,)

    def jpeg():
        hwc = tf.image.extract_jpeg_shape(data, output_type=tf.int64)  # reads the header only
        return size(hwc[1], hwc[0])

    def png():
        ok = tf.logical_and(length >= 24, _starts_with(b, b"IHDR", 12))
        problem = tf.where(ok, tf.constant(""), tf.where(
            length >= 24, tf.constant("invalid PNG header: the first chunk is not IHDR"), short("PNG", 24)))
        return size(_uint(b, 16, 4, True), _uint(b, 20, 4, True))[:4] + (problem,)

    def gif():
        sw, sh, packed = _uint(b, 6, 2), _uint(b, 8, 2), b[10]
        gct = tf.where(tf.bitwise.bitwise_and(packed, i64(0x80)) > 0,
                       3 * tf.bitwise.left_shift(i64(2), tf.bitwise.bitwise_and(packed, i64(7))), i64(0))
        frames, fw, fh, total, unfinished = _gif_frames(data, 13 + gct, length)
        problem = tf.where(length < 13, short("GIF", 13), tf.where(
            unfinished, tf.constant(f"GIF too long to check before decoding: more than {GIF_MAX_STEPS} "
                                    f"steps of one extension or frame and {_GIF_HOPS} data sub-blocks"),
            tf.constant("")))
        return (tf.maximum(sw, fw), tf.maximum(sh, fh), frames, total, problem)

    def bmp():
        def int32(v):
            return tf.abs(tf.where(v >= 2 ** 31, v - 2 ** 32, v))
        problem = tf.where(length >= 26, tf.constant(""), short("BMP", 26))
        return size(int32(_uint(b, 18, 4)), int32(_uint(b, 22, 4)))[:4] + (problem,)

    def webp():
        chunk = b[12:16]
        vp8, vp8l, vp8x = (tf.reduce_all(tf.equal(chunk, tf.constant(list(c), tf.int64)))
                           for c in (b"VP8 ", b"VP8L", b"VP8X"))
        bits = _uint(b, 21, 4)
        mask = i64(0x3FFF)
        w = tf.where(vp8, tf.bitwise.bitwise_and(_uint(b, 26, 2), mask),
                     tf.where(vp8l, tf.bitwise.bitwise_and(bits, mask) + 1, _uint(b, 24, 3) + 1))
        h = tf.where(vp8, tf.bitwise.bitwise_and(_uint(b, 28, 2), mask),
                     tf.where(vp8l, tf.bitwise.bitwise_and(tf.bitwise.right_shift(bits, 14), mask) + 1,
                              _uint(b, 27, 3) + 1))
        need = tf.where(vp8l, i64(25), i64(30))
        problem = tf.where(
            tf.logical_not(tf.reduce_any(tf.stack([vp8, vp8l, vp8x]))),
            tf.constant("invalid WebP header: no VP8, VP8L or VP8X chunk first"),
            tf.where(length >= need, tf.constant(""), short("WebP", need)))
        return size(w, h)[:4] + (problem,)

    w, h, frames, total, problem = tf.switch_case(fmt, [unknown, jpeg, png, gif, bmp, webp])
    cap = i64(2 ** 31)
    pixels = tf.maximum(tf.minimum(w, cap) * tf.minimum(h, cap), total)
    return {"format": fmt, "width": w, "height": h, "frames": frames, "pixels": pixels,
            "problem": problem}


def pixels_within_limit(width, height, max_pixels: int = MAX_IMAGE_PIXELS):
    """Whether ``width`` x ``height`` is at most ``max_pixels`` (bool tensor;
    int64 arithmetic, factors capped so that huge dimensions cannot overflow)."""
    import tensorflow as tf

    cap = tf.constant(max_pixels + 1, tf.int64)
    w = tf.minimum(tf.cast(width, tf.int64), cap)
    h = tf.minimum(tf.cast(height, tf.int64), cap)
    return w * h <= max_pixels


def check_image_header(data, max_pixels: int = MAX_IMAGE_PIXELS):
    """An assertion (an op in a graph; raises at once in eager mode) that fails
    with InvalidArgumentError unless the header of ``data`` is one
    tf.io.decode_image reads and declares at most ``max_pixels`` pixels."""
    import tensorflow as tf

    d = declared_image_size(data)
    w, h = d["width"], d["height"]
    readable = tf.equal(d["problem"], "")
    area_ok = pixels_within_limit(w, h, max_pixels)
    ok = tf.logical_and(readable, tf.logical_and(area_ok, d["pixels"] <= max_pixels))
    message = tf.where(
        tf.logical_not(readable), d["problem"], tf.where(
            area_ok,
            tf.strings.format("GIF declares {} frames of {} pixels in all (every frame is decoded), "
                              "more than the limit of {}", (d["frames"], d["pixels"], max_pixels)),
            tf.strings.format("image declares {}x{} pixels, more than the limit of {}", (w, h, max_pixels))))
    return tf.debugging.Assert(ok, [message], name="check_image_header")
