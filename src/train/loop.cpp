#include "train/loop.h"

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
#include "common/signals.h"
#include "models/classifier.h"
#include "moe/ewa.h"
#include "train/checkpoint.h"
#include "train/fused_adamw.h"
#include "train/schedule.h"
#include "viz/plot.h"

namespace ewa::train {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

std::string fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

std::string duration_text(double seconds) {
  const int64_t s = static_cast<int64_t>(seconds + 0.5);
  char b[32];
  std::snprintf(b, sizeof b, "%lld:%02lld:%02lld", (long long)(s / 3600), (long long)(s / 60 % 60), (long long)(s % 60));
  return b;
}

// A well-mixed seed for (seed, rank, step) (splitmix64 over the three), so that no two ranks or
// steps share a random stream.
uint64_t stream_seed(uint64_t seed, int64_t rank, int64_t step) {
  uint64_t h = seed;
  for (const uint64_t v : {uint64_t(rank), uint64_t(step)}) {
    h += 0x9e3779b97f4a7c15ull + v;
    h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
    h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
    h ^= h >> 31;
  }
  return h;
}

// The running sums of the epoch in progress (for its summary line and log record).
struct EpochSums {
  double loss = 0;
  int64_t correct = 0, seen = 0;
  bool has_accuracy = false;
};

// The losses and correct counts of the steps not yet read back from the device. Reading a GPU
// scalar waits for every kernel queued before it, so the loop reads the steps together: every
// train.log_every steps, before a checkpoint and with the epoch's last step (whose progress line
// always prints). The sums come out as
// a read after every step would give them (same values, same order).
class PendingSteps {
 public:
  void add(const StepOutput& out, int64_t step) {
    losses_.push_back(out.loss.detach());
    if (out.correct.defined()) correct_.push_back(out.correct.detach());
    counts_.push_back(out.count);
    steps_.push_back(step);
  }
  // Adds the pending steps to `sums` and `window_loss`; fails at the first non-finite loss.
  void flush(EpochSums& sums, double& window_loss) {
    if (losses_.empty()) return;
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
      window_loss += l[i];
    }
    losses_.clear();
    correct_.clear();
    counts_.clear();
    steps_.clear();
  }

 private:
  std::vector<torch::Tensor> losses_, correct_;
  std::vector<int64_t> counts_, steps_;
};

std::unique_ptr<torch::optim::AdamW> make_optimizer(const std::vector<ParamGroup>& groups, const OptimConfig& o) {
  auto base = torch::optim::AdamWOptions(o.lr).betas({o.beta1, o.beta2}).weight_decay(o.weight_decay);
  std::vector<torch::optim::OptimizerParamGroup> torch_groups;
  for (const auto& g : groups)
    torch_groups.emplace_back(
        g.params, std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(base).weight_decay(
                      g.weight_decay ? o.weight_decay : 0.0)));
  return std::make_unique<torch::optim::AdamW>(std::move(torch_groups), base);
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

LoopResult run_training(const Config& cfg, Task& task, data::TaskData& data, const TrainOptions& options,
                        const Reporter& report_all, torch::Device device) {
  const auto t_start = Clock::now();
  LoopResult result;
  result.run_dir = (fs::path(cfg.train.runs_dir) / cfg.name).string();
  const std::string dir = result.run_dir;
  const std::string last_path = dir + "/last.pt", best_path = dir + "/best.pt";
  // Several processes: rank 0 reports and writes; every rank trains on its share of each batch.
  dist::Group* const group = options.group && options.group->size() > 1 ? options.group.get() : nullptr;
  const bool main_rank = !group || group->is_main();
  const int64_t world = group ? group->size() : 1, rank = group ? group->rank() : 0;
  const Reporter report = [&](const std::string& line) {
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
  const auto groups = task.parameter_groups();
  if (groups.empty()) fail("nothing to train: every parameter is frozen");
  auto optimizer = make_optimizer(groups, cfg.optim);
  const std::vector<torch::Tensor> parameters = model.parameters();

  data::BatchSource& batches = *data.train;
  batches.place(device, rank, world);
  data.test->place(device);
  if (data.val) data.val->place(device);
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
  const int64_t total_steps = steps_per_epoch * cfg.train.epochs;
  const std::string eval_label = task.eval_label();

  int64_t step = 0, start_epoch = 0, start_position = 0;
  double best_val = -INFINITY;
  // The best test score over the epochs: the official runs' "best" (selected on the test set).
  double best_test = -INFINITY;
  int64_t best_test_epoch = 0;
  nlohmann::json best_test_json;
  std::string best_test_text;
  EpochSums resumed_sums;
  if (!options.resume.empty()) {
    auto ckpt = read_checkpoint(options.resume);
    load_model_state(model, ckpt, options.resume);
    load_training_state(*optimizer, ckpt, options.resume);
    step = ckpt.step;
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
      fail("checkpoint " + options.resume + ": field 'progress' has a value of the wrong type");
    }
    if (start_position < 0 || start_position > steps_per_epoch || step != start_epoch * steps_per_epoch + start_position)
      fail("checkpoint " + options.resume + ": stopped at step " + std::to_string(step) + " = batch " +
           std::to_string(start_position) + " of epoch " + std::to_string(start_epoch + 1) + ", which does not fit " +
           std::to_string(steps_per_epoch) + " batches per epoch (data.batch_size or the dataset changed)");
    report("resumed from " + options.resume + " at epoch " + std::to_string(start_epoch) +
           (start_position ? " + " + std::to_string(start_position) + " batches" : "") + ", step " + std::to_string(step));
  }
  if (group) {
    // Every rank starts from rank 0's weights and buffers (the same seed gives the same ones;
    // this makes sure of it).
    std::vector<torch::Tensor> state;
    for (const auto& p : model.parameters()) state.push_back(p.data());
    for (const auto& b : model.buffers()) state.push_back(b.data());
    group->broadcast(state);
  }
  if (main_rank) write_text_atomically(dir + "/config.json", cfg.json.dump(2) + "\n");

  // Start-up table of the resolved settings.
  const auto moe_count = moe::moe_layers(model).size();
  int64_t trainable = 0, total = 0;
  for (const auto& p : model.parameters()) {
    total += p.numel();
    if (p.requires_grad()) trainable += p.numel();
  }
  std::ostringstream head;
  head << "run        " << dir << "\n"
       << "data       " << data.description << ": train " << data.train->size() << ", val "
       << (data.val ? data.val->size() : 0) << ", test " << data.test->size() << ", " << data.num_classes << " classes"
       << (data.num_points ? ", " + std::to_string(data.num_points) + " points x " + std::to_string(data.in_chans) + " channels" : "")
       << "; evaluation: " << eval_label << "\n"
       << "model      " << task.describe_model() << ", " << trainable << " training parameters"
       << (trainable != total ? " (" + std::to_string(total - trainable) + " frozen)" : "") << "\n"
       << "ffn        " << mlp_kind_name(cfg.moe.kind) << " in " << moe_count << " blocks, N=" << cfg.moe.num_experts
       << "; EWA " << (cfg.ewa.enabled && moe_count ? "on" : "off") << " (share rate " << cfg.ewa.share_rate << ", "
       << cfg.ewa.schedule << (cfg.ewa.until_step >= 0 ? ", until step " + std::to_string(cfg.ewa.until_step) : "") << ")\n"
       << "optimizer  AdamW lr=" << cfg.optim.lr << " wd=" << cfg.optim.weight_decay << " warmup=" << cfg.optim.warmup_epochs
       << " epochs"
       << (cfg.optim.schedule == "timm_epoch"
               ? " from " + fmt("%.3g", cfg.optim.warmup_lr_init) + ", cosine over " +
                     std::to_string(cfg.optim.cosine_epochs > 0 ? cfg.optim.cosine_epochs : cfg.train.epochs) +
                     " epochs to " + fmt("%.3g", cfg.optim.min_lr) + ", stepped per epoch (timm)"
               : ", cosine to " + fmt("%.3g", cfg.optim.min_lr) + " per step")
       << ", label smoothing " << cfg.optim.label_smoothing
       << (cfg.finetune.layer_decay < 1 ? ", layer decay " + fmt("%.3g", cfg.finetune.layer_decay) : "") << "\n"
       << "schedule   " << cfg.train.epochs << " epochs x " << steps_per_epoch << " steps, batch " << cfg.data.batch_size
       << (cfg.data.drop_last && batches.size() % cfg.data.batch_size ? " (last partial batch dropped)" : "")
       << ", seed " << cfg.train.seed << ", device " << device << ", threads " << at::get_num_threads() << ", "
       << precision_description(cfg.train.precision, device);
  std::unique_ptr<dist::GradientSync> gradient_sync;
  if (group) {
    gradient_sync = std::make_unique<dist::GradientSync>(*group, model.parameters(), cfg.train.overlap_allreduce,
                                                         cfg.train.bucket_mb << 20);
    head << "\nprocesses  " << world << " ranks (" << group->env().source << ", " << group->backend() << ", rendezvous " << group->env().master_addr << ":"
         << group->env().master_port << "); each takes its share of every global batch of " << cfg.data.batch_size << "; gradients in "
         << gradient_sync->num_buckets() << " buckets of " << cfg.train.bucket_mb << " MiB, all-reduced "
         << (cfg.train.overlap_allreduce ? "during backward" : "after backward");
  }
  for (const auto& note : data.notes) head << "\n" << note;
  report(head.str());
  if (cfg.moe.kind == MlpKind::Routed && cfg.ewa.enabled && moe_count)
    report("warning: EWA is on (ewa.enabled defaults to true) with moe.kind = routed: it will average the "
           "learned-gate experts toward each other after every step. The paper's routed-MoE baseline has EWA off: "
           "set ewa.enabled=false for it.");

  const std::string log_path = dir + "/log.jsonl";
  auto window_start = Clock::now();
  int64_t window_steps = 0, window_samples = 0;
  double window_loss = 0;
  const auto train_start = Clock::now();
  const int64_t steps_at_start = step;
  const bool bf16 = cfg.train.precision == "bf16";
  // Forward passes (training and evaluation) under the configured autocast; backward outside it.
  const auto evaluate = [&](data::BatchSource& source) {
    AutocastGuard autocast(device, bf16);
    return task.evaluate(source);
  };

  double comm_at_start = group ? group->comm_seconds() : 0;
  std::vector<torch::Tensor> float_buffers;  // running statistics; step counters agree on every rank anyway
  for (const auto& b : model.buffers())
    if (b.is_floating_point()) float_buffers.push_back(b.data());
  install_stop_handlers();
  // Where the run stands, as a checkpoint's "progress" (see checkpoint.h).
  const auto progress = [&](int64_t position, const EpochSums& sums) {
    nlohmann::json p = {{"position", position}};
    if (position > 0)
      p.update({{"epoch_loss", sums.loss}, {"epoch_correct", sums.correct}, {"epoch_seen", sums.seen},
                {"has_accuracy", sums.has_accuracy}});
    if (std::isfinite(best_val)) p.update({{"best_val", best_val}, {"best_val_epoch", result.best_val_epoch}});
    if (std::isfinite(best_test))
      p.update({{"best_test", best_test}, {"best_test_epoch", best_test_epoch}, {"best_test_record", best_test_json},
                {"best_test_text", best_test_text}});
    return p;
  };
  const auto save_last = [&](int64_t epochs_done, const nlohmann::json& where) {
    auto ckpt = make_checkpoint(model, optimizer.get(), cfg.json, step, epochs_done);
    ckpt.class_names = data.class_names;
    ckpt.progress = where;
    save_checkpoint(last_path, ckpt);
    return ckpt;
  };
  // Running sums over every rank's samples (a collective: every rank calls it at the same step).
  const auto job_sums = [&](const EpochSums& mine) {
    EpochSums job = mine;
    if (!group) return job;
    std::vector<torch::Tensor> t = {torch::tensor({mine.loss, double(mine.correct), double(mine.seen)}, torch::kDouble)};
    group->allreduce_sum(t);
    job.loss = t[0][0].item<double>();
    job.correct = static_cast<int64_t>(t[0][1].item<double>());
    job.seen = static_cast<int64_t>(t[0][2].item<double>());
    return job;
  };
  // A stop requested on any rank stops every rank after the same step.
  const auto agreed_stop = [&]() -> int {
    int sig = stop_signal();
    if (!group) return sig;
    std::vector<torch::Tensor> t = {torch::tensor({sig ? 1.0 : 0.0, sig == SIGTERM ? 1.0 : 0.0}, torch::kDouble)};
    group->allreduce_sum(t);
    if (t[0][0].item<double>() == 0) return 0;
    return t[0][1].item<double>() > 0 ? SIGTERM : SIGINT;
  };
  // After the checkpoint of a stop: rank 0 says how to continue, every rank ends with the signal.
  const auto stop = [&](int sig, const std::string& after) {
    throw Interrupted(sig, !main_rank ? std::string() : "stopped by " + signal_name(sig) + " after " + after +
                                                            "; its state is in " + last_path +
                                                            ": run the same command with --resume " + last_path +
                                                            " to continue");
  };
  for (int64_t epoch = start_epoch; epoch < cfg.train.epochs; ++epoch) {
    task.set_training();
    batches.start_epoch(epoch);
    const int64_t first_batch = epoch == start_epoch ? start_position : 0;
    // A checkpoint holds the job's sums: rank 0 carries them on, the other ranks add their own.
    EpochSums sums = first_batch > 0 && main_rank ? resumed_sums : EpochSums{};
    PendingSteps pending;
    for (int64_t b = first_batch; b < steps_per_epoch; ++b) {
      // Several ranks: each draws its own RUP partitions, dropout and augmentation, from a stream
      // fixed by (seed, rank, step), so a run resumed after any step continues exactly (one
      // process restores its generator from the checkpoint instead).
      if (group) torch::manual_seed(stream_seed(static_cast<uint64_t>(cfg.train.seed), rank, step));
      // This rank's share of the global batch, built on the device (resampled there when
      // data.pipeline = resample).
      auto [x, y] = batches.batch(b, data::View::Training);
      const int64_t global_count = batches.global_batch_size(b);
      x = to_device(x, device);  // (a no-op for a batch built there; else page-locked and asynchronous)
      y = to_device(y, device);
      const double lr = lr_at(cfg.optim, step, steps_per_epoch, total_steps, cfg.train.epochs);
      for (size_t g = 0; g < optimizer->param_groups().size(); ++g)
        static_cast<torch::optim::AdamWOptions&>(optimizer->param_groups()[g].options())
            .lr(lr_at(cfg.optim, step, steps_per_epoch, total_steps, cfg.train.epochs, groups[g].lr_scale));

      StepOutput out;
      {
        AutocastGuard autocast(device, bf16);
        out = task.training_step(x, y);
      }
      optimizer->zero_grad();
      // The global batch's mean gradient: each rank's mean weighted by its share, summed.
      if (gradient_sync) gradient_sync->begin(double(out.count) / double(global_count));
      out.loss.backward();
      if (gradient_sync) gradient_sync->finish();
      if (cfg.optim.grad_clip > 0) clip_grad_norm(parameters, cfg.optim.grad_clip);  // on the device, no sync
      fused_adamw_step(*optimizer);
      ++step;
      const double beta = moe_count > 0 ? moe::share_rate_at(cfg.ewa, step, total_steps) : 0.0;
      if (beta > 0) moe::ewa_average(model, beta);
      if (group && !float_buffers.empty()) group->broadcast(float_buffers);  // BatchNorm statistics: rank 0's, as DDP

      if (group) group->heartbeat(step);
      pending.add(out, step);  // read back with the others below, not now
      ++window_steps;
      window_samples += out.count;

      if (step % cfg.train.log_every == 0 || b + 1 == steps_per_epoch) {
        pending.flush(sums, window_loss);
        if (group) {  // the logged loss and sample count are those of the whole job
          std::vector<torch::Tensor> t = {torch::tensor({window_loss, double(window_samples)}, torch::kDouble)};
          group->allreduce_sum(t);
          window_loss = t[0][0].item<double>() / double(world);
          window_samples = static_cast<int64_t>(t[0][1].item<double>());
        }
        const double secs = std::chrono::duration<double>(Clock::now() - window_start).count();
        const double ms = 1000.0 * secs / double(window_steps);
        const double sps = double(window_samples) / std::max(secs, 1e-9);
        const double done = double(step - steps_at_start);
        const double elapsed = std::chrono::duration<double>(Clock::now() - train_start).count();
        const double eta = done > 0 ? elapsed / done * double(total_steps - step) : 0.0;
        const double mean_loss = window_loss / double(window_steps);
        report("epoch " + std::to_string(epoch + 1) + "/" + std::to_string(cfg.train.epochs) + " step " +
               std::to_string(step) + "/" + std::to_string(total_steps) + " loss " + fmt("%.4f", mean_loss) + " lr " +
               fmt("%.2e", lr) + " beta " + fmt("%.3f", beta) + " " + fmt("%.1f", ms) + " ms/step " + fmt("%.0f", sps) +
               " samples/s ETA " + duration_text(eta));
        if (main_rank)
          append_line(log_path, nlohmann::json{{"type", "step"}, {"epoch", epoch + 1}, {"step", step}, {"loss", mean_loss},
                                             {"lr", lr}, {"share_rate", beta}, {"ms_per_step", ms}, {"samples_per_s", sps}}
                                  .dump());
        window_start = Clock::now();
        window_steps = window_samples = 0;
        window_loss = 0;
      }

      // Mid-epoch checkpoints: every train.checkpoint_every steps, and on SIGINT / SIGTERM, after
      // which the run stops (the epoch-end checkpoint below covers the last batch otherwise).
      const int sig = agreed_stop();
      const bool periodic = cfg.train.checkpoint_every > 0 && step % cfg.train.checkpoint_every == 0;
      if (sig || (periodic && b + 1 < steps_per_epoch)) {
        pending.flush(sums, window_loss);
        const EpochSums job = job_sums(sums);
        if (main_rank) save_last(epoch, progress(b + 1, job));
        if (sig)
          stop(sig, "step " + std::to_string(step) + " (epoch " + std::to_string(epoch + 1) + ", batch " +
                        std::to_string(b + 1) + " of " + std::to_string(steps_per_epoch) + ")");
      }
    }

    sums = job_sums(sums);  // the epoch's training loss and accuracy over every rank's samples
    // End of epoch: evaluate, log, checkpoint.
    result.test = evaluate(*data.test);
    nlohmann::json rec = {{"type", "epoch"},
                          {"epoch", epoch + 1},
                          {"step", step},
                          {"train_loss", sums.loss / double(std::max<int64_t>(1, sums.seen))},
                          {"test", result.test.json}};
    std::string line = "epoch " + std::to_string(epoch + 1) + " done: train loss " + fmt("%.4f", rec["train_loss"].get<double>());
    if (sums.has_accuracy) {
      rec["train_acc"] = double(sums.correct) / double(std::max<int64_t>(1, sums.seen));
      line += " acc " + fmt("%.4f", rec["train_acc"].get<double>());
    }
    line += " | test " + result.test.text;
    const bool is_best_test = result.test.score > best_test;
    if (is_best_test) {
      best_test = result.test.score;
      best_test_epoch = epoch + 1;
      best_test_json = result.test.json;
      best_test_text = result.test.text;
    }
    bool is_best = false;
    if (data.val) {
      result.val = evaluate(*data.val);
      rec["val"] = result.val.json;
      line += " | val " + result.val.text;
      is_best = result.val.score > best_val;
      if (is_best) {
        best_val = result.val.score;
        result.best_val_epoch = epoch + 1;
      }
    }
    if (main_rank) {
      append_line(log_path, rec.dump());
      report(line);
      const auto ckpt = save_last(epoch + 1, progress(0, {}));
      if (is_best) save_checkpoint(best_path, ckpt);
      if (is_best_test && cfg.eval.save_best_on_test) save_checkpoint(dir + "/best_on_test.pt", ckpt);
    }
    if (const int sig = agreed_stop(); sig && epoch + 1 < cfg.train.epochs)
      stop(sig, "epoch " + std::to_string(epoch + 1) + " (step " + std::to_string(step) + ")");
  }

  result.steps = step;
  if (start_epoch >= cfg.train.epochs) result.test = evaluate(*data.test);
  nlohmann::json dist_json;
  if (group) {
    // Identical optimizer and EWA steps on identical gradients keep every rank's weights equal.
    std::vector<torch::Tensor> params;
    for (const auto& p : model.parameters()) params.push_back(p);
    const double diff = group->max_difference(params);
    const int64_t steps_run = std::max<int64_t>(1, step - steps_at_start);
    const double comm_ms = 1000.0 * (group->comm_seconds() - comm_at_start) / double(steps_run);
    dist_json = {{"world_size", world}, {"launcher", group->env().source}, {"backend", group->backend()},
                 {"gradient_allreduce_ms_per_step", comm_ms}, {"overlap_allreduce", cfg.train.overlap_allreduce},
                 {"gradient_buckets", gradient_sync->num_buckets()}, {"max_weight_difference_between_ranks", diff}};
    report("processes: " + std::to_string(world) + " ranks; weights " +
           (diff == 0 ? std::string("bit-identical across ranks") : "differ across ranks by up to " + fmt("%.3g", diff)) +
           "; gradient all-reduce waited for " + fmt("%.1f", comm_ms) + " ms/step after backward (rank 0)");
    if (!main_rank) return result;
  }
  task.finish(dir, report);
  result.seconds = std::chrono::duration<double>(Clock::now() - t_start).count();
  nlohmann::json metrics = {{"name", cfg.name},
                            {"final_epoch", cfg.train.epochs},
                            {"steps", step},
                            {"seconds", result.seconds},
                            {"test", result.test.detail},
                            {"evaluation", "final epoch, " + eval_label}};
  if (data.val) {
    metrics["val"] = result.val.json;
    metrics["best_val_epoch"] = result.best_val_epoch;
    metrics["best_val_score"] = best_val;
  }
  // Every figure with its protocol: the final epoch (ewa's report), the best epoch on the test
  // set (what the official runs report), the official vote when run.
  nlohmann::json protocols = {{"final", {{"epoch", cfg.train.epochs}, {"label", "final epoch, " + eval_label}, {"test", result.test.json}}}};
  if (std::isfinite(best_test))
    protocols["best_on_test"] = {{"epoch", best_test_epoch},
                                 {"label", "best epoch selected on the test set (as the official runs report; optimistic), " + eval_label},
                                 {"test", best_test_json}};
  protocols.update(task.extra_protocols());
  metrics["protocols"] = protocols;
  metrics.update(task.extra_metrics());
  if (group) metrics["distributed"] = dist_json;
  write_text_atomically(dir + "/metrics.json", metrics.dump(2) + "\n");
  if (viz::built_with_cairo()) {
    try {  // a plot that cannot be drawn must not fail a finished run
      std::string names;
      for (const auto& f : viz::plot_run(dir)) names += (names.empty() ? "" : ", ") + fs::path(f).filename().string();
      report("plots: " + dir + "/plots/ (" + names + ")");
    } catch (const std::exception& e) {
      report(std::string("plots not written: ") + e.what());
    }
  }
  report("done in " + duration_text(result.seconds) + ": final test " + result.test.text + " (" +
         std::to_string(data.test->size()) + " samples, final epoch, " + eval_label + "); run directory " + dir);
  if (std::isfinite(best_test))
    report("best on test: " + best_test_text + " at epoch " + std::to_string(best_test_epoch) + " of " +
           std::to_string(cfg.train.epochs) + " (selected on the test set: optimistic; the official fine-tuning runs report it)");
  return result;
}

}  // namespace ewa::train
