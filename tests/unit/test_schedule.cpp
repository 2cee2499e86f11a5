// Learning-rate schedules (lr_at): warmup, cosine, warmup-stable-decay, inverse square
// root, and a continued schedule (an --init run that picks up where its source stood).
#include <gtest/gtest.h>

#include <cmath>

#include "train/config.h"

namespace moe {
namespace {

TrainConfig base(const std::string& schedule) {
  TrainConfig c;
  c.schedule = schedule;
  c.steps = 1000, c.warmup = 100, c.lr = 1e-3f, c.min_lr = 1e-4f;
  return c;
}

TEST(Schedule, WarmupIsLinearForEverySchedule) {
  for (const char* s : {"cosine", "wsd", "rsqrt"}) {
    const TrainConfig c = base(s);
    EXPECT_FLOAT_EQ(lr_at(c, 0), 1e-5f) << s;   // (0 + 1) / 100 of the peak
    EXPECT_FLOAT_EQ(lr_at(c, 49), 5e-4f) << s;
    EXPECT_FLOAT_EQ(lr_at(c, 99), 1e-3f) << s;  // the peak at the warmup's last step
  }
}

TEST(Schedule, CosineReachesTheMinimumAtTheEnd) {
  const TrainConfig c = base("cosine");
  EXPECT_FLOAT_EQ(lr_at(c, 100), 1e-3f);
  EXPECT_FLOAT_EQ(lr_at(c, 550), 5.5e-4f);  // halfway: the mean of peak and minimum
  EXPECT_NEAR(lr_at(c, 999), 1e-4f, 1e-8f);
  EXPECT_FLOAT_EQ(lr_at(c, 1000), 1e-4f);
}

TEST(Schedule, WsdIsConstantThenDecaysLinearlyOverTheLastSteps) {
  TrainConfig c = base("wsd");
  c.decay_steps = 200;
  EXPECT_FLOAT_EQ(lr_at(c, 100), 1e-3f);
  EXPECT_FLOAT_EQ(lr_at(c, 799), 1e-3f);    // the last stable step
  EXPECT_FLOAT_EQ(lr_at(c, 800), 1e-3f);    // the decay's first step: progress 0
  EXPECT_FLOAT_EQ(lr_at(c, 900), 5.5e-4f);  // halfway down
  EXPECT_NEAR(lr_at(c, 999), 1e-3 + (1e-4 - 1e-3) * 199.0 / 200.0, 1e-10);
  c.decay_steps = 0;  // no decay: constant to the end
  EXPECT_FLOAT_EQ(lr_at(c, 999), 1e-3f);
}

TEST(Schedule, RsqrtFallsAsTheInverseSquareRoot) {
  const TrainConfig c = base("rsqrt");
  EXPECT_FLOAT_EQ(lr_at(c, 99), 1e-3f);
  EXPECT_FLOAT_EQ(lr_at(c, 399), 5e-4f);  // sqrt(100 / 400)
  EXPECT_FLOAT_EQ(lr_at(c, 9999), 1e-4f);  // sqrt(100 / 10000); not bounded by the run's steps
}

// A run continuing another's schedule at step k with --steps n: its step s has the
// learning rate of position k + s of a schedule of k + n steps, so continuing a run to
// its own end reproduces its remaining learning rates exactly.
TEST(Schedule, ContinuedScheduleIsTheSourcesFromWhereItStood) {
  for (const char* s : {"cosine", "wsd", "rsqrt"}) {
    TrainConfig src = base(s);
    if (std::string(s) == "wsd") src.decay_steps = 150;
    TrainConfig cont = src;
    cont.schedule_offset = 600, cont.steps = 400;
    for (int step = 0; step < 400; step++) ASSERT_EQ(lr_at(cont, step), lr_at(src, 600 + step)) << s << " " << step;
  }
  // Extending the horizon: the wsd decay moves to the continued run's end.
  TrainConfig src = base("wsd");
  src.decay_steps = 0;
  TrainConfig cont = src;
  cont.schedule_offset = 1000, cont.steps = 500, cont.decay_steps = 100;
  EXPECT_FLOAT_EQ(lr_at(cont, 0), 1e-3f);  // no new warmup
  EXPECT_FLOAT_EQ(lr_at(cont, 399), 1e-3f);
  EXPECT_FLOAT_EQ(lr_at(cont, 450), 5.5e-4f);
}

TEST(Schedule, BadSettingsAreRefusedNamingTheFlag) {
  TrainConfig c = base("linear");
  EXPECT_THROW(c.validate(), std::invalid_argument);
  c = base("cosine");
  c.decay_steps = 10;
  try {
    c.validate();
    FAIL() << "decay steps with cosine";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("--decay-steps"), std::string::npos) << e.what();
  }
  c = base("wsd");
  c.decay_steps = 1001;
  EXPECT_THROW(c.validate(), std::invalid_argument);
}

TEST(Schedule, SavedInTheConfigAndReadBack) {
  TrainConfig c = base("wsd");
  c.decay_steps = 200, c.schedule_offset = 300, c.schedule_from = "runs/a/checkpoint-300";
  const TrainConfig r = TrainConfig::from_json(c.to_json(), "trainer_state.json");
  EXPECT_EQ(r.schedule, "wsd");
  EXPECT_EQ(r.decay_steps, 200);
  EXPECT_EQ(r.schedule_offset, 300);
  EXPECT_EQ(r.schedule_from, "runs/a/checkpoint-300");
  nlohmann::json old = c.to_json();  // a run saved before schedules existed: cosine
  for (const char* k : {"schedule", "decay_steps", "schedule_offset", "schedule_from"}) old.erase(k);
  EXPECT_EQ(TrainConfig::from_json(old, "x").schedule, "cosine");
}

}  // namespace
}  // namespace moe
