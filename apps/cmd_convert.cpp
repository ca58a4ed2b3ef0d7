// ewa convert: collapse every MoE layer of a checkpoint into one dense FFN (expert means); an
// imported official / timm file becomes an ewa checkpoint the same way.
#include <cstdio>

#include "apps/commands.h"
#include "common/error.h"
#include "common/fs.h"
#include "config/model_kinds.h"
#include "infer/load.h"
#include "models/registry.h"
#include "moe/ewa.h"
#include "train/checkpoint.h"

namespace ewa::app {

void add_convert_command(CLI::App& app) {
  struct Args {
    std::string input, output, config;
    std::vector<std::string> set;
    bool force = false;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("convert", "Turn a checkpoint with RupMoE layers into the plain dense model (same eval outputs)");
  cmd->add_option("checkpoint", args->input,
                  "Input checkpoint with MoE layers, or an official Point-MAE / Point-BERT classifier .pth (with --config)")
      ->required();
  cmd->add_option("-o,--output", args->output, "Output file for the dense checkpoint")->required();
  cmd->add_option("-c,--config", args->config, "Model config for files without an ewa config (official checkpoints)");
  cmd->add_option("--set", args->set, "Override a config key (repeatable)");
  cmd->add_flag("--force", args->force, "Replace --output when it exists (it may never be the input itself)");
  cmd->callback([args] {
    check_output(args->output, args->input, args->force, "--output");
    const auto weights = io::read_state_dict(args->input);
    const std::string src = "checkpoint " + args->input;
    Config cfg = config_for_weights(args->input, weights, args->config, args->set);
    if (cfg.moe.kind == MlpKind::Routed)
      fail(src + ": moe.kind is 'routed': a routed MoE's output depends on its learned gate, so it has no exact dense "
                 "form; only 'rup' (EWA) models convert");
    nlohmann::json dense_json = cfg.json;
    dense_json["moe"]["kind"] = "dense";
    Config dense_cfg = parse_config(dense_json, src);
    // The two models and their eval outputs on a random input: a classifier's logits, or a
    // segmenter's part logits for random categories.
    std::shared_ptr<torch::nn::Module> moe_model, dense_model;
    std::function<torch::Tensor(torch::nn::Module&, const torch::Tensor&)> forward;
    const bool seg = model_kind(cfg).is_segmenter();
    if (seg) {
      auto loaded = infer::load_segmenter(cfg, weights, args->input);
      if (weights.config.is_null()) print_line(loaded.second.table());
      moe_model = loaded.first.ptr();
      dense_model = models::PointSeg(dense_cfg).ptr();
      auto category = torch::randint(cfg.model.num_categories, {8}, torch::kLong);
      forward = [category](torch::nn::Module& m, const torch::Tensor& x) {
        return dynamic_cast<models::PointSegImpl&>(m).forward(x, category);
      };
    } else {
      auto loaded = infer::load_classifier(cfg, weights, args->input);
      if (weights.config.is_null()) print_line(loaded.second.table());
      moe_model = loaded.first;
      dense_model = models::build_model(dense_cfg);
      forward = [](torch::nn::Module& m, const torch::Tensor& x) {
        return dynamic_cast<models::ClassifierImpl&>(m).forward(x);
      };
    }
    train::Checkpoint out;
    out.kind = "dense";
    out.config = dense_json;
    out.model = moe::collapse_to_dense(*moe_model);
    out.step = weights.step;
    out.epoch = weights.epoch;
    out.class_names = weights.class_names;
    train::load_model_state(*dense_model, out, args->output);  // checks keys and shapes
    dense_model->eval();

    // Self-check on random inputs: the dense model must reproduce the MoE model in eval mode.
    torch::NoGradGuard guard;
    auto x = models::random_input(cfg, 8);
    const double diff = (forward(*moe_model, x) - forward(*dense_model, x)).abs().max().item<double>();
    if (diff > 1e-4) fail("convert: dense model differs from the MoE model by " + std::to_string(diff) + " (bug)");
    train::save_checkpoint(args->output, out);
    int64_t before = 0, after = 0;
    for (const auto& p : moe_model->parameters()) before += p.numel();
    for (const auto& p : dense_model->parameters()) after += p.numel();
    char line[512];
    std::snprintf(line, sizeof line,
                  "converted %zu MoE layers: %lld -> %lld parameters; max |logit difference| on random inputs %.2e; wrote %s",
                  moe::moe_layers(*moe_model).size(), (long long)before, (long long)after, diff, args->output.c_str());
    print_line(line);
  });
}

}  // namespace ewa::app
