// ewa export: a classifier in the official layout (Point-MAE / Point-BERT .pth with
// `base_model`, Conv1d weights [out, in, 1]; or .safetensors), dense (RupMoE layers collapsed).
#include <cstdio>
#include <filesystem>

#include "apps/commands.h"
#include "common/error.h"
#include "common/fs.h"
#include "config/model_kinds.h"
#include "infer/load.h"
#include "io/pretrained.h"
#include "moe/ewa.h"
#include "train/checkpoint.h"

namespace ewa::app {

void add_export_command(CLI::App& app) {
  struct Args {
    std::string input, output, config;
    std::vector<std::string> set;
    bool force = false;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "export", "Write a classifier for the official PyTorch code: .pth ({'base_model': state dict}, load_state_dict "
                "strict=True; a part segmenter: {'model_state_dict': ...} as Point-MAE's segmentation saves it) or "
                ".safetensors; MoE layers are collapsed to the dense model first");
  cmd->add_option("checkpoint", args->input, "ewa checkpoint (last.pt, best.pt, a converted dense.pt) or another weights file")
      ->required();
  cmd->add_option("-o,--output", args->output, "Output: .pth (torch.save layout) or .safetensors")->required();
  cmd->add_option("-c,--config", args->config, "Model config for files without an ewa config");
  cmd->add_option("--set", args->set, "Override a config key (repeatable)");
  cmd->add_flag("--force", args->force, "Replace --output when it exists (it may never be the input itself)");
  cmd->callback([args] {
    std::string ext = std::filesystem::path(args->output).extension().string();
    if (ext != ".pth" && ext != ".pt" && ext != ".safetensors")
      fail("--output " + args->output + ": expected a .pth, .pt or .safetensors file name");
    check_output(args->output, args->input, args->force, "--output");
    const auto weights = io::read_state_dict(args->input);
    Config cfg = config_for_weights(args->input, weights, args->config, args->set);
    const ModelKind& kind = model_kind(cfg);
    if (kind.task == ModelTask::PretrainMae)
      fail(args->input + ": export writes classifiers, segmenters and Point-BERT's pretraining modules; this is a " +
           kind.name + " checkpoint (" + kind.summary + "): fine-tune it into a classifier first");
    if (kind.task == ModelTask::PretrainDvae) {  // Point-BERT's dVAE: {'base_model': ...} as its builder saves it
      if (ext == ".safetensors") fail("--output: a dVAE is exported as .pth (Point-BERT's layout)");
      models::DiscreteVae dvae(models::dvae_options(cfg));
      io::load_pretrained(*dvae, weights, io::LoadOptions{}, args->input);
      const auto official = io::to_official_layout(train::state_dict(*dvae));
      io::write_torch_state_dict(args->output, official, weights.epoch);
      print_line("exported " + std::to_string(official.size()) + " tensors (" + kind.name + ") to " + args->output);
      return;
    }
    if (kind.task == ModelTask::PretrainBert) {  // Point-BERT's stage 2: the whole Point_BERT module, as its builder saves it
      if (ext == ".safetensors") fail("--output: a Point-BERT pretraining module is exported as .pth (Point-BERT's layout)");
      models::PointBert bert(cfg, models::dvae_options(cfg));
      io::LoadOptions own;
      own.own_layout = true;
      io::load_pretrained(*bert, weights, own, args->input);
      const auto official = io::to_official_layout(moe::collapse_to_dense(*bert));
      io::write_torch_state_dict(args->output, official, weights.epoch);
      print_line("exported " + std::to_string(official.size()) + " tensors (point_bert: transformer_q, transformer_k, dvae, queue" +
                 (moe::moe_layers(*bert).empty() ? "" : "; MoE layers collapsed") + ") to " + args->output);
      return;
    }
    if (cfg.moe.kind == MlpKind::Routed && !cfg.moe.blocks.empty())
      fail(args->input + ": moe.kind is 'routed': a routed MoE has no exact dense form, so it cannot be exported");
    // A classifier, or a part segmenter (Point-MAE's segmentation checkpoints keep the state dict
    // under 'model_state_dict').
    const bool seg = kind.is_segmenter();
    std::shared_ptr<torch::nn::Module> model;
    if (seg) {
      model = infer::load_segmenter(cfg, weights, args->input).first.ptr();
    } else {
      model = infer::load_classifier(cfg, weights, args->input).first;
    }
    const auto official = io::to_official_layout(moe::collapse_to_dense(*model));
    if (ext == ".safetensors") {
      io::write_safetensors(args->output, official,
                            {{"format", "pt"}, {"ewa_model", cfg.model.name + "/" + cfg.model.variant},
                             {"ewa_config", cfg.json.dump()}});
    } else {
      io::write_torch_state_dict(args->output, official, weights.epoch, seg ? "model_state_dict" : "base_model");
    }
    char line[512];
    std::snprintf(line, sizeof line, "exported %zu tensors (%s %s, dense%s) to %s", official.size(), cfg.model.name.c_str(),
                  cfg.model.variant.c_str(), moe::moe_layers(*model).empty() ? "" : ", MoE layers collapsed",
                  args->output.c_str());
    print_line(line);
  });
}

}  // namespace ewa::app
