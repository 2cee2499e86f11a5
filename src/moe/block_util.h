// Small helpers shared by the MoE block's files (not part of its interface).
#pragma once
#include <vector>

#include "tensor/dtype.h"

namespace moe {

// An expert's row group padded to a multiple of 16 rows (few distinct GEMM shapes).
inline int padded(int rows) { return (rows + 15) / 16 * 16; }

// dst = src rounded to bf16 (the GEMM operand copy), resized to match.
void bf16_copy(std::vector<bf16>& dst, const std::vector<float>& src);

}  // namespace moe
