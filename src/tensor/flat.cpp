#include "tensor/flat.h"

#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "tensor/arena.h"

namespace moe {

size_t ParamLayout::add(const std::string& name, const Shape& shape) {
  if (find(name)) throw std::invalid_argument("parameter layout: duplicate tensor " + name);
  size_t off = (total_ + 15) / 16 * 16;
  specs_.push_back({name, shape, off});
  total_ = off + size_t(shape.numel());
  return off;
}

const ParamSpec* ParamLayout::find(const std::string& name) const {
  for (const auto& s : specs_)
    if (s.name == name) return &s;
  return nullptr;
}

const ParamSpec& ParamLayout::at(const std::string& name) const {
  const ParamSpec* s = find(name);
  if (!s) throw std::out_of_range("parameter layout: no tensor named " + name);
  return *s;
}

size_t ParamLayout::num_params() const {
  size_t n = 0;
  for (const auto& s : specs_) n += size_t(s.shape.numel());
  return n;
}

void FlatBuffer::Free::operator()(float* p) const { std::free(p); }

FlatBuffer::FlatBuffer(const ParamLayout& layout)
    : layout_(&layout), data_(static_cast<float*>(aligned_zalloc(layout.numel() * sizeof(float)))) {}

Tensor FlatBuffer::view(const std::string& name) {
  const ParamSpec& s = layout_->at(name);
  return Tensor{data_.get() + s.offset, DType::F32, s.shape};
}

void FlatBuffer::zero() { std::memset(data_.get(), 0, numel() * sizeof(float)); }

}  // namespace moe
