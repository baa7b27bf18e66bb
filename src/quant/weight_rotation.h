// Products of weight tensors with the block rotations of hadamard.h, as msModelSlim computes them: in float32
// from the weight's own values, rounded once to the weight's dtype (PyTorch's `(W.float() @ R).to(W.dtype)`).
// A block rotation is never expanded: x·R1 costs 32 multiply-adds per element, whatever the hidden size.
#pragma once

#include <cstdint>

#include "core/tensor.h"
#include "quant/hadamard.h"

namespace moeslim::quant {

// y[0, n) = x[0, n) · R in float32 (x and y must not overlap); n a multiple of r.block (not checked here).
void multiply_row(const BlockRotation& r, const float* x, std::int64_t n, float* y);

// dtype(dtype(W ⊙ fold[None, :]) · R) for a 2-D float tensor W [rows, cols] (BF16, F16 or F32; a view is
// fine): a new owned tensor of W's dtype and shape. `fold` (optional, [cols], any float dtype) is a norm
// weight folded into the input channels first, as its own rounding step; without it the result is dtype(W·R).
// kInvalidArgument if cols is not a multiple of r.block or the shapes disagree.
Tensor right_multiply(const Tensor& w, const BlockRotation& r, const Tensor& fold = {});

// dtype(Rᵀ · W) for a 2-D float tensor W [rows, cols], rows a multiple of r.block: mixes the rows within each
// block (the output channels of a linear). A new owned tensor of W's dtype and shape.
Tensor left_multiply_transposed(const BlockRotation& r, const Tensor& w);

}  // namespace moeslim::quant
