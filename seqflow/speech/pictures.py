"""Pictures of speech: log-mel spectrograms side by side on one colour scale."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from torch import Tensor

from seqflow.data.features import LogMel


def mel_panels_png(panels: Sequence[tuple[str, np.ndarray]], hop_length: int, sample_rate: int,
                   path: str | Path, title: str = "") -> None:
    """Log-mel spectrograms ``(n_mels, frames)``, one panel each, on one colour scale, as a PNG.

    ``panels`` holds ``(name, log-mel)`` pairs, drawn top to bottom.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    low = min(float(mel.min()) for _, mel in panels)
    high = max(float(mel.max()) for _, mel in panels)
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 3 * len(panels)), sharex=True,
                             squeeze=False)
    fig.subplots_adjust(left=0.07, right=0.9, bottom=0.1, top=0.88, hspace=0.3)
    for ax, (name, mel) in zip(axes[:, 0], panels, strict=True):
        image = ax.imshow(mel, origin="lower", aspect="auto", vmin=low, vmax=high,
                          extent=(0, mel.shape[1] * hop_length / sample_rate, 0, mel.shape[0]),
                          cmap="magma")
        ax.set_ylabel("mel band")
        ax.set_title(f"{name}: log-mel")
    axes[-1, 0].set_xlabel("seconds")
    fig.colorbar(image, ax=axes[:, 0], label="log magnitude", fraction=0.04, pad=0.01)
    if title:
        fig.suptitle(title)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def spectrogram_png(truth: Tensor, sampled: Tensor, logmel: LogMel, path: str | Path,
                    title: str = "", label: str = "sampled (streamed teacher)") -> None:
    """Log-mels of the ground-truth and the sampled waveform ``(time,)``, one above the other."""
    mels = [logmel(a.reshape(1, -1).float())[0].numpy() for a in (truth, sampled)]
    mel_panels_png([("ground truth", mels[0]), (label, mels[1])], logmel.config.hop_length,
                   logmel.config.sample_rate, path, title)
