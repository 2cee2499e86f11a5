#include "upcycle/step0.h"

#include <cstdio>
#include <sstream>

namespace moe {

nlohmann::ordered_json Step0Report::to_json() const {
  nlohmann::ordered_json j{{"batch", batch}, {"B", B}, {"T", T}, {"dense_loss", dense_loss}, {"moe_loss", moe_loss},
                           {"loss_diff", moe_loss - dense_loss}};
  nlohmann::ordered_json ls = nlohmann::ordered_json::array();
  for (const Step0Layer& L : layers) {
    nlohmann::ordered_json o{{"layer", L.layer}, {"moe", L.moe}};
    if (L.moe) {
      o["block_max_diff"] = L.block_max_diff, o["mlp_max_abs"] = L.mlp_max_abs, o["scale"] = L.scale;
      o["gate_mass"] = L.gate_mass, o["drop_fraction"] = L.drop_fraction;
      if (!L.note.empty()) o["untaken"] = L.untaken, o["note"] = L.note;
    }
    o["hidden_max_diff"] = L.hidden_max_diff;
    ls.push_back(o);
  }
  j["layers"] = ls;
  return j;
}

std::string Step0Report::text() const {
  std::ostringstream o;
  char buf[256];
  std::snprintf(buf, sizeof buf, "step-0 check on %d x %d tokens (%s)\n", B, T, batch.c_str());
  o << buf << "  layer  block max|diff|  dense MLP max|y|  scale  gate mass  dropped  hidden max|diff|\n";
  for (const Step0Layer& L : layers) {
    if (L.moe)
      std::snprintf(buf, sizeof buf, "  %5d  %15.3g  %16.3g  %5.3f  %9.3f  %6.1f%%  %16.3g\n", L.layer, L.block_max_diff,
                    L.mlp_max_abs, L.scale, L.gate_mass, 100 * L.drop_fraction, L.hidden_max_diff);
    else
      std::snprintf(buf, sizeof buf, "  %5d  %15s  %16s  %5s  %9s  %7s  %16.3g\n", L.layer, "(dense)", "", "", "", "",
                    L.hidden_max_diff);
    o << buf;
  }
  std::snprintf(buf, sizeof buf, "  loss: dense %.6f, upcycled %.6f (difference %+.3g)\n", dense_loss, moe_loss,
                moe_loss - dense_loss);
  o << buf;
  for (const Step0Layer& L : layers)
    if (!L.note.empty()) o << "  layer " << L.layer << ": " << L.note << "\n";
  return o.str();
}

}  // namespace moe
