#include "tensor/arena.h"

#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>

namespace moe {

constexpr size_t kAlign = 64;

void* aligned_zalloc(size_t bytes) {
  size_t rounded = (bytes + kAlign - 1) / kAlign * kAlign;
  if (rounded == 0) rounded = kAlign;
  void* p = std::aligned_alloc(kAlign, rounded);
  if (!p) throw std::bad_alloc();
  std::memset(p, 0, rounded);
  return p;
}

Arena::Arena(size_t capacity_bytes) : cap_(capacity_bytes) {
  base_ = static_cast<char*>(aligned_zalloc(capacity_bytes));
}

Arena::~Arena() { std::free(base_); }

void* Arena::alloc_bytes(size_t n) {
  size_t start = (used_ + kAlign - 1) / kAlign * kAlign;
  if (start + n > cap_)
    throw std::runtime_error("arena: out of memory: asked " + std::to_string(n) + " bytes with " +
                             std::to_string(cap_ - std::min(cap_, start)) + " of " + std::to_string(cap_) +
                             " left");
  used_ = start + n;
  if (used_ > high_) high_ = used_;
  return base_ + start;
}

}  // namespace moe
