"""Neural building blocks: masked layers, MADE, WaveNet and LSTM conditioners."""

from seqflow.nn.conditioner import SequenceConditioner, SequenceStream
from seqflow.nn.context import Context, SequenceContext
from seqflow.nn.conv import CausalConv1d, MaskedCausalConv1d
from seqflow.nn.lstm import CausalLSTM
from seqflow.nn.made import MADE, MADEStream, MaskedLinear
from seqflow.nn.streaming import RingBuffer, StreamState
from seqflow.nn.upsampling import ConditionUpsampler
from seqflow.nn.wavenet import GatedResidualBlock, WaveNet

__all__: list[str] = [
    "CausalConv1d",
    "Context",
    "CausalLSTM",
    "ConditionUpsampler",
    "GatedResidualBlock",
    "MADE",
    "MADEStream",
    "MaskedCausalConv1d",
    "MaskedLinear",
    "RingBuffer",
    "SequenceConditioner",
    "SequenceContext",
    "SequenceStream",
    "StreamState",
    "WaveNet",
]
