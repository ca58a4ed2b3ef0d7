#include "train/loop.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <map>
#include <sstream>

#include "common/device_copy.h"
#include "common/error.h"
#include "common/fs.h"
#include "common/precision.h"
#include "common/random.h"
#include "common/signals.h"
#include "models/classifier.h"
#include "moe/ewa.h"
#include "train/checkpoint.h"
#include "train/fused_adamw.h"
#include "train/run.h"
#include "train/schedule.h"

namespace ewa::train {
namespace fs = std::filesystem;

namespace {

std::unique_ptr<torch::optim::AdamW> make_optimizer(const std::vector<ParamGroup>& groups, const OptimConfig& o) {
  auto base = torch::optim::AdamWOptions(o.lr).betas({o.beta1, o.beta2}).weight_decay(o.weight_decay);
  std::vector<torch::optim::OptimizerParamGroup> torch_groups;
  for (const auto& g : groups)
    torch_groups.emplace_back(
        g.params, std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(base).weight_decay(
                      g.weight_decay ? o.weight_decay : 0.0)));
  return std::make_unique<torch::optim::AdamW>(std::move(torch_groups), base);
}

// The last batch of an epoch must give every rank a sample, and a training BatchNorm two.
void check_last_batch(const Config& cfg, data::BatchSource& batches, torch::nn::Module& model, int64_t world) {
  const int64_t steps_per_epoch = batches.num_batches();
  if (steps_per_epoch == 0)
    fail("data.batch_size: " + std::to_string(cfg.data.batch_size) + " exceeds the " + std::to_string(batches.size()) +
         " training samples, and data.drop_last leaves out the partial batch: lower data.batch_size or set data.drop_last=false");
  if (const int64_t last = batches.global_batch_size(steps_per_epoch - 1); last < world) {
    fail("data.drop_last=false leaves a last batch of " + std::to_string(last) + " samples for " + std::to_string(world) +
         " processes, so a rank would have none: set data.drop_last=true or change data.batch_size");
  } else if (last < 2 * world) {
    for (const auto& m : model.modules(/*include_self=*/false))
      if (dynamic_cast<torch::nn::BatchNormImplBase<1, torch::nn::BatchNorm1dImpl>*>(m.get()))
        fail("data.drop_last=false leaves a last batch of " + std::to_string(last) + " samples" +
             (world > 1 ? " for " + std::to_string(world) + " processes" : "") +
             ", so a training BatchNorm layer would see a single sample: set data.drop_last=true or change data.batch_size");
  }
}

}  // namespace

std::vector<ParamGroup> Task::parameter_groups() {
  return layer_decay_groups(model(), 1.0, 0, [](const std::string&) { return int64_t(0); });
}

std::vector<ParamGroup> layer_decay_groups(torch::nn::Module& model, double decay, int64_t num_layers,
                                           const std::function<int64_t(const std::string&)>& layer_of) {
  // (layer, no weight decay) -> group: per layer the decayed group first, as checkpoints written
  // before layer decay existed hold their optimizer state in that order.
  std::map<std::pair<int64_t, bool>, ParamGroup> groups;
  for (const auto& p : model.named_parameters()) {
    if (!p.value().requires_grad()) continue;
    const int64_t layer = decay == 1.0 ? num_layers : layer_of(p.key());
    const bool wd = models::uses_weight_decay(p.key(), p.value());
    auto& g = groups[{layer, !wd}];
    g.params.push_back(p.value());
    g.lr_scale = std::pow(decay, double(num_layers - layer));
    g.weight_decay = wd;
  }
  std::vector<ParamGroup> out;
  for (auto& [key, g] : groups) out.push_back(std::move(g));
  return out;
}


// ---- the loop ----

LoopResult run_training(const Config& cfg, Task& task, data::TaskData& data, const TrainOptions& options,
                        const Reporter& report, torch::Device device) {
  Run run(cfg, task, data, options, report, device);
  if (!options.resume.empty()) run.resume(options.resume, options.resumed);
  run.sync_start();
  run.report(run.startup_table());
  std::vector<std::unique_ptr<Hook>> hooks;
  hooks.push_back(progress_log_hook());
  hooks.push_back(checkpoint_hook());
  hooks.push_back(metrics_hook());
  install_stop_handlers();
  run.train_start = Clock::now();
  for (auto& h : hooks) h->at_start(run);
  for (run.epoch = run.start_epoch; run.epoch < cfg.train.epochs; ++run.epoch) {
    task.set_training();
    run.data.train->start_epoch(run.epoch);
    const int64_t first_batch = run.epoch == run.start_epoch ? run.start_position : 0;
    // A checkpoint holds the job's sums: rank 0 carries them on, the other ranks add their own.
    run.sums = first_batch > 0 && run.main_rank ? run.resumed_sums : EpochSums{};
    for (int64_t b = first_batch; b < run.steps_per_epoch; ++b) {
      StepDone done = run.train_step(b);
      run.stop = run.agreed_stop();
      const bool read = done.last_of_epoch ||
                        std::any_of(hooks.begin(), hooks.end(), [&](const auto& h) { return h->needs_read(run, b); });
      if (read) done.losses_read = run.read_pending();
      for (auto& h : hooks) h->after_step(run, done);
    }
    // eval.every: the splits are evaluated every N epochs and after the last.
    const bool evaluate = (run.epoch + 1) % cfg.eval.every == 0 || run.epoch + 1 == cfg.train.epochs;
    const EpochRecord record = run.evaluate_epoch(evaluate);
    run.stop = run.agreed_stop();
    for (auto& h : hooks) h->after_epoch(run, record);
  }
  run.result.steps = run.step;
  if (run.start_epoch >= cfg.train.epochs) run.result.test = run.evaluate(*data.test);
  nlohmann::json metrics = run.group ? nlohmann::json{{"distributed", run.distributed_summary()}} : nlohmann::json::object();
  if (run.has_ema()) {  // from here on the model is the EMA (what was evaluated and saved)
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < run.ema.size(); ++i) run.ema_targets[i].copy_(run.ema[i]);
  }
  if (!run.main_rank) return run.result;
  task.finish(run.dir, run.report);
  run.result.seconds = std::chrono::duration<double>(Clock::now() - run.run_start).count();
  for (auto& h : hooks) h->at_end(run, metrics);
  return run.result;
}

// ---- its named steps ----

void PendingSteps::add(const StepOutput& out, int64_t step) {
  losses_.push_back(out.loss.detach());
  if (out.correct.defined()) correct_.push_back(out.correct.detach());
  counts_.push_back(out.count);
  steps_.push_back(step);
}

std::vector<double> PendingSteps::flush(EpochSums& sums) {
  if (losses_.empty()) return {};
  const auto loss = torch::stack(losses_).to(torch::kDouble).cpu();  // one read for all of them
  const auto correct = correct_.empty() ? torch::Tensor() : torch::stack(correct_).to(torch::kLong).cpu();
  const double* l = loss.data_ptr<double>();
  for (size_t i = 0; i < losses_.size(); ++i) {
    if (!std::isfinite(l[i])) fail("training diverged: loss is " + std::to_string(l[i]) + " at step " + std::to_string(steps_[i]));
    sums.loss += l[i] * double(counts_[i]);
    if (correct.defined()) {
      sums.has_accuracy = true;
      sums.correct += correct.data_ptr<int64_t>()[i];
    }
    sums.seen += counts_[i];
  }
  std::vector<double> out(l, l + losses_.size());
  losses_.clear();
  correct_.clear();
  counts_.clear();
  steps_.clear();
  return out;
}

Run::Run(const Config& cfg_, Task& task_, data::TaskData& data_, const TrainOptions& options, const Reporter& report_all,
         torch::Device device_)
    : cfg(cfg_), task(task_), data(data_), device(device_) {
  run_start = Clock::now();
  result.run_dir = dir = (fs::path(cfg.train.runs_dir) / cfg.name).string();
  last_path = dir + "/last.pt";
  best_path = dir + "/best.pt";
  // Several processes: rank 0 reports and writes; every rank trains on its share of each batch.
  group = options.group && options.group->size() > 1 ? options.group.get() : nullptr;
  main_rank = !group || group->is_main();
  world = group ? group->size() : 1;
  rank = group ? group->rank() : 0;
  report = [this, report_all](const std::string& line) {
    if (main_rank) report_all(line);
  };
  task.set_group(group);
  if (main_rank) {
    ensure_writable_dir(dir);
    if (options.resume.empty() && fs::exists(last_path))
      fail("run directory " + dir + " already holds a checkpoint (last.pt): pass --resume to continue it or choose another --name");
    remove_orphaned_temporaries(dir);  // of a run killed while writing its checkpoint
  }
  auto& model = task.model();
  model.to(device);
  if (group) group->bind_device(device);
  groups = task.parameter_groups();
  if (groups.empty()) fail("nothing to train: every parameter is frozen");
  optimizer = make_optimizer(groups, cfg.optim);
  parameters = model.parameters();
  // BatchNorm running statistics (rank 0's each step, as DDP); step counters agree on every rank
  // anyway, and so does Point-BERT's queue (every rank enqueues the same gathered keys).
  for (const auto& b : model.named_buffers())
    if (b.value().is_floating_point() && b.key() != "queue") float_buffers.push_back(b.value().data());
  moe_count = moe::moe_layers(task.ewa_model()).size();
  if (cfg.train.ema_decay > 0) {
    torch::NoGradGuard no_grad;
    for (const auto& p : model.named_parameters()) ema_names.push_back(p.key()), ema_targets.push_back(p.value());
    for (const auto& b : model.named_buffers())
      if (b.value().is_floating_point() && b.key() != "queue") ema_names.push_back(b.key()), ema_targets.push_back(b.value());
    for (const auto& t : ema_targets) ema.push_back(t.detach().clone());
  }
  if (main_rank && cfg.train.tensorboard) events = std::make_unique<io::EventWriter>(dir + "/tensorboard");

  data.train->place(device, rank, world);
  data.test->place(device);
  if (data.val) data.val->place(device);
  steps_per_epoch = data.train->num_batches();
  check_last_batch(cfg, *data.train, model, world);
  total_steps = steps_per_epoch * cfg.train.epochs;
  if (group) {
    gradient_sync = std::make_unique<dist::GradientSync>(*group, model.parameters(), cfg.train.overlap_allreduce,
                                                         cfg.train.bucket_mb << 20);
  }
}

void Run::resume(const std::string& path, std::shared_ptr<const Checkpoint> read) {
  if (!read) read = std::make_shared<const Checkpoint>(read_checkpoint(path));
  const Checkpoint& ckpt = *read;
  load_model_state(task.model(), ckpt, path);
  if (!ckpt.model_train.is_empty()) {  // "model" is an EMA; training goes on from the raw weights
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < ema.size(); ++i) ema[i].copy_(ema_targets[i]);
    Checkpoint raw;
    raw.model = ckpt.model_train;
    load_model_state(task.model(), raw, path + " (model_train)");
  } else if (has_ema()) {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < ema.size(); ++i) ema[i].copy_(ema_targets[i]);  // the average starts here
  }
  load_training_state(*optimizer, ckpt, path);
  step = steps_at_start = ckpt.step;
  start_epoch = ckpt.epoch;
  const auto& pr = ckpt.progress;
  try {
    start_position = pr.value("position", int64_t(0));
    if (pr.contains("best_val") && !pr["best_val"].is_null()) {
      best_val = pr["best_val"].get<double>();
      result.best_val_epoch = pr.value("best_val_epoch", int64_t(0));
    }
    if (pr.contains("best_test") && !pr["best_test"].is_null()) {
      best_test = pr["best_test"].get<double>();
      best_test_epoch = pr.value("best_test_epoch", int64_t(0));
      best_test_json = pr.value("best_test_record", nlohmann::json());
      best_test_text = pr.value("best_test_text", std::string());
    }
    resumed_sums = {pr.value("epoch_loss", 0.0), pr.value("epoch_correct", int64_t(0)), pr.value("epoch_seen", int64_t(0)),
                    pr.value("has_accuracy", false)};
  } catch (const nlohmann::json::exception&) {
    fail("checkpoint " + path + ": field 'progress' has a value of the wrong type");
  }
  if (start_position < 0 || start_position > steps_per_epoch || step != start_epoch * steps_per_epoch + start_position)
    fail("checkpoint " + path + ": stopped at step " + std::to_string(step) + " = batch " + std::to_string(start_position) +
         " of epoch " + std::to_string(start_epoch + 1) + ", which does not fit " + std::to_string(steps_per_epoch) +
         " batches per epoch (data.batch_size or the dataset changed)");
  report("resumed from " + path + " at epoch " + std::to_string(start_epoch) +
         (start_position ? " + " + std::to_string(start_position) + " batches" : "") + ", step " + std::to_string(step));
}

void Run::sync_start() {
  if (group) {
    // Every rank starts from rank 0's weights and buffers (the same seed gives the same ones;
    // this makes sure of it).
    std::vector<torch::Tensor> state;
    for (const auto& p : task.model().parameters()) state.push_back(p.data());
    for (const auto& b : task.model().buffers()) state.push_back(b.data());
    group->broadcast(state);
    comm_at_start = group->comm_seconds();
  }
  if (main_rank) write_text_atomically(dir + "/config.json", cfg.json.dump(2) + "\n");
  if (cfg.moe.kind == MlpKind::Routed && cfg.ewa.enabled && moe_count)
    report("warning: EWA is on (ewa.enabled defaults to true) with moe.kind = routed: it will average the "
           "learned-gate experts toward each other after every step. The paper's routed-MoE baseline has EWA off: "
           "set ewa.enabled=false for it.");
}

StepOutput optimization_step(const Config& cfg, torch::Device device, const std::function<StepOutput()>& forward,
                             torch::optim::AdamW& optimizer, const std::vector<torch::Tensor>& parameters,
                             dist::GradientSync* sync, int64_t global_count) {
  StepOutput out;
  {
    AutocastGuard autocast(device, cfg.train.precision == "bf16");  // forward under autocast, backward outside
    out = forward();
  }
  optimizer.zero_grad();
  if (sync) sync->begin(double(out.count) / double(global_count));  // this rank's share of the global batch
  out.loss.backward();
  if (sync) sync->finish();
  if (cfg.optim.grad_clip > 0) clip_grad_norm(parameters, cfg.optim.grad_clip);  // on the device, no sync
  fused_adamw_step(optimizer);
  return out;
}

BatchAhead::Batch BatchAhead::take(const data::BatchSource& source, int64_t i, uint64_t seed) {
  if (next_.valid() && index_ == i && seed_ == seed) return next_.get();
  drop();
  return source.training_batch(i, seed);
}

void BatchAhead::start(const data::BatchSource& source, int64_t i, uint64_t seed) {
  drop();
  index_ = i;
  seed_ = seed;
  next_ = std::async(std::launch::async, [&source, i, seed] {
    at::init_num_threads();  // the intra-op thread count set for the run (train.threads), not OpenMP's default
    return source.training_batch(i, seed);
  });
}

void BatchAhead::drop() {
  if (next_.valid()) next_.wait();
  next_ = {};
  index_ = -1;
}

StepDone Run::train_step(int64_t b) {
  // The step's random streams (common/random.h), each fixed by (seed, rank, step): its batch's
  // augmentation and resampling; dropout, drop path and masks (torch's default generator); the
  // RupMoE partitions. Two runs of one seed that differ in their MoE/EWA settings draw the same
  // batches and dropout; each rank draws its own; a run resumed after any step continues exactly.
  const auto seed = static_cast<uint64_t>(cfg.train.seed);
  const auto r = static_cast<uint64_t>(rank), s = static_cast<uint64_t>(step);
  // This rank's share of the global batch, built on the device (resampled there when
  // data.pipeline = resample); else copied page-locked and asynchronously.
  const auto waiting = Clock::now();
  torch::Tensor x, y;
  std::tie(x, y) = ahead.take(*data.train, b, derive_seed(seed, Stream::kData, r, s));
  const double data_ms = std::chrono::duration<double, std::milli>(Clock::now() - waiting).count();
  if (data.train->builds_ahead() && b + 1 < steps_per_epoch)  // the next step's, while this one runs
    ahead.start(*data.train, b + 1, derive_seed(seed, Stream::kData, r, s + 1));
  torch::manual_seed(derive_seed(seed, Stream::kDropout, r, s));
  if (moe_count) moe::seed_partitions(task.model(), derive_seed(seed, Stream::kPartition, r, s));
  const int64_t global_count = data.train->global_batch_size(b);
  x = to_device(x, device);
  y = to_device(y, device);
  lr = lr_at(cfg.optim, step, steps_per_epoch, total_steps, cfg.train.epochs);
  for (size_t g = 0; g < optimizer->param_groups().size(); ++g)
    static_cast<torch::optim::AdamWOptions&>(optimizer->param_groups()[g].options())
        .lr(lr_at(cfg.optim, step, steps_per_epoch, total_steps, cfg.train.epochs, groups[g].lr_scale));
  task.begin_step(step);  // schedules of the task's own (dVAE: KL weight, temperature)
  // The global batch's mean gradient: each rank's mean weighted by its share, summed.
  const StepOutput out = optimization_step(cfg, device, [&] { return task.training_step(x, y); }, *optimizer, parameters,
                                           gradient_sync.get(), global_count);
  ++step;
  // EWA (docs/method.md): the experts of every MoE layer averaged toward each other.
  beta = moe_count > 0 ? moe::share_rate_at(cfg.ewa, step, total_steps) : 0.0;
  if (beta > 0) moe::ewa_average(task.ewa_model(), beta);
  if (group && !float_buffers.empty()) group->broadcast(float_buffers);  // BatchNorm statistics: rank 0's, as DDP
  if (has_ema()) update_ema();
  if (group) group->heartbeat(step);
  pending.add(out, step);  // read back with the others (when a hook needs them), not now
  StepDone done;
  done.batch = b;
  done.samples = out.count;
  done.last_of_epoch = b + 1 == steps_per_epoch;
  done.data_ms = data_ms;
  return done;
}

EvalResult Run::evaluate(data::BatchSource& source) {
  AutocastGuard autocast(device, cfg.train.precision == "bf16");
  if (!has_ema()) return task.evaluate(source);
  swap_ema();  // the EMA's weights in, the raw ones back afterwards (also when evaluation fails)
  struct Back {
    Run& r;
    ~Back() { r.swap_ema(); }
  } back{*this};
  return task.evaluate(source);
}

void Run::update_ema() {
  torch::NoGradGuard no_grad;
  torch::_foreach_lerp_(ema, ema_targets, 1.0 - cfg.train.ema_decay);  // ema + (1 - d) (w - ema)
}

void Run::swap_ema() {
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < ema.size(); ++i) {
    auto raw = ema_targets[i].clone();
    ema_targets[i].copy_(ema[i]);
    ema[i].copy_(raw);
  }
}

Checkpoint Run::checkpoint(int64_t epochs_done, const nlohmann::json& where) const {
  auto ckpt = make_checkpoint(task.model(), optimizer.get(), cfg.json, step, epochs_done);
  ckpt.class_names = data.class_names;
  ckpt.progress = where;
  if (has_ema()) {
    ckpt.model_train = ckpt.model;
    for (size_t i = 0; i < ema.size(); ++i) ckpt.model[ema_names[i]] = ema[i].detach().cpu();
  }
  return ckpt;
}

std::string Run::weights_label() const {
  return has_ema() ? "EMA weights (decay " + fmt("%.6g", cfg.train.ema_decay) + "), " : "";
}

EpochRecord Run::evaluate_epoch(bool evaluate_splits) {
  sums = job_sums(sums);  // the epoch's training loss and accuracy over every rank's samples
  EpochRecord e;
  e.record = {{"type", "epoch"},
              {"epoch", epoch + 1},
              {"step", step},
              {"train_loss", sums.loss / double(std::max<int64_t>(1, sums.seen))}};
  e.line = "epoch " + std::to_string(epoch + 1) + " done: train loss " + fmt("%.4f", e.record["train_loss"].get<double>());
  if (sums.has_accuracy) {
    e.record["train_acc"] = double(sums.correct) / double(std::max<int64_t>(1, sums.seen));
    e.line += " acc " + fmt("%.4f", e.record["train_acc"].get<double>());
  }
  if (!evaluate_splits) return e;
  result.test = evaluate(*data.test);
  e.record["test"] = result.test.json;
  e.line += " | test " + result.test.text;
  e.best_test = result.test.score > best_test;
  if (e.best_test) {
    best_test = result.test.score;
    best_test_epoch = epoch + 1;
    best_test_json = result.test.json;
    best_test_text = result.test.text;
  }
  if (data.val) {
    result.val = evaluate(*data.val);
    e.record["val"] = result.val.json;
    e.line += " | val " + result.val.text;
    e.best_val = result.val.score > best_val;
    if (e.best_val) {
      best_val = result.val.score;
      result.best_val_epoch = epoch + 1;
    }
  }
  return e;
}

EpochSums Run::job_sums(const EpochSums& mine) const {
  EpochSums job = mine;
  if (!group) return job;
  std::vector<torch::Tensor> t = {torch::tensor({mine.loss, double(mine.correct), double(mine.seen)}, torch::kDouble)};
  group->allreduce_sum(t);
  job.loss = t[0][0].item<double>();
  job.correct = static_cast<int64_t>(t[0][1].item<double>());
  job.seen = static_cast<int64_t>(t[0][2].item<double>());
  return job;
}

int Run::agreed_stop() const {
  const int sig = stop_signal();
  if (!group) return sig;
  std::vector<torch::Tensor> t = {torch::tensor({sig ? 1.0 : 0.0, sig == SIGTERM ? 1.0 : 0.0}, torch::kDouble)};
  group->allreduce_sum(t);
  if (t[0][0].item<double>() == 0) return 0;
  return t[0][1].item<double>() > 0 ? SIGTERM : SIGINT;
}

nlohmann::json Run::progress(int64_t position, const EpochSums& s) const {
  nlohmann::json p = {{"position", position}};
  if (position > 0)
    p.update({{"epoch_loss", s.loss}, {"epoch_correct", s.correct}, {"epoch_seen", s.seen}, {"has_accuracy", s.has_accuracy}});
  if (std::isfinite(best_val)) p.update({{"best_val", best_val}, {"best_val_epoch", result.best_val_epoch}});
  if (std::isfinite(best_test))
    p.update({{"best_test", best_test}, {"best_test_epoch", best_test_epoch}, {"best_test_record", best_test_json},
              {"best_test_text", best_test_text}});
  return p;
}

nlohmann::json Run::distributed_summary() {
  // Identical optimizer and EWA steps on identical gradients keep every rank's weights equal.
  const double diff = group->max_difference(task.model().parameters());
  const int64_t steps_run = std::max<int64_t>(1, step - steps_at_start);
  const double comm_ms = 1000.0 * (group->comm_seconds() - comm_at_start) / double(steps_run);
  report("processes: " + std::to_string(world) + " ranks; weights " +
         (diff == 0 ? std::string("bit-identical across ranks") : "differ across ranks by up to " + fmt("%.3g", diff)) +
         "; gradient all-reduce waited for " + fmt("%.1f", comm_ms) + " ms/step after backward (rank 0)");
  return {{"world_size", world}, {"launcher", group->env().source}, {"backend", group->backend()},
          {"gradient_allreduce_ms_per_step", comm_ms}, {"overlap_allreduce", cfg.train.overlap_allreduce},
          {"gradient_buckets", gradient_sync->num_buckets()}, {"max_weight_difference_between_ranks", diff}};
}

}  // namespace ewa::train
