// moe train under mpirun on this machine (--oversubscribe --bind-to none, one thread
// per rank): data parallelism over P = 1..4 ranks computes the one-process run at the
// same global batch, ZeRO-1 and reruns give the same bits, runs resume across
// layouts, and an error on one rank ends every rank.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>

#include "cli/cli_util.h"
#include "io/safetensors.h"

namespace fs = std::filesystem;

namespace moe::clitest {
namespace {

using json = nlohmann::json;

std::string mpirun(int P) {
  return "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 timeout -s KILL 300 " +
         std::string(MOE_MPIEXEC) + " --oversubscribe --bind-to none -x OMP_NUM_THREADS -np " + std::to_string(P) + " ";
}

// A short run: batch 12 (a multiple of 1, 2, 3 and 4), 6 steps.
std::string train_args(const std::string& out, const std::string& model) {
  return kOneThread + "train --data " + q(dataset()) + " --out " + q(out) + " --preset tiny --batch 12 --seq 32 " +
         "--steps 6 --eval-every 3 --eval-batches 2 --warmup 2 " + model;
}

Proc train(int P, const std::string& args) { return P == 0 ? run_moe(args) : run_moe(args, mpirun(P)); }

struct Step {
  double loss = 0, moe_loss = 0;
  std::vector<int64_t> dropped;
};
std::map<int, Step> steps_of(const std::string& run) {
  std::map<int, Step> out;
  for (const json& j : read_jsonl(run + "/log.jsonl")) {
    if (!j.contains("loss")) continue;
    Step s;
    s.loss = j["loss"].get<double>();
    if (j.contains("moe")) {
      s.moe_loss = j["moe_loss"].get<double>();
      for (const json& l : j["moe"]) s.dropped.push_back(l["dropped"].get<int64_t>());
    }
    out[j["step"].get<int>()] = s;
  }
  return out;
}

double max_abs_diff(const std::string& a, const std::string& b) {
  SafeTensorsFile fa = SafeTensorsFile::open(a), fb = SafeTensorsFile::open(b);
  EXPECT_EQ(fa.tensors().size(), fb.tensors().size());
  double d = 0;
  for (const STEntry& e : fa.tensors()) {
    const std::vector<float> va = fa.read_f32(e), vb = fb.read_f32(fb.at(e.name));
    for (size_t i = 0; i < va.size(); i++) d = std::max(d, double(std::fabs(va[i] - vb[i])));
  }
  return d;
}

// Tolerances against the one-process run. The ranks split each batch, so GEMMs and
// the gradient sum add in another order: fp32 rounding differences of ~1e-7 relative.
// Losses of the first steps agree to the last printed digit; AdamW's m / sqrt(v)
// amplifies gradient rounding where gradients are near zero (an update is at most
// ~lr = 1e-3 per step), so weights after 6 steps get 5e-5 (seen: at most 2.3e-6).
constexpr double kLossTol = 1e-5, kMoeLossTol = 1e-8, kWeightTol = 5e-5;

void expect_same_run(const std::string& ref, const std::string& run, const std::string& what) {
  SCOPED_TRACE(what);
  const auto a = steps_of(ref), b = steps_of(run);
  ASSERT_EQ(a.size(), 6u);
  ASSERT_EQ(b.size(), 6u);
  for (const auto& [step, s] : a) {
    const Step& t = b.at(step);
    EXPECT_NEAR(s.loss, t.loss, kLossTol) << "step " << step;
    EXPECT_NEAR(s.moe_loss, t.moe_loss, kMoeLossTol) << "step " << step;
    EXPECT_EQ(s.dropped, t.dropped) << "dropped pairs per MoE layer differ at step " << step;
  }
  EXPECT_LE(max_abs_diff(ref + "/checkpoint-6/model.safetensors", run + "/checkpoint-6/model.safetensors"), kWeightTol);
}

struct Model {
  const char* name;
  const char* flags;
};
const Model kModels[] = {
    {"llama dense", "--family llama"},
    {"gpt2 dense", "--family gpt2"},
    {"llama top-1 dropping", "--family llama --experts 4 --top-k 1 --combine raw --capacity-factor 1.0"},
    {"gpt2 top-1 dropping", "--family gpt2 --experts 4 --top-k 1 --combine raw --capacity-factor 1.0"},
    {"llama top-2 dropless", "--family llama --experts 4 --top-k 2 --capacity-factor 0"},
    {"gpt2 top-2 dropless", "--family gpt2 --experts 4 --top-k 2 --capacity-factor 0"},
};

TEST(Mpi, DataParallelComputesTheOneProcessRun) {
  TempDir t("mpi_dp");
  int n = 0;
  for (const Model& m : kModels) {
    const std::string ref = t / ("ref" + std::to_string(n));
    Proc r = train(0, train_args(ref, m.flags));
    ASSERT_EQ(r.code, 0) << r.err;
    for (int P : {1, 2, 3, 4}) {
      const std::string out = t / ("run" + std::to_string(n) + "_" + std::to_string(P));
      r = train(P, train_args(out, m.flags));
      ASSERT_EQ(r.code, 0) << m.name << " P=" << P << ": " << r.err;
      expect_same_run(ref, out, std::string(m.name) + ", P=" + std::to_string(P));
    }
    n++;
  }
}

TEST(Mpi, RerunsZeroOneAndRecomputeGiveTheSameBits) {
  TempDir t("mpi_bits");
  const std::string flags = kModels[2].flags;
  for (int P : {2, 3}) {
    const std::string a = t / ("a" + std::to_string(P)), b = t / ("b" + std::to_string(P)),
                      z = t / ("z" + std::to_string(P));
    const std::string zr = t / ("zr" + std::to_string(P));
    for (const auto& [out, extra] :
         {std::pair{a, ""}, std::pair{b, ""}, std::pair{z, " --zero 1"}, std::pair{zr, " --zero 1 --recompute"}}) {
      Proc r = train(P, train_args(out, flags + std::string(extra)));
      ASSERT_EQ(r.code, 0) << r.err;
    }
    for (const char* f : {"/checkpoint-6/model.safetensors", "/checkpoint-6/optimizer.safetensors"}) {
      EXPECT_EQ(read_file(a + f), read_file(b + f)) << "P=" << P << ": a rerun differs in " << f;
      EXPECT_EQ(read_file(a + f), read_file(z + f)) << "P=" << P << ": ZeRO-1 differs from replicated in " << f;
      EXPECT_EQ(read_file(a + f), read_file(zr + f)) << "P=" << P << ": ZeRO-1 + recompute differs in " << f;
    }
  }
}

// Saved by P ranks, resumed by another number: the same run (the checkpoint and the
// optimizer moments do not depend on the layout).
TEST(Mpi, ResumesAcrossLayouts) {
  TempDir t("mpi_resume");
  const std::string flags = kModels[4].flags;
  const std::string ref = t / "ref";
  ASSERT_EQ(train(0, train_args(ref, flags)).code, 0);
  const std::vector<std::vector<int>> layouts{{4, 2, 1}, {1, 4, 2}};
  int n = 0;
  for (const auto& ps : layouts) {
    const std::string out = t / ("run" + std::to_string(n++));
    Proc r = train(ps[0], train_args(out, flags + " --zero 1") + " --stop-at 2");
    ASSERT_EQ(r.code, 0) << r.err;
    r = train(ps[1], kOneThread + "train --out " + q(out) + " --resume --stop-at 4");
    ASSERT_EQ(r.code, 0) << r.err;
    r = train(ps[2], kOneThread + "train --out " + q(out) + " --resume");
    ASSERT_EQ(r.code, 0) << r.err;
    expect_same_run(ref, out, "layouts " + std::to_string(ps[0]) + " -> " + std::to_string(ps[1]) + " -> " +
                                  std::to_string(ps[2]));
  }
}

// moe eval under mpirun: the ranks split the batches; the one-process numbers exactly.
TEST(Mpi, EvalSplitsTheBatches) {
  const std::string args = kOneThread + "eval --model " + q(run()) + " --data " + q(dataset()) + " --batches 5 --json";
  Proc one = run_moe(args);
  ASSERT_EQ(one.code, 0) << one.err;
  for (int P : {2, 3}) {
    Proc r = run_moe(args, mpirun(P));
    ASSERT_EQ(r.code, 0) << r.err;
    const json a = json::parse(one.out), b = json::parse(r.out);
    EXPECT_EQ(a["loss"], b["loss"]) << "P=" << P;
    EXPECT_EQ(a["tokens"], b["tokens"]);
  }
}

// One rank given a dataset that does not exist (MPMD launch: different arguments per
// rank): every rank ends, non-zero, quickly, with the one-line error.
TEST(Mpi, AnErrorOnOneRankEndsEveryRank) {
  TempDir t("mpi_fail");
  const std::string good = train_args(t / "run", "--family llama");
  std::string bad = good;
  bad.replace(bad.find(q(dataset())), q(dataset()).size(), q(t / "no_such_dataset"));
  const std::string cmd = "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 timeout -s KILL 60 " +
                          std::string(MOE_MPIEXEC) + " --oversubscribe --bind-to none -np 1 '" + MOE_BINARY + "' " +
                          good + " : -np 1 ";
  Proc r = run_moe(bad, cmd);
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.code, 128 + 9) << "killed by the timeout: a rank hung";
  EXPECT_NE(r.err.find("rank 1 of 2: error: dataset " + t / "no_such_dataset"), std::string::npos) << r.err;
  // A bad flag on every rank: each exits 2 (usage), no hang.
  r = run_moe(kOneThread + "train --out " + q(t / "x") + " --batch 0", mpirun(2));
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.code, 128 + 9);
  EXPECT_NE(r.err.find("--batch"), std::string::npos) << r.err;
  // A batch that the ranks cannot share.
  r = train(3, train_args(t / "y", "--family llama").replace(train_args(t / "y", "--family llama").find("--batch 12"), 10,
                                                               "--batch 4"));
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("must be a multiple of the 3 ranks"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(t / "y"));
}

}  // namespace
}  // namespace moe::clitest
