#include "train/trainer.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <sstream>

#include "common/error.h"
#include "common/fs.h"
#include "datasets/image_loader.h"
#include "datasets/point_datasets.h"
#include "models/registry.h"
#include "moe/ewa.h"
#include "train/checkpoint.h"
#include "train/schedule.h"

namespace ewa::train {
namespace F = torch::nn::functional;
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

int64_t count_params(torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}

std::unique_ptr<torch::optim::AdamW> make_optimizer(models::ClassifierImpl& model, const OptimConfig& o) {
  std::vector<torch::Tensor> decay, no_decay;
  for (const auto& p : model.named_parameters())
    (models::uses_weight_decay(p.key(), p.value()) ? decay : no_decay).push_back(p.value());
  auto base = torch::optim::AdamWOptions(o.lr).betas({o.beta1, o.beta2}).weight_decay(o.weight_decay);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, std::make_unique<torch::optim::AdamWOptions>(base));
  groups.emplace_back(no_decay, std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(base).weight_decay(0.0)));
  return std::make_unique<torch::optim::AdamW>(std::move(groups), base);
}

}  // namespace

torch::Device select_device(const std::string& device) {
  if (device == "cpu") return torch::kCPU;
  if (device == "cuda") {
    if (!torch::cuda::is_available()) fail("train.device: 'cuda' requested but no CUDA device is available");
    return torch::kCUDA;
  }
  return torch::cuda::is_available() ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
}

data::TaskData load_task(const Config& cfg) {
  const auto seed = static_cast<uint64_t>(cfg.train.seed);
  return cfg.data.is_point_cloud() ? data::load_point_task(cfg.data, seed) : data::load_image_task(cfg.data, seed);
}

Config resolve_for_dataset(Config cfg, const data::TaskData& task) {
  auto settle = [&](int64_t& field, int64_t actual, const char* key) {
    if (field == 0) {
      field = actual;
      cfg.json["model"][key] = actual;
    } else if (field != actual) {
      fail(std::string("model.") + key + ": config says " + std::to_string(field) + " but dataset " + cfg.data.dataset +
           " has " + std::to_string(actual));
    }
  };
  if (task.img_size > 0) settle(cfg.model.img_size, task.img_size, "img_size");
  settle(cfg.model.in_chans, task.in_chans, "in_chans");
  settle(cfg.model.num_classes, task.num_classes, "num_classes");
  if (task.img_size > 0 && cfg.model.img_size % cfg.model.patch_size != 0)
    fail("model.patch_size: " + std::to_string(cfg.model.patch_size) + " does not divide the image size " +
         std::to_string(cfg.model.img_size));
  return cfg;
}

ClassificationMetrics evaluate(models::ClassifierImpl& model, data::BatchSource& source, int64_t num_classes,
                               torch::Device device, int64_t votes) {
  torch::NoGradGuard guard;
  const bool was_training = model.is_training();
  model.eval();
  auto confusion = torch::zeros({num_classes, num_classes}, torch::kLong);
  double loss_sum = 0;
  for (int64_t i = 0; i < source.num_batches(); ++i) {
    torch::Tensor logits, y;
    for (int64_t v = 0; v < votes; ++v) {
      auto [x, labels] = source.batch(i, /*augment=*/v > 0);
      auto out = model.forward(x.to(device));
      logits = logits.defined() ? logits + out : out;
      y = labels.to(device);
    }
    logits = logits / static_cast<double>(votes);
    loss_sum += F::cross_entropy(logits, y, F::CrossEntropyFuncOptions().reduction(torch::kSum)).item<double>();
    accumulate_confusion(confusion, y, logits.argmax(1));
  }
  model.train(was_training);
  auto m = metrics_from_confusion(confusion);
  m.loss = source.size() > 0 ? loss_sum / double(source.size()) : 0.0;
  return m;
}

TrainResult train_classifier(Config cfg, const TrainOptions& options, const Reporter& report) {
  const auto t_start = Clock::now();
  auto task = load_task(cfg);
  cfg = resolve_for_dataset(cfg, task);
  const torch::Device device = select_device(cfg.train.device);

  TrainResult result;
  result.run_dir = (fs::path(cfg.train.runs_dir) / cfg.name).string();
  const std::string dir = result.run_dir;
  const std::string last_path = dir + "/last.pt", best_path = dir + "/best.pt";
  ensure_writable_dir(dir);
  if (options.resume.empty() && fs::exists(last_path))
    fail("run directory " + dir + " already holds a checkpoint (last.pt): pass --resume to continue it or choose another --name");

  torch::manual_seed(static_cast<uint64_t>(cfg.train.seed));
  auto model = models::build_model(cfg);
  model->to(device);
  auto optimizer = make_optimizer(*model, cfg.optim);

  const int64_t batch_size = cfg.data.batch_size;
  data::BatchSource& batches = *task.train;
  const int64_t steps_per_epoch = batches.num_batches();
  const int64_t votes = cfg.data.votes;
  auto eval_split = [&](data::BatchSource& source) {
    return evaluate(*model, source, task.num_classes, device, votes);
  };
  const std::string eval_label = votes > 1 ? "voting over " + std::to_string(votes) + " passes" : "single pass, no voting";
  const int64_t total_steps = steps_per_epoch * cfg.train.epochs;

  int64_t step = 0, start_epoch = 0;
  double best_val = -1;
  if (!options.resume.empty()) {
    auto ckpt = read_checkpoint(options.resume);
    load_model_state(*model, ckpt, options.resume);
    load_training_state(*optimizer, ckpt, options.resume);
    step = ckpt.step;
    start_epoch = ckpt.epoch;
    report("resumed from " + options.resume + " at epoch " + std::to_string(start_epoch) + ", step " + std::to_string(step));
  }
  write_text_atomically(dir + "/config.json", cfg.json.dump(2) + "\n");

  // Start-up table of the resolved settings.
  const auto moe_count = moe::moe_layers(*model).size();
  std::ostringstream head;
  head << "run        " << dir << "\n"
       << "data       " << task.description << ": train " << task.train->size() << ", val "
       << (task.val ? task.val->size() : 0) << ", test " << task.test->size() << ", " << task.num_classes << " classes"
       << (task.num_points ? ", " + std::to_string(task.num_points) + " points x " + std::to_string(task.in_chans) + " channels" : "")
       << "; evaluation: " << eval_label << "\n"
       << "model      " << cfg.model.name << " D=" << cfg.model.embed_dim << " depth=" << cfg.model.depth
       << " heads=" << cfg.model.num_heads
       << (task.num_points ? " groups=" + std::to_string(cfg.model.num_groups) + "x" + std::to_string(cfg.model.group_size)
                           : " patch=" + std::to_string(cfg.model.patch_size))
       << ", " << count_params(*model) << " training parameters\n"
       << "ffn        " << mlp_kind_name(cfg.moe.kind) << " in " << moe_count << " blocks, N=" << cfg.moe.num_experts
       << "; EWA " << (cfg.ewa.enabled && moe_count ? "on" : "off") << " (share rate " << cfg.ewa.share_rate << ", "
       << cfg.ewa.schedule << (cfg.ewa.until_step >= 0 ? ", until step " + std::to_string(cfg.ewa.until_step) : "") << ")\n"
       << "optimizer  AdamW lr=" << cfg.optim.lr << " wd=" << cfg.optim.weight_decay << " warmup=" << cfg.optim.warmup_epochs
       << " epochs, cosine to " << cfg.optim.min_lr << ", label smoothing " << cfg.optim.label_smoothing << "\n"
       << "schedule   " << cfg.train.epochs << " epochs x " << steps_per_epoch << " steps, batch " << batch_size
       << ", seed " << cfg.train.seed << ", device " << device << ", threads " << at::get_num_threads();
  report(head.str());

  const std::string log_path = dir + "/log.jsonl";
  auto loss_options = F::CrossEntropyFuncOptions().label_smoothing(cfg.optim.label_smoothing);
  auto window_start = Clock::now();
  int64_t window_steps = 0, window_samples = 0;
  double window_loss = 0;
  const auto train_start = Clock::now();
  const int64_t steps_at_start = step;

  for (int64_t epoch = start_epoch; epoch < cfg.train.epochs; ++epoch) {
    model->train();
    batches.start_epoch(epoch);
    double epoch_loss = 0;
    int64_t epoch_correct = 0, epoch_seen = 0;
    for (int64_t b = 0; b < steps_per_epoch; ++b) {
      auto [x, y] = batches.batch(b, /*augment=*/true);
      x = x.to(device);
      y = y.to(device);
      const double lr = lr_at(cfg.optim, step, steps_per_epoch, total_steps);
      for (auto& g : optimizer->param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);

      auto logits = model->forward(x);
      auto loss = F::cross_entropy(logits, y, loss_options);
      if (auto aux = model->aux_loss(); aux.defined() && cfg.moe.aux_loss_weight > 0)
        loss = loss + cfg.moe.aux_loss_weight * aux;
      optimizer->zero_grad();
      loss.backward();
      if (cfg.optim.grad_clip > 0) torch::nn::utils::clip_grad_norm_(model->parameters(), cfg.optim.grad_clip);
      optimizer->step();
      ++step;
      const double beta = moe_count > 0 ? moe::share_rate_at(cfg.ewa, step, total_steps) : 0.0;
      if (beta > 0) moe::ewa_average(*model, beta);

      const double loss_v = loss.item<double>();
      if (!std::isfinite(loss_v)) fail("training diverged: loss is " + std::to_string(loss_v) + " at step " + std::to_string(step));
      epoch_loss += loss_v * double(y.size(0));
      epoch_correct += logits.argmax(1).eq(y).sum().item<int64_t>();
      epoch_seen += y.size(0);
      window_loss += loss_v;
      ++window_steps;
      window_samples += y.size(0);

      if (step % cfg.train.log_every == 0 || b + 1 == steps_per_epoch) {
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
        append_line(log_path, nlohmann::json{{"type", "step"}, {"epoch", epoch + 1}, {"step", step}, {"loss", mean_loss},
                                             {"lr", lr}, {"share_rate", beta}, {"ms_per_step", ms}, {"samples_per_s", sps}}
                                  .dump());
        window_start = Clock::now();
        window_steps = window_samples = 0;
        window_loss = 0;
      }
    }

    // End of epoch: evaluate, log, checkpoint.
    result.test = eval_split(*task.test);
    nlohmann::json rec = {{"type", "epoch"},
                          {"epoch", epoch + 1},
                          {"step", step},
                          {"train_loss", epoch_loss / double(std::max<int64_t>(1, epoch_seen))},
                          {"train_acc", double(epoch_correct) / double(std::max<int64_t>(1, epoch_seen))},
                          {"test", result.test.to_json()}};
    std::string line = "epoch " + std::to_string(epoch + 1) + " done: train loss " +
                       fmt("%.4f", rec["train_loss"].get<double>()) + " acc " + fmt("%.4f", rec["train_acc"].get<double>()) +
                       " | test OA " + fmt("%.4f", result.test.overall_accuracy) + " mAcc " +
                       fmt("%.4f", result.test.mean_class_accuracy);
    bool is_best = false;
    if (task.val) {
      result.val = eval_split(*task.val);
      rec["val"] = result.val.to_json();
      line += " | val OA " + fmt("%.4f", result.val.overall_accuracy);
      is_best = result.val.overall_accuracy > best_val;
      if (is_best) {
        best_val = result.val.overall_accuracy;
        result.best_val_epoch = epoch + 1;
      }
    }
    append_line(log_path, rec.dump());
    report(line);
    auto ckpt = make_checkpoint(*model, optimizer.get(), cfg.json, step, epoch + 1);
    save_checkpoint(last_path, ckpt);
    if (is_best) save_checkpoint(best_path, ckpt);
  }

  result.steps = step;
  result.seconds = std::chrono::duration<double>(Clock::now() - t_start).count();
  if (start_epoch >= cfg.train.epochs) result.test = eval_split(*task.test);
  nlohmann::json metrics = {{"name", cfg.name},
                            {"final_epoch", cfg.train.epochs},
                            {"steps", step},
                            {"seconds", result.seconds},
                            {"test", result.test.to_json(true)},
                            {"evaluation", "final epoch, " + eval_label},
                            {"votes", votes},
                            {"class_names", task.class_names}};
  if (task.val) {
    metrics["val"] = result.val.to_json();
    metrics["best_val_epoch"] = result.best_val_epoch;
    metrics["best_val_oa"] = best_val;
  }
  write_text_atomically(dir + "/metrics.json", metrics.dump(2) + "\n");
  report("done in " + duration_text(result.seconds) + ": final test OA " + fmt("%.4f", result.test.overall_accuracy) +
         " mAcc " + fmt("%.4f", result.test.mean_class_accuracy) + " (" + std::to_string(result.test.count) +
         " samples, final epoch, " + eval_label + "); run directory " + dir);
  return result;
}

}  // namespace ewa::train
