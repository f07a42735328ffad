"""Training precision: ``train_precision: fp32 | bf16 | auto``.

``bf16`` runs the forward pass under ``torch.autocast`` with bfloat16 (matrix products in
bfloat16 with float32 accumulation); the loss, the softmax normaliser, the weights and the
optimiser state stay float32 (``recbole_pq.losses`` keeps its softmax in float32 under
autocast).  RecBole's own ``enable_amp`` autocasts to float16 on CUDA only.

``auto`` picks bfloat16 where the hardware multiplies bfloat16 natively -- an x86 CPU with
AVX-512 BF16 or AMX, or a CUDA GPU that supports it -- and float32 elsewhere, where
bfloat16 is emulated and slower.  docs/PERFORMANCE.md has the measured ratios per CPU.
"""

from __future__ import annotations

import torch

from recbole_pq.errors import ConfigError

PRECISIONS = ("fp32", "bf16", "auto")


def check_precision_config(value) -> str:
    if value not in PRECISIONS:
        raise ConfigError(f"train_precision={value!r} is not supported; use one of {list(PRECISIONS)}.")
    return value


def cpu_bf16_flags() -> dict[str, bool]:
    """Which bfloat16 instructions this CPU has (as torch's own dispatcher sees them)."""
    avx512_bf16 = getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()
    amx_bf16 = getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
    return {"avx512_bf16": bool(avx512_bf16), "amx_bf16": bool(amx_bf16)}


def bf16_supported(device: torch.device) -> tuple[bool, str]:
    """(native bfloat16 on ``device``, what is missing when not)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(), "a CUDA GPU with bfloat16 support (compute capability >= 8.0)"
    if device.type == "cpu":
        return any(cpu_bf16_flags().values()), "the CPU flag avx512_bf16 or amx_bf16 (see /proc/cpuinfo)"
    return False, f"a CPU or CUDA device (this is {device.type})"


def autocast_dtype(value: str | None, device: torch.device) -> torch.dtype | None:
    """The dtype training autocasts to for ``train_precision=value`` on ``device`` (None: float32).
    A config without the key (built without the plugin's YAML layers) trains in float32."""
    if value is None:
        return None
    check_precision_config(value)
    if value == "fp32":
        return None
    native, needs = bf16_supported(device)
    if value == "bf16" and not native:
        raise ConfigError(f"train_precision='bf16' needs {needs}; this machine has none. "
                          f"Use train_precision=fp32 or auto.")
    return torch.bfloat16 if native else None
