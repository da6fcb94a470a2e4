"""Neural building blocks: masked layers, MADE, WaveNet and LSTM conditioners."""

from seqflow.nn.made import MADE, MaskedLinear

__all__: list[str] = ["MADE", "MaskedLinear"]
