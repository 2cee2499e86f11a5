#include "model/decoder/carry.h"

#include <stdexcept>

#include "io/safetensors.h"
#include "io/st_shards.h"
#include "model/checkpoint.h"
#include "model/decoder/model_io.h"
#include "model/decoder/model.h"

namespace moe {

void upcycle_optimizer(const std::string& dense_dir, const ModelConfig& dc, const ModelConfig& mc,
                       const std::function<ExpertRecipe(int)>& recipe, const std::string& out_dir) {
  const SafeTensorsFile f = SafeTensorsFile::open(dense_dir + "/optimizer.safetensors");
  auto step = f.metadata().find("step");
  if (step == f.metadata().end()) throw std::runtime_error(f.path() + ": metadata has no \"step\"");
  const ModelLayout dl = model_layout(dc), ml = model_layout(mc);
  const auto mroles = model_roles(mc);
  const Family& df = family_of(dc.family);
  // A dense moment, checked: F32 and the dense parameter's shape (ours, [out, in]).
  auto moment = [&](const std::string& kind, const std::string& dname) -> const STEntry& {
    const ParamSpec& s = dl.layout.at(dname);
    const STEntry& e = f.expect(kind + dname, s.shape.vec());
    if (e.dtype != STDType::F32) throw std::runtime_error(f.path() + ": tensor '" + e.name + "' must be F32");
    return e;
  };
  ShardedWriter w("optimizer", UINT64_MAX);  // one file: the trainer reads optimizer.safetensors
  std::vector<float> dense, out;
  for (const ParamSpec& s : ml.layout.specs()) {
    const TensorRole r = mroles.at(s.name);
    const std::vector<int64_t> shape = s.shape.vec();
    const size_t n = size_t(s.shape.numel());
    for (const std::string kind : {"exp_avg.", "exp_avg_sq."}) {
      if (r.role == Role::Router) {
        w.add(kind + s.name, STDType::F32, shape, [&out, n](std::vector<char>&) {
          out.assign(n, 0.0f);
          return static_cast<const void*>(out.data());
        });
        continue;
      }
      MlpPart part = MlpPart::In;
      const Role dr = expert_source_role(r.role, dc.mlp, &part);
      const std::string dname = df.name(dr, r.layer);
      const STEntry& e = moment(kind, dname);
      if (dr == r.role) {  // a shared tensor: the same moments
        w.add(kind + s.name, STDType::F32, shape, [&f, &e](std::vector<char>&) { return f.data(e); });
        continue;
      }
      // Experts [E, ...] in our orientation: units on axis 0 (In, biases) or 1 (Out).
      const int axis = part == MlpPart::Out ? 1 : 0;
      const int layer = r.layer, E = mc.n_experts;
      w.add(kind + s.name, STDType::F32, shape, [&, e, part, axis, layer, E, n](std::vector<char>&) {
        dense = f.read_f32(e);
        out.assign(n, 0.0f);
        const size_t per = n / size_t(E);
        const int64_t rows = e.shape[0], cols = e.shape.size() == 2 ? e.shape[1] : 1;
        const ExpertRecipe rc = recipe(layer);
        for (int x = 0; x < E; x++) expert_moment(rc, part, axis, dense.data(), rows, cols, x, out.data() + x * per);
        return static_cast<const void*>(out.data());
      });
    }
  }
  w.set_metadata("step", step->second);
  w.write(out_dir);
}

}  // namespace moe
