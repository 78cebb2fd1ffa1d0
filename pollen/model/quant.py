"""Optional weight quantisation of a span with bitsandbytes (int8 LLM.int8(), or NF4).

Works on CPU with bitsandbytes 0.50 (and on CUDA); activations and the KV cache keep the span's
compute dtype. Quantised spans serve inference and forward; backward still works (gradients
w.r.t. inputs flow through the dequantised matmuls).
"""

from __future__ import annotations

import torch
from torch import nn

from pollen.model.family import ModelError
from pollen.model.span import SpanModel


def _quantized_linear(linear: nn.Linear, mode: str, compute_dtype: torch.dtype, device: torch.device) -> nn.Module:
    import bitsandbytes as bnb

    has_bias = linear.bias is not None
    if mode == "int8":
        q = bnb.nn.Linear8bitLt(linear.in_features, linear.out_features, bias=has_bias,
                                has_fp16_weights=False, threshold=6.0)
        q.weight = bnb.nn.Int8Params(linear.weight.data.float().clone(), requires_grad=False,
                                     has_fp16_weights=False)
    else:
        q = bnb.nn.Linear4bit(linear.in_features, linear.out_features, bias=has_bias,
                              quant_type="nf4", compute_dtype=compute_dtype)
        q.weight = bnb.nn.Params4bit(linear.weight.data.float().clone(), requires_grad=False, quant_type="nf4")
    if has_bias:
        q.bias = nn.Parameter(linear.bias.data.clone(), requires_grad=False)
    return q.to(device)  # on CUDA this is where bitsandbytes quantises


def quantize_span(span: SpanModel, mode: str) -> SpanModel:
    """Replace every nn.Linear inside the span's blocks by a bitsandbytes int8 / nf4 layer."""
    if mode not in ("int8", "nf4"):
        raise ModelError(f"unknown quantization {mode!r} (int8 | nf4)")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as exc:
        raise ModelError("quantization needs the bitsandbytes package") from exc
    for block in span.blocks:
        for parent in list(block.modules()):
            for name, child in list(parent.named_children()):
                if isinstance(child, nn.Linear):
                    setattr(parent, name, _quantized_linear(child, mode, span.compute_dtype, span.device))
    return span.eval().requires_grad_(False)
