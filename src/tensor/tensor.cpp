#include "tensor/tensor.h"

#include <stdexcept>

namespace moe {

Shape::Shape(std::initializer_list<int64_t> d) {
  if (d.size() > size_t(kMaxDims)) throw std::invalid_argument("Shape: more than 6 dimensions");
  for (int64_t v : d) dims[ndim++] = v;
}

int64_t Shape::numel() const {
  int64_t n = 1;
  for (int i = 0; i < ndim; i++) n *= dims[i];
  return n;
}

bool Shape::operator==(const Shape& o) const {
  if (ndim != o.ndim) return false;
  for (int i = 0; i < ndim; i++)
    if (dims[i] != o.dims[i]) return false;
  return true;
}

std::string Shape::str() const {
  std::string s = "[";
  for (int i = 0; i < ndim; i++) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

float* Tensor::f32() const {
  if (dtype != DType::F32) throw std::logic_error("Tensor::f32 on a BF16 tensor");
  return static_cast<float*>(data);
}

bf16* Tensor::bf() const {
  if (dtype != DType::BF16) throw std::logic_error("Tensor::bf on an F32 tensor");
  return static_cast<bf16*>(data);
}

}  // namespace moe
