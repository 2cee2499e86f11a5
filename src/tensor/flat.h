// One flat float32 buffer for all parameters; gradients and AdamW moments are
// more buffers with the same layout, so zeroing, clipping and the optimizer are
// single loops over `numel` floats (the llm.c way).
#pragma once
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace moe {

struct ParamSpec {
  std::string name;  // e.g. "model.layers.0.mlp.up_proj.weight"
  Shape shape;
  size_t offset;     // in floats, 16-float (64-byte) aligned
};

class ParamLayout {
 public:
  // Appends a tensor; returns its offset. Throws on a duplicate name.
  size_t add(const std::string& name, const Shape& shape);
  const ParamSpec* find(const std::string& name) const;  // nullptr when absent
  const ParamSpec& at(const std::string& name) const;    // throws naming the tensor
  const std::vector<ParamSpec>& specs() const { return specs_; }
  size_t numel() const { return total_; }  // floats in the buffer, padding included
  size_t num_params() const;               // sum of tensor sizes, padding excluded

 private:
  std::vector<ParamSpec> specs_;
  size_t total_ = 0;
};

// A zero-initialised, 64-byte aligned float buffer laid out by a ParamLayout.
class FlatBuffer {
 public:
  explicit FlatBuffer(const ParamLayout& layout);
  FlatBuffer(FlatBuffer&&) noexcept = default;
  FlatBuffer& operator=(FlatBuffer&&) noexcept = default;
  float* data() { return data_.get(); }
  const float* data() const { return data_.get(); }
  size_t numel() const { return layout_->numel(); }
  const ParamLayout& layout() const { return *layout_; }
  float* at(const std::string& name) { return data_.get() + layout_->at(name).offset; }
  Tensor view(const std::string& name);
  void zero();

 private:
  struct Free {
    void operator()(float* p) const;
  };
  const ParamLayout* layout_;
  std::unique_ptr<float, Free> data_;
};

}  // namespace moe
