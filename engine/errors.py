"""The project's own exception types: each carries a sentence a person can act on."""


class LayerStudioError(Exception):
    """Base of every error a user can cause (bad design, file, data or weights)."""


class SpecError(LayerStudioError, ValueError):
    """A design (or design file) is malformed: names the layer and field at fault."""


class LayerError(LayerStudioError):
    """A layer cannot take its input, or its parameters contradict each other.

    ``shape`` is the layer's output shape when it is still known despite the
    error (so analysis can go on downstream); ``torch_fails`` is False for
    errors PyTorch itself would not raise but that would silently misread the
    data (e.g. a Conv2d fed a 2-D sample).
    """

    def __init__(self, message: str, shape: tuple[int, ...] | None = None, torch_fails: bool = True):
        super().__init__(message)
        self.shape = shape
        self.torch_fails = torch_fails


class DataError(LayerStudioError):
    """A dataset cannot be found, read or used as asked."""


class WeightsError(LayerStudioError):
    """A weights or checkpoint file is unreadable, unsafe or does not fit the design."""


class TrainingError(LayerStudioError):
    """A training run cannot start with the given design, data and settings."""


class Cancelled(LayerStudioError):  # noqa: N818 - a stop the user asked for, not an error
    """Long work (loading or downloading data) was stopped on request: callers report it as stopped, not failed."""
