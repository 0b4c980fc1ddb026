"""Framework helpers for the array-generic ops: allocation, dtype casts, device and stream.

Inputs are any DLPack producer; outputs and workspaces are allocated with the framework of the
op's primary input (numpy on the CPU; torch or CuPy on the CPU or a GPU), so that nothing is
allocated behind the caller's allocator. Arrays of other DLPack producers are accepted as inputs
everywhere, but outputs cannot be allocated for them: use the low-level functions of
``switchyard._switchyard`` with caller-owned outputs instead.

GPU work goes on the caller's current stream: torch's current stream for torch tensors, CuPy's
for CuPy arrays, the legacy default stream (0) otherwise; every op also takes ``stream=`` (an
integer ``cudaStream_t``) to override it.
"""

from __future__ import annotations

import contextlib
from typing import Any

_KDL_CUDA = 2

# dtype names as the frameworks print them, without the "torch." prefix.
_NAMES = ("float32", "float16", "bfloat16", "int32", "int64", "uint8")


def framework(a: Any) -> str:
    """'numpy', 'torch', 'cupy' or 'dlpack' (any other DLPack producer)."""
    mod = type(a).__module__.partition(".")[0]
    return mod if mod in ("numpy", "torch", "cupy") else "dlpack"


def is_cuda(a: Any) -> bool:
    """True when `a` lives in CUDA device memory (DLPack device type 2)."""
    device = getattr(a, "__dlpack_device__", None)
    return device is not None and int(device()[0]) == _KDL_CUDA


def dtype_name(a: Any) -> str:
    """'float32', 'bfloat16', ... for numpy, torch and CuPy arrays."""
    return str(a.dtype).rpartition(".")[2]


def _torch_dtype(torch: Any, name: str) -> Any:
    return getattr(torch, name)


def empty(like: Any, shape: tuple, dtype: str) -> Any:
    """An uninitialised array of `shape` and `dtype`, from the framework and device of `like`."""
    if dtype not in _NAMES:
        raise ValueError(f"dtype = {dtype}: expected one of {', '.join(_NAMES)}")
    fw = framework(like)
    if fw == "torch":
        import torch

        return torch.empty(shape, dtype=_torch_dtype(torch, dtype), device=like.device)
    if fw == "numpy" or fw == "cupy":
        if dtype == "bfloat16":
            raise TypeError(f"{fw} has no bfloat16 arrays: use torch tensors for bfloat16")
        if fw == "numpy":
            import numpy

            return numpy.empty(shape, dtype=dtype)
        import cupy

        with like.device:
            return cupy.empty(shape, dtype=dtype)
    raise TypeError(
        f"cannot allocate outputs for a {type(like).__module__}.{type(like).__name__}: the "
        "array-generic ops allocate with numpy, torch or CuPy; for other DLPack producers call "
        "switchyard._switchyard with caller-owned outputs"
    )


def fill(a: Any, value: float) -> Any:
    """Fills `a` in place (numpy, torch, CuPy) and returns it."""
    if framework(a) == "torch":
        a.fill_(value)
    else:
        a.fill(value)
    return a


def astype(a: Any, dtype: str) -> Any:
    """`a` itself when it already has `dtype`, else a converted copy."""
    if a is None or dtype_name(a) == dtype:
        return a
    if framework(a) == "torch":
        import torch

        return a.to(_torch_dtype(torch, dtype))
    return a.astype(dtype)


def contiguous(a: Any) -> Any:
    """`a` itself when row-major contiguous, else a contiguous copy."""
    fw = framework(a)
    if fw == "torch":
        return a.contiguous()
    if fw == "numpy":
        import numpy

        return numpy.ascontiguousarray(a)
    if fw == "cupy":
        import cupy

        return cupy.ascontiguousarray(a)
    return a


def on_device(a: Any) -> contextlib.AbstractContextManager:
    """Makes `a`'s GPU the current device (torch, CuPy), so that its current stream is used and
    the library launches there; a no-op on the CPU."""
    if not is_cuda(a):
        return contextlib.nullcontext()
    fw = framework(a)
    if fw == "torch":
        import torch

        return torch.cuda.device(a.device)
    if fw == "cupy":
        return a.device
    return contextlib.nullcontext()


def current_stream(a: Any, stream: int | None = None) -> int:
    """The stream GPU work on `a` goes to, as an integer: `stream` when given, else the
    framework's current stream (0 on the CPU and for other producers)."""
    if stream is not None:
        return int(stream)
    if not is_cuda(a):
        return 0
    fw = framework(a)
    if fw == "torch":
        import torch

        return torch.cuda.current_stream(a.device).cuda_stream
    if fw == "cupy":
        import cupy

        return cupy.cuda.get_current_stream().ptr
    return 0


def gpu_workspace(like: Any, nbytes: int, given: Any = None) -> Any:
    """The workspace of a GPU op on `like`: `given` when the caller passes one, else a fresh byte
    array of `nbytes` on `like`'s GPU (the caller's allocator; None on the CPU or for 0 bytes)."""
    if given is not None or not is_cuda(like) or nbytes <= 0:
        return given
    return empty(like, (int(nbytes),), "uint8")
