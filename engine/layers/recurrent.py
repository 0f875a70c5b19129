"""Sequence layer kinds: Embedding (integer tokens to vectors, first in a design) and the LSTM and GRU.

The recurrent modules are built from ``engine.blocks`` (SequenceLSTM, SequenceGRU), which pass on the last
time step or all of them."""
from __future__ import annotations

from engine.errors import LayerError
from engine.layers.registry import Inference, LayerKind, P, need_rank, register, weight_and_bias


def _embedding_infer(x, p):
    return Inference(x + (p["embedding_dim"],), p["num_embeddings"] * p["embedding_dim"])


def _embedding_build(x, p):
    from torch import nn

    return nn.Embedding(p["num_embeddings"], p["embedding_dim"])


register(LayerKind(
    "Embedding", "Recurrent", "Looks up a learned vector for each integer token; must come first",
    (P("num_embeddings", "int", 1000, "Vocabulary size (largest token index + 1)", 1, 10_000_000),
     P("embedding_dim", "int", 32, "Length of each token's vector", 1, 100_000)),
    _embedding_infer, _embedding_build, key=("{num_embeddings}", "{embedding_dim}"),
    tokens=lambda p: p["num_embeddings"], init=weight_and_bias(2, bias=False),
))


def _recurrent_infer(name: str, gates: int):
    def infer(x, p):
        need_rank(x, (2,), name, "(sequence, features)", _sequence_hint(x))
        seq, feat = x
        h, layers = p["hidden_size"], p["num_layers"]
        dirs = 2 if p["bidirectional"] else 1
        params, macs, fin = 0, 0, feat
        for _ in range(layers):
            per_dir = gates * (fin * h + h * h + 2 * h)
            params += dirs * per_dir
            macs += dirs * seq * gates * (fin * h + h * h)
            fin = h * dirs
        shape = (seq, h * dirs) if p["output"] == "all" else (h * dirs,)
        if p["dropout"] == 1 and layers > 1:
            raise LayerError(f"{name} dropout 1 drops every value between its stacked layers while training, so only "
                             f"the top layer can learn: lower dropout below 1", shape, torch_fails=False)
        alone = p["dropout"] and layers == 1
        warning = "dropout only acts between stacked layers: raise num_layers or set it to 0" if alone else ""
        return Inference(shape, params, 0, macs, warning=warning)

    return infer


def _sequence_hint(x) -> str:
    """How to turn a sample of another rank into (sequence, features): an image 1x28x28 is 28 steps of 28."""
    if len(x) == 3 and x[0] == 1:
        return f"add a Squeeze first (dim 1) to read it as {x[1]} steps of {x[2]} features"
    if len(x) > 2:
        return "add a Flatten or Reshape first to merge its dimensions into two"
    return "add an Unflatten or Reshape first to split it into two dimensions"


def _recurrent_build(name: str):
    def build(x, p):
        from engine import blocks

        cls = getattr(blocks, f"Sequence{name}")
        return cls(x[1], p["hidden_size"], num_layers=p["num_layers"], bidirectional=p["bidirectional"],
                   dropout=p["dropout"], output=p["output"])

    return build


def _recurrent_params():
    return (
        P("hidden_size", "int", 64, "Size of the hidden state", 1, 100_000),
        P("num_layers", "int", 1, "Stacked recurrent layers", 1, 100),
        P("bidirectional", "bool", False, "Also read the sequence backwards (doubles the output)"),
        P("dropout", "float", 0.0, "Dropout between stacked layers", 0.0, 1.0),
        P("output", "choice", "last", "Pass on the last time step only, or all time steps", choices=("last", "all")),
    )


RNN_HINT = {"LSTM": "Long short-term memory over (sequence, features)",
            "GRU": "Gated recurrent unit over (sequence, features)"}
for _cls, _gates in (("LSTM", 4), ("GRU", 3)):
    register(LayerKind(_cls, "Recurrent", RNN_HINT[_cls], _recurrent_params(), _recurrent_infer(_cls, _gates),
                       _recurrent_build(_cls),
                       key=("{hidden_size}", "?x{num_layers}", "?bi={bidirectional}", "?{output}")))
