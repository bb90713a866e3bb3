"""The network: the default tabular MLP, and the factory seam that plugs in a team's own.

:class:`TabularNet` embeds each categorical column, concatenates the embeddings with the numeric
columns and maps them to one logit with an MLP. :func:`build_net` shapes one for a fitted
preprocessor. :func:`net_factory` is the one place the stage asks which network to train: the
built-in :func:`default_net`, or, with ``train.model: package.module:factory``, the team's factory,
called with the :class:`FeatureSpec` and ``train.model_params``. :func:`check_network` refuses a
factory that cannot be imported, raises, or returns a module whose output does not fit the task,
naming it; :func:`rebuild` makes the saved network again from ``model.json``'s architecture.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from pipelines.train.errors import TrainError

if TYPE_CHECKING:
    from pipelines.common.config import TrainConfig
    from pipelines.featurize import Preprocessor

    NetFactory = Callable[[Preprocessor, TrainConfig], nn.Module]

FACTORY_ATTR = "flywheel_architecture"  # set on a factory-built module: how to build it again
PROBE_ROWS = 2


class ModelFactoryError(TrainError):
    """``train.model`` names a factory that cannot be imported, raises, or builds a module unfit for it."""


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
        n_outputs: int = 1,
    ) -> None:
        super().__init__()
        self.config: dict[str, Any] = {
            "n_numeric": int(n_numeric),
            "cardinalities": [int(c) for c in cardinalities],
            "hidden": [int(h) for h in hidden],
            "dropout": float(dropout),
            "max_embedding_dim": int(max_embedding_dim),
            **({"n_outputs": int(n_outputs)} if n_outputs != 1 else {}),
        }
        widths = [embedding_dim(c, max_embedding_dim) for c in cardinalities]
        self.embeddings = nn.ModuleList(
            nn.Embedding(c, width) for c, width in zip(cardinalities, widths, strict=True)
        )
        self.mlp = _mlp(n_numeric + sum(widths), hidden, dropout, n_outputs)
        self.n_outputs = n_outputs

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        """``numeric [n, n_num]`` float, ``categorical [n, n_cat]`` long → logits ``[n]``
        (``[n, n_outputs]`` for a multiclass network)."""
        parts = [numeric, *(emb(categorical[:, j]) for j, emb in enumerate(self.embeddings))]
        logits: torch.Tensor = self.mlp(torch.cat(parts, dim=1))
        return logits.squeeze(-1) if self.n_outputs == 1 else logits


def _mlp(width: int, hidden: Sequence[int], dropout: float, n_outputs: int = 1) -> nn.Sequential:
    layers: list[nn.Module] = []
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = size
    layers.append(nn.Linear(width, n_outputs))
    return nn.Sequential(*layers)


def output_size(preprocessor: Preprocessor) -> int:
    """Logits per row: one per class of a multiclass task, else 1."""
    return len(preprocessor.classes) if preprocessor.task == "multiclass" else 1


def build_net(
    preprocessor: Preprocessor, hidden: Sequence[int], dropout: float, max_embedding_dim: int
) -> TabularNet:
    """A :class:`TabularNet` shaped for the columns (and the task) of a fitted preprocessor."""
    return TabularNet(
        len(preprocessor.numeric),
        preprocessor.cardinalities,
        hidden,
        dropout,
        max_embedding_dim,
        output_size(preprocessor),
    )


def default_net(preprocessor: Preprocessor, cfg: TrainConfig) -> TabularNet:
    """The default network for the ``train`` params: ``train.hidden``, ``dropout``, ``max_embedding_dim``."""
    return build_net(preprocessor, cfg.hidden, cfg.dropout, cfg.max_embedding_dim)


@dataclass(frozen=True)
class FeatureSpec:
    """What a network factory is told about its inputs and outputs.

    The network's ``forward(numeric, categorical)`` receives ``numeric`` as float ``[n, len(numeric)]``
    (standardized, missing values imputed) and ``categorical`` as long ``[n, len(categorical)]`` (codes
    ``0 .. cardinality - 1``, 0 the unknown bucket), and returns logits ``[n]`` when ``output_size`` is 1,
    else ``[n, output_size]``. ``embedding_dims`` are the widths the built-in network uses
    (``train.max_embedding_dim``), a suggestion.
    """

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    cardinalities: tuple[int, ...]
    embedding_dims: tuple[int, ...]
    task: str = "binary"
    output_size: int = 1

    @classmethod
    def of(cls, preprocessor: Preprocessor, max_embedding_dim: int) -> FeatureSpec:
        """The spec of a fitted preprocessor's columns."""
        cards = tuple(int(c) for c in preprocessor.cardinalities)
        return cls(
            numeric=tuple(s.name for s in preprocessor.numeric),
            categorical=tuple(s.name for s in preprocessor.categorical),
            cardinalities=cards,
            embedding_dims=tuple(embedding_dim(c, max_embedding_dim) for c in cards),
            task=preprocessor.task,
            output_size=output_size(preprocessor),
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSpec:
        """The spec as :meth:`to_dict` wrote it."""
        return cls(
            **{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}  # type: ignore[arg-type]
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able, for ``model.json``."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @property
    def output_shape(self) -> str:
        """The logits' shape for ``n`` rows, as the error messages say it."""
        return "[n]" if self.output_size == 1 else f"[n, {self.output_size}]"


def load_factory(path: str) -> Callable[..., Any]:
    """The callable ``package.module:factory`` names; :class:`ModelFactoryError` naming what is missing."""
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or the module itself failing to import
        raise ModelFactoryError(
            f"train.model = {path!r}: cannot import module {module_name!r} ({type(exc).__name__}: {exc}); "
            "expected a module importable from the Python path (PYTHONPATH) of the training process"
        ) from exc
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ModelFactoryError(
            f"train.model = {path!r}: module {module_name!r} has no callable {attr!r}; "
            "expected a function factory(spec, params) -> torch.nn.Module"
        )
    return factory  # type: ignore[no-any-return]


def build_custom(path: str, spec: FeatureSpec, params: Mapping[str, Any]) -> nn.Module:
    """Call the factory ``path`` with the spec and ``train.model_params``; the module it returns.

    The module remembers how it was built (``model.json`` records it; :func:`rebuild` reads it).
    """
    factory = load_factory(path)
    try:
        net = factory(spec, dict(params))
    except Exception as exc:
        raise ModelFactoryError(
            f"train.model = {path!r}: the factory raised {type(exc).__name__}: {exc} "
            f"(called with train.model_params = {dict(params)!r}); "
            "expected it to return a torch.nn.Module"
        ) from exc
    if not isinstance(net, nn.Module):
        raise ModelFactoryError(
            f"train.model = {path!r}: the factory returned {type(net).__name__}; expected a torch.nn.Module"
        )
    architecture = {"factory": path, "model_params": dict(params), "feature_spec": spec.to_dict()}
    setattr(net, FACTORY_ATTR, architecture)  # a plain dict attribute: not in the state dict
    return net


def custom_net(preprocessor: Preprocessor, cfg: TrainConfig) -> nn.Module:
    """The network ``train.model`` builds for a fitted preprocessor, with ``train.model_params``."""
    assert cfg.model is not None
    return build_custom(cfg.model, FeatureSpec.of(preprocessor, cfg.max_embedding_dim), cfg.model_params)


def net_factory(cfg: TrainConfig) -> NetFactory:
    """The factory that builds the network to train, ``(preprocessor, train params) -> network``.

    The one place the stage chooses its network: :func:`default_net` when ``train.model`` is unset,
    else :func:`custom_net` (the factory ``train.model`` names, imported now: a wrong path fails here).
    """
    if cfg.model is None:
        return default_net
    load_factory(cfg.model)
    return custom_net


def check_output(net: nn.Module, spec: FeatureSpec, name: str) -> None:
    """Run ``net`` on a few rows of zeros; :class:`ModelFactoryError` unless the logits fit the task."""
    numeric = torch.zeros(PROBE_ROWS, len(spec.numeric))
    categorical = torch.zeros(PROBE_ROWS, len(spec.categorical), dtype=torch.long)
    expected = (PROBE_ROWS,) if spec.output_size == 1 else (PROBE_ROWS, spec.output_size)
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            out = net(numeric, categorical)
    except Exception as exc:
        raise ModelFactoryError(
            f"{name}: forward(numeric [n, {len(spec.numeric)}], categorical [n, {len(spec.categorical)}]) "
            f"raised {type(exc).__name__}: {exc}; expected logits {spec.output_shape} for the "
            f"{spec.task} task"
        ) from exc
    finally:
        net.train(was_training)
    shape = tuple(out.shape) if isinstance(out, torch.Tensor) else None
    if shape != expected:
        dims = ", ".join(str(d) for d in shape) if shape is not None else ""
        got = f"shape [{dims}] for n = {PROBE_ROWS}" if shape is not None else type(out).__name__
        raise ModelFactoryError(
            f"{name}: forward returned {got}; expected logits {spec.output_shape} "
            f"(one {'logit' if spec.output_size == 1 else 'row of logits'} per row) for the {spec.task} task"
        )


def check_network(cfg: TrainConfig, preprocessor: Preprocessor) -> None:
    """Build the network once and check its output shape: a bad ``train.model`` fails before training."""
    net = net_factory(cfg)(preprocessor, cfg)
    name = f"train.model = {cfg.model!r}" if cfg.model else "the built-in TabularNet"
    check_output(net, FeatureSpec.of(preprocessor, cfg.max_embedding_dim), name)


def architecture(net: nn.Module) -> dict[str, Any]:
    """How to build ``net`` again: the factory, its params and spec, or the TabularNet's config."""
    built: dict[str, Any] | None = getattr(net, FACTORY_ATTR, None)
    if built is not None:
        return built
    if isinstance(net, TabularNet):
        return net.config
    raise TrainError(f"network {type(net).__name__}: expected a TabularNet or a module built by train.model")


def rebuild(arch: Mapping[str, Any]) -> nn.Module:
    """The untrained network of a saved ``architecture`` (load its weights next)."""
    if "factory" in arch:
        spec = FeatureSpec.from_dict(arch["feature_spec"])
        return build_custom(str(arch["factory"]), spec, arch.get("model_params") or {})
    return TabularNet(**arch)
