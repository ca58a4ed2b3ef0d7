// The hooks of the training loop (train/run.h) and its start-up table.
#include <cmath>
#include <filesystem>
#include <sstream>

#include "common/error.h"
#include "common/fs.h"
#include "common/precision.h"
#include "common/signals.h"
#include "train/checkpoint.h"
#include "train/run.h"

namespace ewa::train {
namespace fs = std::filesystem;

std::string Run::startup_table() const {
  int64_t trainable = 0, total = 0;
  for (const auto& p : task.model().parameters()) {
    total += p.numel();
    if (p.requires_grad()) trainable += p.numel();
  }
  const auto& o = cfg.optim;
  std::ostringstream head;
  head << "run        " << dir << "\n"
       << "data       " << data.description << ": train " << data.train->size() << ", val "
       << (data.val ? data.val->size() : 0) << ", test " << data.test->size() << ", " << data.num_classes << " classes"
       << (data.num_points ? ", " + std::to_string(data.num_points) + " points x " + std::to_string(data.in_chans) + " channels" : "")
       << "; evaluation: " << weights_label() << task.eval_label()
       << (cfg.eval.every > 1 ? ", every " + std::to_string(cfg.eval.every) + " epochs and after the last" : "")
       << (cfg.data.mixup > 0 || cfg.data.cutmix > 0
               ? "; Mixup " + fmt("%.3g", cfg.data.mixup) + " / CutMix " + fmt("%.3g", cfg.data.cutmix) + " (prob " +
                     fmt("%.3g", cfg.data.mixup_prob) + ", switch " + fmt("%.3g", cfg.data.mixup_switch_prob) + ", soft targets)"
               : "")
       << (cfg.data.reprob > 0 ? "; random erasing " + fmt("%.3g", cfg.data.reprob) + " (" + cfg.data.remode + ")" : "") << "\n"
       << "model      " << task.describe_model() << ", " << trainable << " training parameters"
       << (trainable != total ? " (" + std::to_string(total - trainable) + " frozen)" : "") << "\n"
       << "ffn        " << mlp_kind_name(cfg.moe.kind) << " in " << moe_count << " blocks, N=" << cfg.moe.num_experts
       << "; EWA " << (cfg.ewa.enabled && moe_count ? "on" : "off") << " (share rate " << cfg.ewa.share_rate << ", "
       << cfg.ewa.schedule << (cfg.ewa.until_step >= 0 ? ", until step " + std::to_string(cfg.ewa.until_step) : "") << ")\n"
       << "optimizer  AdamW lr=" << o.lr << " wd=" << o.weight_decay << " warmup=" << o.warmup_epochs << " epochs"
       << (o.schedule == "timm_epoch"
               ? " from " + fmt("%.3g", o.warmup_lr_init) + ", cosine over " +
                     std::to_string(o.cosine_epochs > 0 ? o.cosine_epochs : cfg.train.epochs) + " epochs to " +
                     fmt("%.3g", o.min_lr) + ", stepped per epoch (timm)"
               : ", cosine to " + fmt("%.3g", o.min_lr) + " per step")
       << ", label smoothing " << o.label_smoothing
       << (cfg.finetune.layer_decay < 1 ? ", layer decay " + fmt("%.3g", cfg.finetune.layer_decay) : "") << "\n"
       << "schedule   " << cfg.train.epochs << " epochs x " << steps_per_epoch << " steps, batch " << cfg.data.batch_size
       << (cfg.data.drop_last && data.train->size() % cfg.data.batch_size ? " (last partial batch dropped)" : "")
       << ", seed " << cfg.train.seed << ", device " << device << ", threads " << at::get_num_threads() << ", "
       << precision_description(cfg.train.precision, device);
  if (group)
    head << "\nprocesses  " << world << " ranks (" << group->env().source << ", " << group->backend() << ", rendezvous "
         << group->env().master_addr << ":" << group->env().master_port << "); each takes its share of every global batch of "
         << cfg.data.batch_size << "; gradients in " << gradient_sync->num_buckets() << " buckets of " << cfg.train.bucket_mb
         << " MiB, all-reduced " << (cfg.train.overlap_allreduce ? "during backward" : "after backward");
  for (const auto& note : data.notes) head << "\n" << note;
  return head.str();
}

namespace {

// A progress line every train.log_every steps and with an epoch's last step (loss, lr, share
// rate, speed, ETA), each also a "step" record of log.jsonl; the epoch's line and record.
class ProgressLog : public Hook {
 public:
  void at_start(const Run& r) override { window_start_ = r.train_start; }
  bool needs_read(const Run& r, int64_t) const override { return r.step % r.cfg.train.log_every == 0; }
  void after_step(const Run& r, const StepDone& s) override {
    ++steps_;
    samples_ += s.samples;
    data_ms_ += s.data_ms;
    for (const double l : s.losses_read) loss_ += l;
    if (r.step % r.cfg.train.log_every != 0 && !s.last_of_epoch) return;
    if (r.group) {  // the logged loss and sample count are those of the whole job
      std::vector<torch::Tensor> t = {torch::tensor({loss_, double(samples_)}, torch::kDouble)};
      r.group->allreduce_sum(t);
      loss_ = t[0][0].item<double>() / double(r.world);
      samples_ = static_cast<int64_t>(t[0][1].item<double>());
    }
    const double secs = std::chrono::duration<double>(Clock::now() - window_start_).count();
    const double ms = 1000.0 * secs / double(steps_);
    const double sps = double(samples_) / std::max(secs, 1e-9);
    const double done = double(r.step - r.steps_at_start);
    const double elapsed = std::chrono::duration<double>(Clock::now() - r.train_start).count();
    const double eta = done > 0 ? elapsed / done * double(r.total_steps - r.step) : 0.0;
    const double mean_loss = loss_ / double(steps_);
    const double data_ms = data_ms_ / double(steps_);
    r.report("epoch " + std::to_string(r.epoch + 1) + "/" + std::to_string(r.cfg.train.epochs) + " step " +
             std::to_string(r.step) + "/" + std::to_string(r.total_steps) + " loss " + fmt("%.4f", mean_loss) + " lr " +
             fmt("%.2e", r.lr) + " beta " + fmt("%.3f", r.beta) + " " + fmt("%.1f", ms) + " ms/step " + fmt("%.0f", sps) +
             " samples/s (data wait " + fmt("%.1f", data_ms) + " ms) ETA " + duration_text(eta));
    if (r.main_rank) {
      const nlohmann::json scalars = {{"loss", mean_loss}, {"lr", r.lr}, {"share_rate", r.beta}, {"ms_per_step", ms},
                                      {"samples_per_s", sps}, {"data_wait_ms_per_step", data_ms}};
      nlohmann::json record = {{"type", "step"}, {"epoch", r.epoch + 1}, {"step", r.step}};
      record.update(scalars);
      append_line(r.dir + "/log.jsonl", record.dump());
      if (r.events) {
        r.events->scalars("train/", scalars, r.step);
        r.events->flush();
      }
    }
    window_start_ = Clock::now();
    steps_ = samples_ = 0;
    loss_ = data_ms_ = 0;
  }
  void after_epoch(const Run& r, const EpochRecord& e) override {
    if (!r.main_rank) return;
    append_line(r.dir + "/log.jsonl", e.record.dump());
    if (r.events) {
      r.events->scalar("epoch/train_loss", e.record["train_loss"].get<double>(), r.step);
      if (e.record.contains("train_acc")) r.events->scalar("epoch/train_acc", e.record["train_acc"].get<double>(), r.step);
      for (const char* split : {"test", "val"})
        if (e.record.contains(split)) r.events->scalars(std::string(split) + "/", e.record[split], r.step);
      r.events->flush();
    }
    r.report(e.line);
  }

 private:
  // The steps since the last progress line: their time, count, samples, summed losses and time
  // waited for batches.
  Clock::time_point window_start_;
  int64_t steps_ = 0, samples_ = 0;
  double loss_ = 0, data_ms_ = 0;
};

// last.pt every train.checkpoint_every steps and after every epoch (with best.pt on a better
// validation score and best_on_test.pt when eval.save_best_on_test), written by rank 0; on
// SIGINT / SIGTERM on any rank every rank stops after the same step, once last.pt holds it.
class Checkpointer : public Hook {
 public:
  bool needs_read(const Run& r, int64_t b) const override {
    const bool periodic = r.cfg.train.checkpoint_every > 0 && r.step % r.cfg.train.checkpoint_every == 0;
    return r.stop || (periodic && b + 1 < r.steps_per_epoch);  // the epoch's end covers its last batch
  }
  void after_step(const Run& r, const StepDone& s) override {
    if (!needs_read(r, s.batch)) return;
    const EpochSums job = r.job_sums(r.sums);
    if (r.main_rank) save_last(r, r.epoch, r.progress(s.batch + 1, job));
    if (r.stop)
      stop(r, r.stop, "step " + std::to_string(r.step) + " (epoch " + std::to_string(r.epoch + 1) + ", batch " +
                          std::to_string(s.batch + 1) + " of " + std::to_string(r.steps_per_epoch) + ")");
  }
  void after_epoch(const Run& r, const EpochRecord& e) override {
    if (r.main_rank) {
      const auto ckpt = save_last(r, r.epoch + 1, r.progress(0, {}));
      if (e.best_val || (e.best_test && r.task.best_is_best_on_test())) save_checkpoint(r.best_path, ckpt);
      if (e.best_test && r.cfg.eval.save_best_on_test) save_checkpoint(r.dir + "/best_on_test.pt", ckpt);
    }
    if (r.stop && r.epoch + 1 < r.cfg.train.epochs)
      stop(r, r.stop, "epoch " + std::to_string(r.epoch + 1) + " (step " + std::to_string(r.step) + ")");
  }

 private:
  static Checkpoint save_last(const Run& r, int64_t epochs_done, const nlohmann::json& where) {
    auto ckpt = r.checkpoint(epochs_done, where);
    save_checkpoint(r.last_path, ckpt);
    return ckpt;
  }
  // After the checkpoint of a stop: rank 0 says how to continue, every rank ends with the signal.
  [[noreturn]] static void stop(const Run& r, int sig, const std::string& after) {
    throw Interrupted(sig, !r.main_rank ? std::string()
                                        : "stopped by " + signal_name(sig) + " after " + after + "; its state is in " +
                                              r.last_path + ": run the same command with --resume " + r.last_path +
                                              " to continue");
  }
};

// metrics.json (every figure with the protocol that made it: the final epoch, ewa's report; the
// best epoch on the test set, what the official runs report; the task's own, such as the vote)
// and the closing lines.
class MetricsWriter : public Hook {
 public:
  void at_end(const Run& r, nlohmann::json& metrics) override {
    const std::string eval_label = r.weights_label() + r.task.eval_label();
    metrics.update({{"name", r.cfg.name},
                    {"final_epoch", r.cfg.train.epochs},
                    {"steps", r.step},
                    {"seconds", r.result.seconds},
                    {"test", r.result.test.detail},
                    {"evaluation", "final epoch, " + eval_label}});
    if (r.data.val) {
      metrics["val"] = r.result.val.json;
      metrics["best_val_epoch"] = r.result.best_val_epoch;
      metrics["best_val_score"] = r.best_val;
    }
    nlohmann::json protocols = {
        {"final", {{"epoch", r.cfg.train.epochs}, {"label", "final epoch, " + eval_label}, {"test", r.result.test.json}}}};
    if (std::isfinite(r.best_test))
      protocols["best_on_test"] = {
          {"epoch", r.best_test_epoch},
          {"label", "best epoch selected on the test set (as the official runs report; optimistic), " + eval_label},
          {"test", r.best_test_json}};
    protocols.update(r.task.extra_protocols());
    metrics["protocols"] = protocols;
    metrics.update(r.task.extra_metrics());
    write_text_atomically(r.dir + "/metrics.json", metrics.dump(2) + "\n");
    r.report("done in " + duration_text(r.result.seconds) + ": final test " + r.result.test.text + " (" +
             std::to_string(r.data.test->size()) + " samples, final epoch, " + eval_label + "); run directory " + r.dir);
    if (std::isfinite(r.best_test))
      r.report("best on test: " + r.best_test_text + " at epoch " + std::to_string(r.best_test_epoch) + " of " +
               std::to_string(r.cfg.train.epochs) +
               (r.task.best_is_best_on_test()
                    ? " (selected on the test set, as upstream's ckpt-best: optimistic; best.pt holds it)"
                    : " (selected on the test set: optimistic; the official fine-tuning runs report it)"));
  }
};

}  // namespace

std::unique_ptr<Hook> progress_log_hook() { return std::make_unique<ProgressLog>(); }
std::unique_ptr<Hook> checkpoint_hook() { return std::make_unique<Checkpointer>(); }
std::unique_ptr<Hook> metrics_hook() { return std::make_unique<MetricsWriter>(); }

}  // namespace ewa::train
