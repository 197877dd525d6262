"""Torch settings shared by the models: thread count and device."""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

from ..errors import UsageError
from ..settings import Settings

if TYPE_CHECKING:
    import torch

_threads_lock = threading.Lock()


def available_cores() -> int:
    """Cores this process may run on (a container's CPU set, not the host's)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def configure_torch_threads(settings: Settings) -> None:
    """Set torch's intra-op thread count to ``settings.threads``, or the core count when it is 0.

    Imports torch.  Safe to call more than once; the models call it when they load.
    """
    import torch

    wanted = settings.threads if settings.threads > 0 else available_cores()
    with _threads_lock:
        if torch.get_num_threads() != wanted:
            torch.set_num_threads(wanted)


def torch_device(settings: Settings) -> torch.device:
    """The torch device named by ``settings.device``.

    Raises :class:`UsageError` when the device does not exist on this computer, so the
    person learns to change SHOEBOX_DEVICE instead of seeing a CUDA traceback.
    """
    import torch

    name = settings.device
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError(
                f"SHOEBOX_DEVICE is {name!r}, but this computer's PyTorch cannot use a CUDA GPU "
                "(no NVIDIA GPU or driver, or a CPU-only PyTorch build). Set SHOEBOX_DEVICE=cpu."
            )
        index = int(name.split(":", 1)[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise UsageError(
                f"SHOEBOX_DEVICE is {name!r}, but this computer has {torch.cuda.device_count()} CUDA GPU(s). "
                "Set SHOEBOX_DEVICE=cuda or cpu."
            )
    elif name == "mps":
        if not torch.backends.mps.is_available():
            raise UsageError(
                "SHOEBOX_DEVICE is 'mps', but Apple's Metal backend is not available on this computer. "
                "Set SHOEBOX_DEVICE=cpu."
            )
    elif name != "cpu":
        raise UsageError(f"SHOEBOX_DEVICE must be cpu, cuda or mps, not {name!r}")
    return torch.device(name)
