// Shapes and non-owning tensor views over caller-owned memory.
#pragma once
#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "tensor/dtype.h"

namespace moe {

constexpr int kMaxDims = 6;

struct Shape {
  int ndim = 0;
  std::array<int64_t, kMaxDims> dims{};

  Shape() = default;
  Shape(std::initializer_list<int64_t> d);
  int64_t operator[](int i) const { return dims[i]; }
  int64_t numel() const;
  bool operator==(const Shape& o) const;
  bool operator!=(const Shape& o) const { return !(*this == o); }
  std::string str() const;  // "[2, 3, 4]"
  std::vector<int64_t> vec() const { return std::vector<int64_t>(dims.begin(), dims.begin() + ndim); }
};

// A view: pointer + dtype + shape, row-major and contiguous. Owns nothing.
struct Tensor {
  void* data = nullptr;
  DType dtype = DType::F32;
  Shape shape;

  int64_t numel() const { return shape.numel(); }
  size_t nbytes() const { return size_t(numel()) * dtype_size(dtype); }
  float* f32() const;  // checked: throws if dtype is not F32
  bf16* bf() const;    // checked: throws if dtype is not BF16
};

}  // namespace moe
