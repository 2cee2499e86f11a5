#include "upcycle/options.h"

#include <stdexcept>

namespace moe {

UpcycleStrategy upcycle_strategy_parse(const std::string& s) {
  if (s == "copy") return UpcycleStrategy::Copy;
  if (s == "noise") return UpcycleStrategy::Noise;
  if (s == "drop") return UpcycleStrategy::Drop;
  if (s == "granular") return UpcycleStrategy::Granular;
  throw std::invalid_argument("moe upcycle: --strategy \"" + s + "\": expected copy, noise, drop or granular");
}

}  // namespace moe
