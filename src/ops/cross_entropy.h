// Softmax cross-entropy over the vocabulary, one row per token:
//   losses[n] = logsumexp(logits[n,:]) - logits[n, targets[n]]
//   lse (N): the row's logsumexp, saved so the backward needs no (N,V) softmax buffer.
// targets[n] < 0 marks an ignored position: loss 0, gradient 0.
// Backward: dlogits (N,V) = (softmax(logits) - onehot(target)) * dlosses[n], assigned;
// dlogits may alias logits (in place, saving an (N,V) buffer).
// Targets >= V are a caller bug (validated at the data edge).
#pragma once
#include <cstddef>
#include <cstdint>

namespace moe {

template <typename S>
void crossentropy_forward_ref(S* losses, S* lse, const S* logits, const int32_t* targets, int N, int V);
template <typename S>
void crossentropy_backward_ref(S* dlogits, const S* dlosses, const S* logits, const S* lse, const int32_t* targets,
                               int N, int V);

void crossentropy_forward(float* losses, float* lse, const float* logits, const int32_t* targets, int N, int V);
void crossentropy_backward(float* dlogits, const float* dlosses, const float* logits, const float* lse,
                           const int32_t* targets, int N, int V);

}  // namespace moe
