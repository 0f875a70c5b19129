"""The two containers a group builds besides nn.Sequential (Residual, Branches), and recurrent layers that return
a plain tensor so they fit in an nn.Sequential. Plain classes: the exported script copies them as source."""
from __future__ import annotations

import torch
from torch import nn


class Residual(nn.Module):
    """output = activation(body(x) + shortcut(x)); an empty shortcut is the identity."""

    def __init__(self, body: nn.Module, shortcut: nn.Module, activation: nn.Module):
        super().__init__()
        self.body, self.shortcut, self.activation = body, shortcut, activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.body(x) + self.shortcut(x))


class Branches(nn.Module):
    """Every branch is fed the same input; their outputs are concatenated along dim 1 (channels or features) or
    summed."""

    def __init__(self, *branches: nn.Module, merge: str = "concat"):
        super().__init__()
        self.branches = nn.ModuleList(branches)
        self.merge = merge

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = [branch(x) for branch in self.branches]
        if self.merge == "sum":
            total = outputs[0]
            for output in outputs[1:]:
                total = total + output
            return total
        return torch.cat(outputs, dim=1)


class _SequenceOutput(nn.RNNBase):
    """Mixin for nn.LSTM / nn.GRU: batch-first, returns all time steps or the last one.

    Subclassing (not wrapping) keeps the state_dict keys of a plain nn.LSTM/nn.GRU.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bidirectional: bool = False,
                 dropout: float = 0.0, output: str = "last"):
        # nn.LSTM's or nn.GRU's __init__ (next in the MRO), which name RNNBase's mode themselves
        super().__init__(input_size, hidden_size, num_layers=num_layers,  # type: ignore[call-arg, arg-type]
                         bidirectional=bidirectional, dropout=dropout, batch_first=True)
        self.output = output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = super().forward(x)
        if self.output == "all":
            return y
        if not self.bidirectional:
            return y[:, -1]
        # each direction's final step: forward ends at the last position, backward at the first
        forward, backward = y.chunk(2, dim=-1)
        return torch.cat((forward[:, -1], backward[:, 0]), dim=-1)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, output={self.output!r}"


# misc: their forward gives one tensor, not the (output, state) pair LSTM and GRU give: what they are for
class SequenceLSTM(_SequenceOutput, nn.LSTM):  # type: ignore[misc]
    """nn.LSTM that fits in an nn.Sequential."""


class SequenceGRU(_SequenceOutput, nn.GRU):  # type: ignore[misc]
    """nn.GRU that fits in an nn.Sequential."""
