// A bump allocator for activations: one big block, 64-byte aligned slices,
// reset between steps. Slices stay valid until reset(); nothing is freed singly.
#pragma once
#include <cstddef>
#include <memory>

#include "tensor/tensor.h"

namespace moe {

class Arena {
 public:
  explicit Arena(size_t capacity_bytes);
  ~Arena();
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;

  void* alloc_bytes(size_t n);  // throws std::bad_alloc when full, naming the sizes
  template <typename T>
  T* alloc(size_t count) {
    return static_cast<T*>(alloc_bytes(count * sizeof(T)));
  }
  Tensor tensor(DType dt, const Shape& s) { return Tensor{alloc_bytes(s.numel() * dtype_size(dt)), dt, s}; }

  void reset() { used_ = 0; }
  size_t used() const { return used_; }
  size_t capacity() const { return cap_; }
  size_t high_water() const { return high_; }

 private:
  char* base_ = nullptr;
  size_t cap_ = 0, used_ = 0, high_ = 0;
};

// 64-byte aligned heap block (zeroed), freed with free().
void* aligned_zalloc(size_t bytes);

}  // namespace moe
