"""The default network: a tabular MLP with embeddings, and the factory seam the stage builds it through.

:class:`TabularNet` embeds each categorical column, concatenates the embeddings with the numeric
columns and maps them to one logit with an MLP. :func:`build_net` shapes one for a fitted
preprocessor. :func:`net_factory` is the one place the stage asks which network to train: today
always :func:`default_net`; a ``train.model: package.module:factory`` option would plug in there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    from pipelines.common.config import TrainConfig
    from pipelines.featurize import Preprocessor

    NetFactory = Callable[[Preprocessor, TrainConfig], "TabularNet"]


def embedding_dim(cardinality: int, max_dim: int) -> int:
    """Embedding width for a column with ``cardinality`` codes: ``min(max_dim, (c + 1) // 2 + 1)``."""
    return min(max_dim, (cardinality + 1) // 2 + 1)


class TabularNet(nn.Module):
    """Embeddings for categoricals, concatenated with numerics, then an MLP to one logit."""

    def __init__(
        self,
        n_numeric: int,
        cardinalities: Sequence[int],
        hidden: Sequence[int],
        dropout: float = 0.0,
        max_embedding_dim: int = 16,
    ) -> None:
        super().__init__()
        self.config: dict[str, Any] = {
            "n_numeric": int(n_numeric),
            "cardinalities": [int(c) for c in cardinalities],
            "hidden": [int(h) for h in hidden],
            "dropout": float(dropout),
            "max_embedding_dim": int(max_embedding_dim),
        }
        widths = [embedding_dim(c, max_embedding_dim) for c in cardinalities]
        self.embeddings = nn.ModuleList(
            nn.Embedding(c, width) for c, width in zip(cardinalities, widths, strict=True)
        )
        self.mlp = _mlp(n_numeric + sum(widths), hidden, dropout)

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        """``numeric [n, n_num]`` float, ``categorical [n, n_cat]`` long → logits ``[n]``."""
        parts = [numeric, *(emb(categorical[:, j]) for j, emb in enumerate(self.embeddings))]
        logits: torch.Tensor = self.mlp(torch.cat(parts, dim=1))
        return logits.squeeze(-1)


def _mlp(width: int, hidden: Sequence[int], dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = size
    layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers)


def build_net(
    preprocessor: Preprocessor, hidden: Sequence[int], dropout: float, max_embedding_dim: int
) -> TabularNet:
    """A :class:`TabularNet` shaped for the columns of a fitted preprocessor."""
    return TabularNet(
        len(preprocessor.numeric), preprocessor.cardinalities, hidden, dropout, max_embedding_dim
    )


def default_net(preprocessor: Preprocessor, cfg: TrainConfig) -> TabularNet:
    """The default network for the ``train`` params: ``train.hidden``, ``dropout``, ``max_embedding_dim``."""
    return build_net(preprocessor, cfg.hidden, cfg.dropout, cfg.max_embedding_dim)


def net_factory(cfg: TrainConfig) -> NetFactory:
    """The factory that builds the network to train, ``(preprocessor, train params) -> network``.

    The one place the stage chooses its network: a ``train.model`` option (``package.module:factory``)
    would be resolved here. Today it is always :func:`default_net`.
    """
    return default_net
