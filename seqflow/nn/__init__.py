"""Neural building blocks: masked layers, MADE, WaveNet and LSTM conditioners."""

from seqflow.nn.context import SequenceContext
from seqflow.nn.conv import CausalConv1d, MaskedCausalConv1d
from seqflow.nn.lstm import CausalLSTM
from seqflow.nn.made import MADE, MaskedLinear
from seqflow.nn.upsampling import ConditionUpsampler
from seqflow.nn.wavenet import GatedResidualBlock, WaveNet

__all__: list[str] = [
    "CausalConv1d",
    "CausalLSTM",
    "ConditionUpsampler",
    "GatedResidualBlock",
    "MADE",
    "MaskedCausalConv1d",
    "MaskedLinear",
    "SequenceContext",
    "WaveNet",
]
