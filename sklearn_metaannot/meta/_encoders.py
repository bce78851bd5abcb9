"""Encoders f(x; theta) mapping examples into the latent space (torch modules)."""
# SPDX-License-Identifier: BSD-3-Clause

from __future__ import annotations

import math

import torch
from torch import nn


class MLPEncoder(nn.Module):
    """Fully connected encoder for tabular inputs.

    Parameters
    ----------
    n_features : int
        Input dimension.
    embedding_dim : int
        Output dimension M.
    hidden_layer_sizes : tuple of int
        Sizes of the hidden layers (ReLU activations).

    Examples
    --------
    >>> import torch
    >>> from sklearn_metaannot.meta._encoders import MLPEncoder
    >>> encoder = MLPEncoder(10, embedding_dim=4, hidden_layer_sizes=(16,))
    >>> encoder(torch.zeros(3, 10)).shape
    torch.Size([3, 4])
    """

    def __init__(self, n_features, embedding_dim=64, hidden_layer_sizes=(256,)):
        super().__init__()
        layers, width = [], n_features
        for h in hidden_layer_sizes:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, embedding_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        """Embed ``x`` of shape (B, n_features) into (B, embedding_dim).

        Examples
        --------
        >>> import torch
        >>> from sklearn_metaannot.meta._encoders import MLPEncoder
        >>> MLPEncoder(2, embedding_dim=3).forward(torch.ones(5, 2)).shape
        torch.Size([5, 3])
        """
        return self.net(x.flatten(start_dim=1))


class ResidualMLPEncoder(nn.Module):
    """Identity plus a learned MLP correction, ``f(x) = x + g(x)``.

    The last layer of ``g`` starts at zero, so before meta-training the latent
    space *is* the (standardised) input space: meta-learning starts from the
    no-meta-learning solution instead of a random projection. This is our
    extension, not the paper's; the latent dimension is the input dimension.

    Parameters
    ----------
    n_features : int
        Input (and output) dimension.
    hidden_layer_sizes : tuple of int
        Hidden layers of the correction ``g``.

    Examples
    --------
    >>> import torch
    >>> from sklearn_metaannot.meta._encoders import ResidualMLPEncoder
    >>> encoder = ResidualMLPEncoder(5, hidden_layer_sizes=(8,))
    >>> x = torch.randn(3, 5)
    >>> torch.equal(encoder(x), x)  # the identity before training
    True
    """

    def __init__(self, n_features, hidden_layer_sizes=(256,)):
        super().__init__()
        self.correction = MLPEncoder(n_features, n_features, hidden_layer_sizes)
        last = self.correction.net[-1]
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def forward(self, x):
        """Embed ``x`` of shape (B, n_features) into (B, n_features).

        Examples
        --------
        >>> import torch
        >>> from sklearn_metaannot.meta._encoders import ResidualMLPEncoder
        >>> ResidualMLPEncoder(4).forward(torch.ones(2, 4)).shape
        torch.Size([2, 4])
        """
        x = x.flatten(start_dim=1)
        return x + self.correction(x)


class FeatureWeightEncoder(nn.Module):
    """Per-feature re-weighting, ``f(x) = exp(s) * x``, starting at the identity.

    A metric, not a new representation: meta-learning only decides how much
    each input feature counts in the distances of the EM (and, through the
    overall scale, how much the features count against the annotators' labels
    in the E-step). ``penalty()`` is ``sum(s ** 2)``, the squared distance of
    the log-weights from the identity map. Ours, not the paper's.

    Parameters
    ----------
    n_features : int
        Input (and output) dimension.

    Examples
    --------
    >>> import torch
    >>> from sklearn_metaannot.meta._encoders import FeatureWeightEncoder
    >>> encoder = FeatureWeightEncoder(3)
    >>> x = torch.randn(4, 3)
    >>> torch.equal(encoder(x), x), float(encoder.penalty())
    (True, 0.0)
    """

    def __init__(self, n_features):
        super().__init__()
        self.log_weight = nn.Parameter(torch.zeros(n_features))

    def forward(self, x):
        """Re-weight ``x`` of shape (B, n_features).

        Examples
        --------
        >>> import torch
        >>> from sklearn_metaannot.meta._encoders import FeatureWeightEncoder
        >>> FeatureWeightEncoder(2).forward(torch.ones(5, 2)).shape
        torch.Size([5, 2])
        """
        return x.flatten(start_dim=1) * self.log_weight.exp()

    def penalty(self):
        """Squared distance of the parameters from the identity map.

        Examples
        --------
        >>> import torch
        >>> from sklearn_metaannot.meta._encoders import FeatureWeightEncoder
        >>> encoder = FeatureWeightEncoder(2)
        >>> with torch.no_grad():
        ...     _ = encoder.log_weight.fill_(1.0)
        >>> float(encoder.penalty())
        2.0
        """
        return (self.log_weight**2).sum()


class LowRankEncoder(nn.Module):
    """Identity plus a low-rank linear map, ``f(x) = x + (x V) U^T``.

    ``U`` starts at zero, so the encoder starts as the identity (the
    no-meta-learning space); ``penalty()`` is ``||U V^T||_F^2``, the squared
    Frobenius distance of the linear map from the identity. Ours, not the
    paper's.

    Parameters
    ----------
    n_features : int
        Input (and output) dimension.
    rank : int
        Rank of the correction (at most ``n_features``).

    Examples
    --------
    >>> import torch
    >>> from sklearn_metaannot.meta._encoders import LowRankEncoder
    >>> encoder = LowRankEncoder(5, rank=2)
    >>> x = torch.randn(3, 5)
    >>> torch.equal(encoder(x), x), float(encoder.penalty())
    (True, 0.0)
    """

    def __init__(self, n_features, rank=8):
        super().__init__()
        rank = min(int(rank), int(n_features))
        self.V = nn.Parameter(torch.randn(n_features, rank) / math.sqrt(n_features))
        self.U = nn.Parameter(torch.zeros(n_features, rank))

    def forward(self, x):
        """Map ``x`` of shape (B, n_features) to (B, n_features).

        Examples
        --------
        >>> import torch
        >>> from sklearn_metaannot.meta._encoders import LowRankEncoder
        >>> LowRankEncoder(4, rank=1).forward(torch.ones(2, 4)).shape
        torch.Size([2, 4])
        """
        x = x.flatten(start_dim=1)
        return x + (x @ self.V) @ self.U.T

    def penalty(self):
        """``||U V^T||_F^2``, computed as ``trace((U^T U)(V^T V))``.

        Examples
        --------
        >>> import torch
        >>> from sklearn_metaannot.meta._encoders import LowRankEncoder
        >>> encoder = LowRankEncoder(3, rank=2)
        >>> with torch.no_grad():
        ...     _ = encoder.U.normal_()
        >>> delta = encoder.U @ encoder.V.T
        >>> bool(torch.isclose(encoder.penalty(), (delta**2).sum()))
        True
        """
        return ((self.U.T @ self.U) * (self.V.T @ self.V)).sum()


def _conv_block(in_channels, out_channels, pool):
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(),
        nn.MaxPool2d(2) if pool else nn.Identity(),
    )


class Conv4Encoder(nn.Module):
    """The four-block convolutional encoder of prototypical networks.

    Each block is a 3x3 convolution with ``n_filters`` channels, batch norm,
    ReLU and 2x2 max pooling; 28x28 inputs give a 64-d embedding with
    ``n_filters=64``, as the paper's Omniglot setting (spec 4.4). When
    ``embedding_dim`` differs from the flattened output, a linear layer maps to it.

    Parameters
    ----------
    image_shape : tuple of int
        (C, H, W) of the input images; flat inputs are reshaped to it.
    embedding_dim : int or None
        Output dimension; ``None`` keeps the flattened convolutional output.
    n_filters : int, default=64
        Channels of each block.

    Examples
    --------
    >>> import torch
    >>> from sklearn_metaannot.meta._encoders import Conv4Encoder
    >>> encoder = Conv4Encoder((1, 28, 28))
    >>> encoder.output_dim
    64
    >>> Conv4Encoder((1, 8, 8), embedding_dim=16, n_filters=8).output_dim
    16
    """

    def __init__(self, image_shape, embedding_dim=None, n_filters=64):
        super().__init__()
        self.image_shape = tuple(int(s) for s in image_shape)
        c, h, w = self.image_shape
        blocks = []
        for i in range(4):
            # images smaller than 16x16 (e.g. 8x8 digits) skip the pooling that
            # would shrink them below 1x1
            pool = h >= 2 and w >= 2
            blocks.append(_conv_block(c if i == 0 else n_filters, n_filters, pool))
            if pool:
                h, w = h // 2, w // 2
        self.blocks = nn.Sequential(*blocks)
        flat = n_filters * h * w
        self.head = (
            nn.Identity()
            if embedding_dim is None or embedding_dim == flat
            else nn.Linear(flat, embedding_dim)
        )
        self.output_dim = flat if embedding_dim is None else embedding_dim

    def forward(self, x):
        """Embed images (B, C, H, W), or flat (B, C*H*W), into (B, embedding_dim).

        Examples
        --------
        >>> import torch
        >>> from sklearn_metaannot.meta._encoders import Conv4Encoder
        >>> encoder = Conv4Encoder((1, 28, 28), n_filters=8).eval()
        >>> encoder.forward(torch.zeros(2, 784)).shape  # flat images
        torch.Size([2, 8])
        """
        x = x.reshape(x.shape[0], *self.image_shape)
        return self.head(self.blocks(x).flatten(start_dim=1))


def build_encoder(
    encoder, n_features, *, embedding_dim, hidden_layer_sizes, image_shape, rank=8
) -> nn.Module:
    """Build the encoder module named by the estimator's ``encoder`` parameter.

    ``encoder`` is ``"mlp"``, ``"residual_mlp"``, ``"feature_weights"``,
    ``"low_rank"``, ``"conv4"`` or an ``nn.Module`` instance (deep-copied by
    the caller, used as is here).

    Examples
    --------
    >>> from sklearn_metaannot.meta._encoders import build_encoder
    >>> build_encoder("conv4", 64, embedding_dim=None, hidden_layer_sizes=(),
    ...               image_shape=None).image_shape  # 64 features: 8x8 images
    (1, 8, 8)
    >>> type(build_encoder("residual_mlp", 5, embedding_dim=3,
    ...                    hidden_layer_sizes=(8,), image_shape=None)).__name__
    'ResidualMLPEncoder'
    """
    if isinstance(encoder, nn.Module):
        return encoder
    if encoder == "mlp":
        return MLPEncoder(n_features, embedding_dim, tuple(hidden_layer_sizes))
    if encoder == "residual_mlp":
        return ResidualMLPEncoder(n_features, tuple(hidden_layer_sizes))
    if encoder == "feature_weights":
        return FeatureWeightEncoder(n_features)
    if encoder == "low_rank":
        return LowRankEncoder(n_features, rank)
    if encoder == "conv4":
        if image_shape is None:
            side = math.isqrt(n_features)
            if side * side != n_features:
                raise ValueError(
                    "encoder='conv4' needs image_shape=(C, H, W) when X is flat and "
                    f"n_features={n_features} is not a square"
                )
            image_shape = (1, side, side)
        if math.prod(image_shape) != n_features:
            raise ValueError(
                f"image_shape={tuple(image_shape)} does not match "
                f"n_features={n_features}"
            )
        return Conv4Encoder(image_shape, embedding_dim)
    raise ValueError(
        "encoder must be 'mlp', 'residual_mlp', 'feature_weights', 'low_rank', "
        "'conv4' or a torch.nn.Module, "
        f"got {encoder!r}"
    )


@torch.no_grad()
def embed(module: nn.Module, X, *, batch_size=1024, device="cpu") -> torch.Tensor:
    """Embed a float32 array or tensor in eval mode, by batches; returns a CPU tensor.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_metaannot.meta._encoders import MLPEncoder, embed
    >>> Z = embed(MLPEncoder(3, embedding_dim=2), np.zeros((5, 3)), batch_size=2)
    >>> Z.shape, Z.dtype
    (torch.Size([5, 2]), torch.float32)
    """
    module.eval()
    X = torch.as_tensor(X, dtype=torch.float32)
    out = [
        module(X[i : i + batch_size].to(device)).cpu()
        for i in range(0, X.shape[0], batch_size)
    ]
    return torch.cat(out) if out else torch.empty(0)
