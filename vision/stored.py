"""The stored processed JPEG, decoded to the analysis copy every model sees.

The queue worker, training, evaluation and ``spira stages`` all analyse a photo through
:func:`decode_stored`, so a model is scored on the inputs it was fitted on. This module imports
no database code: ``spira stages`` scores files through it without one.
"""

from __future__ import annotations

import cv2
import numpy as np
import simplejpeg

from vision.features import WORK_SIDE
from vision.ingest import reduced_size

#: Long side, in pixels, at which stored images are analysed: the drawing features' working size
#: (``vision.features.WORK_SIDE``), from which the backbone's 224-px input is also taken.
ANALYSIS_LONG_SIDE = WORK_SIDE

#: A stored image is decoded reduced in the DCT domain as long as it keeps this share of the
#: analysis size; the few per cent left are made up by interpolation (1003 px: decoded at 502).
_DCT_REACH = 0.95


def decode_stored(data: bytes, long_side: int = ANALYSIS_LONG_SIDE) -> np.ndarray:
    """Decode a stored processed JPEG to RGB with its long side at ``long_side`` (never enlarged
    beyond that when it is smaller).

    libjpeg halves in the DCT domain (a proper low-pass, and its SIMD code covers steps of two)
    while the result keeps at least 95 % of ``long_side``; bilinear interpolation takes it the
    rest of the way (a step of less than two, in which every source pixel still counts). A 1003-px
    image is decoded at 502 px and enlarged by 2 % in 1.6 ms, where a full decode and area
    averaging take 4.7 (one core). The features and the embedding then work on this one copy; training and
    ``spira stages`` analyse through here too, so a model sees the inputs it was fitted on.
    """
    height, width = simplejpeg.decode_jpeg_header(data)[:2]
    if max(height, width) <= long_side:
        return simplejpeg.decode_jpeg(data, "RGB")
    min_width, min_height = reduced_size(width, height, round(long_side * _DCT_REACH))
    rgb = simplejpeg.decode_jpeg(data, "RGB", min_width=min_width, min_height=min_height)
    # The size follows from the stored image's own, not from the decode's (rounded up) one.
    short = max(1, round(min(height, width) * long_side / max(height, width)))
    size = (long_side, short) if width >= height else (short, long_side)
    if (rgb.shape[1], rgb.shape[0]) == size:
        return rgb
    return cv2.resize(rgb, size, interpolation=cv2.INTER_LINEAR)
