"""The optional spconv backend for the masked encoder's convolutions (`masking.use_backend`).

A submanifold convolution computes outputs at the visible sites only, from visible sites only:
equal to the dense emulation `remask(conv(x))` when x is zero at masked sites, for an ungrouped
stride-1 convolution with an odd kernel and 'same' padding (what `supports` accepts; depthwise and
strided convolutions stay on the dense path). The weights stay the dense nn.Conv2d's, so the
optimiser, checkpoints and the export do not change with the backend.

spconv 2.3.8's CPU path needs a workaround, applied once on first use: its C++ scatter-add races with more than one torch thread and gives
silently wrong numbers (replaced by torch's index_add_), its backward asks for a CUDA stream
(answered with 0), and non-contiguous indices are misread (always passed contiguous int32).
"""
from __future__ import annotations

import functools
from typing import Any

import torch

_PATCHED = False


def load_spconv() -> Any:
    """`spconv.pytorch`, with the CPU workaround applied (an ImportError naming the extra when absent)."""
    global _PATCHED
    try:
        import spconv.pytorch as spconv
        from spconv.pytorch import ops
    except ImportError:
        raise ImportError("the spconv backend needs spconv: pip install 'uir25m[sparse]' "
                          "(the CPU build; a CUDA build of spconv for GPUs)") from None
    if not _PATCHED:
        def scatter_add_cpu(out: Any, inp: Any, idx: Any) -> None:
            o = torch.from_numpy(out.numpy_view())
            i = torch.from_numpy(inp.numpy_view())
            ix = torch.from_numpy(idx.numpy_view()).long()
            o.index_add_(0, ix, i[: len(ix)])

        ops.SpconvOps.scatter_add_cpu = scatter_add_cpu
        if not torch.cuda.is_available():
            ops.get_current_stream = lambda: 0
        _PATCHED = True
    return spconv


def supports(conv: torch.nn.Module) -> bool:
    """Whether `conv` has a submanifold equivalent (ungrouped, stride 1, odd kernel, 'same')."""
    if type(conv) is not torch.nn.Conv2d:
        return False
    k = conv.kernel_size
    return (conv.groups == 1 and conv.stride == (1, 1) and conv.dilation == (1, 1) and k[0] % 2 == 1
            and k[1] % 2 == 1 and conv.padding == (k[0] // 2, k[1] // 2) and conv.padding_mode == "zeros")


@functools.cache
def _submconv(cin: int, cout: int, kernel: tuple[int, int], padding: tuple[int, int], bias: bool,
              device: torch.device):
    """A SubMConv2d used only for its forward machinery (our conv's weight and bias are passed in):
    one per layout, so no throw-away weights are allocated, initialised or copied per call."""
    return load_spconv().SubMConv2d(cin, cout, kernel, padding=padding, bias=bias).to(device)


def submanifold(conv: torch.nn.Conv2d, x: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
    """`conv` as a submanifold sparse convolution at the visible positions of x (B x C x H x W;
    visible: B x 1 x H x W bool); masked positions of the result are zero. Differentiable with
    respect to x and the conv's own weight and bias."""
    if not supports(conv):
        raise ValueError(f"the spconv backend covers ungrouped stride-1 odd-kernel 'same' convolutions, not {conv}")
    spconv = load_spconv()
    b, c, h, w = x.shape
    idx = visible[:, 0].nonzero().int().contiguous()  # (n, 3): batch, y, x
    feats = x.permute(0, 2, 3, 1)[idx[:, 0].long(), idx[:, 1].long(), idx[:, 2].long()]
    sparse = spconv.SparseConvTensor(feats.contiguous(), idx, [h, w], b)
    sub = _submconv(c, conv.out_channels, tuple(conv.kernel_size), tuple(conv.padding), conv.bias is not None,
                    x.device)
    weight = conv.weight.permute(0, 2, 3, 1).contiguous().to(x.dtype)  # spconv: out x kh x kw x in
    bias = None if conv.bias is None else conv.bias.to(x.dtype)
    out = sub._conv_forward(sub.training, sparse, weight, bias)
    dense = torch.zeros(b, h, w, conv.out_channels, dtype=out.features.dtype, device=x.device)
    dense = dense.index_put((idx[:, 0].long(), idx[:, 1].long(), idx[:, 2].long()), out.features)
    return dense.permute(0, 3, 1, 2)
