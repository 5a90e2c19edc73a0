"""SSIM: the per-pixel (1 - SSIM)/2 map written from Wang et al. (2004) and kornia's ssim as its source
reads (Gaussian window normalised to sum 1, reflect padding of window // 2, local moments, c1 and c2
from the data range, 1e-12 in the denominator), the filter as explicit shifted sums."""

import numpy as np

from . import Case

SHAPE = (2, 3, 14, 12)


def gaussian_window(xp, window, sigma):
    x = xp.arange(window) - window // 2
    g = xp.exp(-(x**2) / (2 * sigma**2))
    return g / xp.sum(g)


def _filter_last(xp, x, k):
    """Each line along the last axis, reflect-padded by len(k) // 2, correlated with k ('same' size)."""
    p = len(k) // 2
    widths = [(0, 0)] * (x.ndim - 1) + [(p, p)]
    padded = xp.pad(x, widths, mode="reflect")
    n = x.shape[-1]
    return sum(k[i] * padded[..., i:i + n] for i in range(len(k)))


def gaussian_filter(xp, x, window, sigma):
    """The separable Gaussian filter over the last two axes."""
    k = gaussian_window(xp, window, sigma)
    rows = _filter_last(xp, x, k)
    return xp.swapaxes(_filter_last(xp, xp.swapaxes(rows, -1, -2), k), -1, -2)


def ssim_map(xp, y_true, y_pred, window=11, sigma=1.5, data_range=1.0):
    """(1 - SSIM)/2 per pixel."""
    def blur(x):
        return gaussian_filter(xp, x, window, sigma)
    mu1, mu2 = blur(y_true), blur(y_pred)
    s1 = blur(y_true * y_true) - mu1 * mu1
    s2 = blur(y_pred * y_pred) - mu2 * mu2
    s12 = blur(y_true * y_pred) - mu1 * mu2
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = (2 * mu1 * mu2 + c1) * (2 * s12 + c2) / ((mu1**2 + mu2**2 + c1) * (s1 + s2 + c2) + 1e-12)
    return (1 - s) / 2


def images(shape=SHAPE, noise=0.1, scale=1.0):
    """A random image and a noisy copy, in [0, scale]."""
    def make(rng):
        y = rng.uniform(size=shape)
        return {"y_true": y * scale, "y_pred": np.clip(y + noise * rng.normal(size=shape), 0, 1) * scale}
    return make


def _constant(rng):
    """Flat images: the same level in the first image, two different levels in the second."""
    levels = np.array([0.3, 0.0])[:, None, None, None]
    y_true = np.broadcast_to(levels, SHAPE).copy()
    y_pred = y_true.copy()
    y_pred[1] = 0.7
    return {"y_true": y_true, "y_pred": y_pred}


CASES = [
    Case("ssim", "ssim(y_true, y_pred{opts})", images(), lambda xp, **i: ssim_map(xp, **i),
         wrt=("y_true", "y_pred")),
    Case("ssim-constant-images", "ssim(y_true, y_pred{opts})", _constant, lambda xp, **i: ssim_map(xp, **i),
         wrt=("y_true", "y_pred")),
    Case("ssim-window-7-sigma-range-inputs", "ssim(y_true, y_pred, window=7, sigma=s, data_range=r{opts})",
         lambda rng: {**images(noise=0.3, scale=255.0)(rng), "s": np.array(2.0), "r": np.array(255.0)},
         lambda xp, s, r, **i: ssim_map(xp, **i, window=7, sigma=s, data_range=r), wrt=("y_pred", "s", "r")),
]
