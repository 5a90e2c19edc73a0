"""The reference document's NumPy losses and gradients (../shared/reference/loss-functions.md),
with its mistakes fixed: ``cce_gradient`` is ``-y/(n*p)`` (the document writes ``(p - y)/(n*p)``,
and calls it as ``cc_gradient``); the document gives huber, hinge and quantile without a gradient
(quantile only in TensorFlow), so theirs are derived here. Each entry: (loss, gradient wrt y_pred).
"""

import numpy as np


def mean_squared_error(y_true, y_pred):
    return np.mean((y_true - y_pred) ** 2)


def mse_gradient(y_true, y_pred):
    return 2 * (y_pred - y_true) / y_true.size


def mean_absolute_error(y_true, y_pred):
    return np.mean(np.abs(y_true - y_pred))


def mae_subgradient(y_true, y_pred):
    return np.sign(y_pred - y_true) / y_true.size


def huber_loss(y_true, y_pred, delta=1.0):
    x = y_pred - y_true
    return np.mean(np.where(np.abs(x) <= delta, 0.5 * x**2, delta * (np.abs(x) - 0.5 * delta)))


def huber_gradient(y_true, y_pred, delta=1.0):
    x = y_pred - y_true
    return np.where(np.abs(x) <= delta, x, delta * np.sign(x)) / y_true.size


def quantile_loss(y_true, y_pred, quantile=0.5):
    error = y_true - y_pred
    return np.mean(np.maximum(quantile * error, (quantile - 1) * error))


def quantile_gradient(y_true, y_pred, quantile=0.5):
    error = y_true - y_pred
    return np.where(error > 0, -quantile, 1 - quantile) / y_true.size


def binary_cross_entropy(y_true, y_pred, epsilon=1e-15):
    y_pred = np.clip(y_pred, epsilon, 1 - epsilon)
    return -np.mean(y_true * np.log(y_pred) + (1 - y_true) * np.log(1 - y_pred))


def bce_gradient(y_true, y_pred, epsilon=1e-15):
    y_pred = np.clip(y_pred, epsilon, 1 - epsilon)
    return (y_pred - y_true) / (y_pred * (1 - y_pred) * y_true.size)


def categorical_cross_entropy(y_true, y_pred, epsilon=1e-15):
    y_pred = np.clip(y_pred, epsilon, 1 - epsilon)
    return -np.sum(y_true * np.log(y_pred)) / y_true.shape[0]


def cce_gradient(y_true, y_pred, epsilon=1e-15):
    y_pred = np.clip(y_pred, epsilon, 1 - epsilon)
    return -y_true / (y_true.shape[0] * y_pred)


def hinge_loss(y_true, y_pred):
    return np.mean(np.maximum(0, 1 - y_true * y_pred))


def hinge_gradient(y_true, y_pred):
    return np.where(1 - y_true * y_pred > 0, -y_true, 0) / y_true.size


REFERENCE = {
    "mse": (mean_squared_error, mse_gradient),
    "mae": (mean_absolute_error, mae_subgradient),
    "huber": (huber_loss, huber_gradient),
    "quantile": (quantile_loss, quantile_gradient),
    "bce_prob": (binary_cross_entropy, bce_gradient),
    "cce_prob": (categorical_cross_entropy, cce_gradient),
    "hinge": (hinge_loss, hinge_gradient),
}
