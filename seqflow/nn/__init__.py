"""Neural building blocks: masked layers, MADE, WaveNet and LSTM conditioners."""

__all__: list[str] = []
