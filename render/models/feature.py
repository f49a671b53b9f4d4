"""`FeatureModel`: a frozen classifier plus its input normalisation, with layer capture."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from render.errors import UserError
from render.models.tokens import Layout, infer_layout
from render.objectives.activations import LOGITS
from render.objectives.checks import check_layer

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


#: How much larger than ``input_size`` the second image that measures layouts is.
_PROBE_STEP = 32


class _StopForward(Exception):
    """Raised from a forward hook once every requested layer is captured, to skip the rest."""


def _channel_stats(values: Sequence[float], what: str) -> Tensor:
    """Validate a per-channel mean or std and return it shaped (1, 3, 1, 1)."""
    try:
        floats = [float(v) for v in values]
    except (TypeError, ValueError):
        raise UserError(f"{what} must be 3 numbers (R, G, B), got {values!r}") from None
    if len(floats) != 3:
        raise UserError(f"{what} must be 3 numbers (R, G, B), got {values!r}")
    if what == "std" and min(floats) <= 0:
        raise UserError(f"std must be 3 positive numbers, got {values!r}")
    return torch.tensor(floats).view(1, 3, 1, 1)


class FeatureModel(nn.Module):
    """A frozen, always-eval classifier taking RGB NCHW images in [0, 1]."""

    # Buffers (registered in __init__): declared so that they type as Tensor, not Tensor | Module.
    mean: Tensor
    std: Tensor

    def __init__(
        self,
        network: nn.Module,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        *,
        name: str = "",
        input_size: int = 224,
        labels: Sequence[str] | None = None,
        channels_last: bool = False,
        preprocess: Callable[[Tensor], Tensor] | None = None,
        weights_file: str | os.PathLike[str] | None = None,
    ) -> None:
        """Wrap `network`, which expects inputs normalised as (x - mean) / std.

        ``weights_file`` is the file its weights were loaded from (None: given in Python); a
        render's recipe records its checksum (render/recipe.py).

        ``preprocess``, if given, maps RGB in [0, 1] to the network's input instead of mean/std
        (differentiable torch ops only: gradients flow through it to the image).

        ``channels_last`` runs the network on NHWC tensors: convolutions are 15-20% faster on
        CPU (oneDNN) and on CUDA (cuDNN), but a network that calls ``.view`` on an activation
        would fail, so only networks known to work with it turn it on.
        """
        super().__init__()
        self.channels_last = channels_last
        self.preprocess = preprocess
        if channels_last:
            network.to(memory_format=torch.channels_last)
        self.network = network
        self.name = name or type(network).__name__
        self.input_size = int(input_size)
        self.weights_file = None if weights_file is None else os.fspath(weights_file)
        self.labels: tuple[str, ...] | None = tuple(labels) if labels is not None else None
        # Non-persistent: normalisation is configuration, not state worth checkpointing.
        self.register_buffer("mean", _channel_stats(mean, "mean"), persistent=False)
        self.register_buffer("std", _channel_stats(std, "std"), persistent=False)
        self.network.requires_grad_(False)
        # name -> (channels, h, w) of hookable layers (logits: (classes,)), in execution order;
        # filled by the first layer_channels() with each layer's layout.
        self._shapes: dict[str, tuple[int, ...]] | None = None
        self._layouts: dict[str, Layout] = {}
        # The one input size of a network that takes no other (None: it takes any).
        self._only_size: int | None = None
        # name -> how often the module runs in one forward pass; capture keeps the last call.
        self._calls: dict[str, int] = {}
        # name -> module, looked up on every capture (a plain dict: not registered twice).
        self._by_name: dict[str, nn.Module] = dict(self.network.named_modules())
        super().train(False)

    def extra_repr(self) -> str:
        """Name and normalisation, for printing."""
        mean = [round(v, 4) for v in self.mean.flatten().tolist()]
        std = [round(v, 4) for v in self.std.flatten().tolist()]
        return (
            f"name={self.name!r}, mean={mean}, std={std}, input_size={self.input_size}, "
            f"channels_last={self.channels_last}"
        )

    def train(self, mode: bool = True) -> FeatureModel:
        """Stay in eval mode whatever `mode` says (no BatchNorm updates, no dropout)."""
        return super().train(False)

    def _ensure_eval(self) -> None:
        # Some callers (e.g. Lightning restoring module modes) set `.training` directly,
        # bypassing train(); re-assert eval mode before each pass.
        if any(m.training for m in self.modules()):
            super().train(False)

    def normalise(self, images: Tensor) -> Tensor:
        """Map RGB images in [0, 1] to the network's input space."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected RGB images shaped (N, 3, H, W), got {tuple(images.shape)}")
        if self.preprocess is not None:
            normalised = self.preprocess(images)
        else:
            normalised = (images - self.mean) / self.std
        if self.channels_last:
            return normalised.contiguous(memory_format=torch.channels_last)
        return normalised

    def forward(self, images: Tensor) -> Tensor:
        """Return the logits for RGB NCHW images in [0, 1]."""
        self._ensure_eval()
        try:
            return self.network(self.normalise(images))
        except _StopForward:
            raise
        except Exception as error:
            only = self._only_size
            if only is None or tuple(images.shape[-2:]) == (only, only):
                raise
            raise UserError(
                f"model {self.name!r} takes only {only}x{only} images, got "
                f"{images.shape[-2]}x{images.shape[-1]} ({type(error).__name__}): the model sees "
                f"tiles of tiling.tile_size + 2 * transforms.pad - transforms.jitter - "
                f"transforms.final_jitter pixels, so choose a tile size that makes {only}"
            ) from error

    def layer_channels(self) -> dict[str, int]:
        """Hookable layer name -> output channels, in execution order, ending with "logits"."""
        return {name: shape[0] for name, shape in self._layer_shapes().items()}

    def layer_sizes(self) -> dict[str, tuple[int, int] | None]:
        """Hookable layer name -> (h, w) of its map for an input of ``input_size`` pixels
        (None for "logits"), in execution order."""
        return {
            name: (shape[1], shape[2]) if len(shape) == 3 else None
            for name, shape in self._layer_shapes().items()
        }

    def _layer_shapes(self) -> dict[str, tuple[int, ...]]:
        if self._shapes is None:
            self._shapes = self._discover_layers()
        return self._shapes

    def _record(self, size: int) -> tuple[list[str], dict[str, torch.Size], Tensor]:
        """Run one square image of ``size`` pixels: module names in the order of their last
        call, each one's last output shape (tensors only), and the logits."""
        finished: list[str] = []  # module names, in the order their calls finished
        shapes: dict[str, torch.Size] = {}
        calls: dict[str, int] = {}

        def recorder(name: str) -> Callable[[nn.Module, object, object], None]:
            def hook(_module: nn.Module, _args: object, output: object) -> None:
                calls[name] = calls.get(name, 0) + 1
                if isinstance(output, Tensor):
                    shapes[name] = output.shape
                else:
                    shapes.pop(name, None)
                finished.append(name)

            return hook

        handles = [
            module.register_forward_hook(recorder(name))
            for name, module in self.network.named_modules()
            # The root's output is "logits"; TorchScript modules cannot take hooks.
            if name and not isinstance(module, torch.jit.ScriptModule)
        ]
        dummy = torch.full((1, 3, size, size), 0.5, device=self.mean.device, dtype=self.mean.dtype)
        try:
            with torch.no_grad():
                logits = self(dummy)
        finally:
            for handle in handles:
                handle.remove()
        self._calls = calls
        # Order by each module's final call: that is where the captured output is produced.
        last_finish = {name: i for i, name in enumerate(finished)}
        return sorted(last_finish, key=last_finish.__getitem__), shapes, logits

    def _discover_layers(self) -> dict[str, tuple[int, ...]]:
        """Name -> (channels, h, w) of each spatial layer at ``input_size``, then "logits" ->
        (classes,); the layouts (render/models/tokens.py) from a second, larger image."""
        size = self.input_size
        larger: dict[str, torch.Size] | None
        try:
            _, larger, _ = self._record(size + _PROBE_STEP)
        # Whatever a network raises on an input size it does not take (timm asserts, a Linear
        # layer's shape error...): it then takes one size only, checked in forward().
        except Exception:
            larger, self._only_size = None, size
        order, shapes, logits = self._record(size)
        if not isinstance(logits, Tensor) or logits.ndim < 2:
            raise UserError(
                f"model {self.name!r} must return a logits tensor shaped (N, classes), "
                f"got {type(logits).__name__}"
            )
        prefix = int(getattr(self.network, "num_prefix_tokens", 0) or 0)
        found: dict[str, tuple[int, ...]] = {}
        for name in order:
            if name not in shapes:
                continue
            layout = infer_layout(
                shapes[name],
                None if larger is None else larger.get(name),
                (size, size + _PROBE_STEP),
                prefix,
            )
            if layout is not None:
                self._layouts[name] = layout
                empty = torch.empty(shapes[name], device="meta")
                found[name] = tuple(layout.to_nchw(empty, (size, size)).shape[1:])
        found[LOGITS] = (int(logits.shape[1]),)
        return found

    @property
    def num_classes(self) -> int:
        """Number of output classes."""
        return self.layer_channels()[LOGITS]

    def check_layer(self, name: str) -> None:
        """Raise UserError unless `name` is a hookable layer (suggesting close names)."""
        check_layer(name, self.layer_channels(), f"model {self.name!r}")

    def capture(self, images: Tensor, layers: Sequence[str]) -> dict[str, Tensor]:
        """Return the outputs of `layers` (and "logits" if named) for RGB images in [0, 1].

        Every layer comes as an NCHW map: token sequences (ViT) lose their class, distillation
        and register tokens and take the shape of the patch grid; NHWC maps (Swin) are permuted.

        The pass stops right after the deepest requested layer unless "logits" is requested.
        A module that runs several times in one pass (e.g. a shared ReLU) yields its last call.
        """
        if isinstance(layers, str):
            raise TypeError("layers must be a sequence of layer names, not a single string")
        wanted = list(dict.fromkeys(layers))
        if not wanted:
            raise UserError("no layers requested; name at least one layer (or 'logits')")
        for name in wanted:
            self.check_layer(name)
        keep_going = LOGITS in wanted
        hooked = [name for name in wanted if name != LOGITS]
        captured: dict[str, Tensor] = {}
        seen = dict.fromkeys(hooked, 0)
        size = (int(images.shape[-2]), int(images.shape[-1]))

        def catcher(name: str) -> Callable[[nn.Module, object, Tensor], None]:
            def hook(_module: nn.Module, _args: object, output: Tensor) -> None:
                seen[name] += 1
                if seen[name] < self._calls[name]:
                    return
                last = not keep_going and len(captured) + 1 == len(hooked)
                # Clone unless the pass stops here: later in-place ops (ReLU(inplace=True),
                # `out += identity`) would otherwise overwrite the captured values.
                kept = output if last else output.clone()
                captured[name] = self._layouts[name].to_nchw(kept, size)
                if last:
                    raise _StopForward

            return hook

        handles = [self._by_name[name].register_forward_hook(catcher(name)) for name in hooked]
        try:
            logits = self(images)
        except _StopForward:
            pass
        else:
            if keep_going:
                captured[LOGITS] = logits
        finally:
            for handle in handles:
                handle.remove()
        missing = [name for name in wanted if name not in captured]
        if missing:
            raise RuntimeError(f"layers {missing} did not run in this forward pass")
        return {name: captured[name] for name in wanted}


def describe_layers(model: FeatureModel) -> list[tuple[str, int, tuple[int, int] | None]]:
    """List (layer name, channels, (h, w) at the model's input size or None for "logits") for
    every hookable layer, in execution order."""
    sizes = model.layer_sizes()
    return [(name, channels, sizes[name]) for name, channels in model.layer_channels().items()]
