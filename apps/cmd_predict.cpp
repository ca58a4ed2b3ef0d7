// ewa predict: top-k classes of a trained (dense, MoE, converted or imported) point classifier on
// the user's own point files.
#include <cstdio>
#include <filesystem>

#include "apps/commands.h"
#include "common/error.h"
#include "common/fs.h"
#include "config/model_kinds.h"
#include "infer/load.h"
#include "infer/predict.h"
#include "train/setup.h"

namespace ewa::app {
namespace {

struct Args {
    std::string checkpoint, config;
    std::vector<std::string> inputs, set;
    infer::PredictOptions options;
    ProtocolArgs protocol;
    bool json = false, force = false;
    std::string category, output;  // part segmentation
};

// A point_seg checkpoint: every point of every file gets a part.
void predict_parts(const Args& a, const io::StateDict& weights, const Config& config) {
  refuse_protocol_for_parts(a.protocol, a.checkpoint);
  auto seg = load_point_segmenter(a.checkpoint, weights, config);
  const auto files = infer::expand_point_inputs(a.inputs);
  if (files.empty()) fail("predict: no point files found in the given folders");
  const std::string out =
      a.output.empty() ? (std::filesystem::path(a.checkpoint).parent_path() / "segmentation").string() : a.output;
  // Every input its own outputs, none of them an input, none replaced without --force: checked
  // before anything is computed or written.
  const auto stems = infer::segmentation_output_stems(a.inputs, files, out);
  std::vector<PlannedOutput> planned;
  for (size_t i = 0; i < files.size(); ++i) {
    planned.push_back({stems[i] + ".ply", files[i]});
    planned.push_back({stems[i] + ".json", files[i]});
  }
  std::vector<std::string> reads = files;
  reads.push_back(a.checkpoint);
  check_outputs(planned, reads, a.force, "--output");
  const auto segs = infer::segment_point_files(*seg.model, seg.cfg, files, category_option(a.category), seg.naming, seg.device);
  int64_t failed = 0;
  for (size_t i = 0; i < segs.size(); ++i) {
    const auto& s = segs[i];
    if (!s.error.empty()) {
      ++failed;
      std::fprintf(stderr, "ewa: error: %s\n", s.error.c_str());
      continue;
    }
    const std::string ply = infer::write_segmentation(stems[i], s, seg.naming);
    auto summary = infer::segmentation_summary(s, seg.naming);
    summary["ply"] = ply;
    if (a.json) {
      print_line(summary.dump());
      continue;
    }
    std::string line = s.path + ": " + summary["category"].get<std::string>() + ",";
    for (const auto& p : summary["parts"])
      line += " " + p["part"].get<std::string>() + " " + std::to_string(p["points"].get<int64_t>());
    if (s.iou >= 0) {
      char b[48];
      std::snprintf(b, sizeof b, " (mIoU %.4f against the file's labels)", s.iou);
      line += b;
    }
    print_line(line + " -> " + ply);
  }
  if (!a.json)
    print_line(std::to_string(segs.size() - failed) + " of " + std::to_string(segs.size()) +
               " files segmented (every point; prediction restricted to the category) into " + out);
  if (failed > 0) fail(std::to_string(failed) + " of " + std::to_string(segs.size()) + " files could not be segmented (errors above)");
}

// The table (or JSON lines) of `preds`, and the count; fails when a file could not be predicted.
void print_predictions(const std::vector<infer::FilePrediction>& preds, const std::vector<std::string>& class_names,
                       const std::string& label, bool json, bool points) {
  auto name_of = [&](int64_t k) {
    return k < static_cast<int64_t>(class_names.size()) ? class_names[k] : "class_" + std::to_string(k);
  };
  int64_t failed = 0;
  for (const auto& p : preds) {
    if (!p.error.empty()) {
      ++failed;
      std::fprintf(stderr, "ewa: error: %s\n", p.error.c_str());
      if (json) print_line(nlohmann::json{{"file", p.path}, {"error", p.error}}.dump());
      continue;
    }
    if (json) {
      nlohmann::json top = nlohmann::json::array();
      for (const auto& [c, prob] : p.top) top.push_back({{"class", name_of(c)}, {"index", c}, {"probability", prob}});
      nlohmann::json line = {{"file", p.path}, {"top", top}, {"evaluation", label}};
      if (points) line.update({{"points", p.points_read}, {"dropped_nonfinite", p.dropped_nonfinite}, {"upsampled_from", p.upsampled_from}});
      print_line(line.dump());
      continue;
    }
    std::string line = p.path + ":";
    for (const auto& [c, prob] : p.top) {
      char cell[128];
      std::snprintf(cell, sizeof cell, " %s %.3f", name_of(c).c_str(), prob);
      line += cell;
    }
    if (p.dropped_nonfinite > 0) line += " (" + std::to_string(p.dropped_nonfinite) + " non-finite points dropped)";
    if (p.upsampled_from > 0) line += " (upsampled from " + std::to_string(p.upsampled_from) + " points)";
    print_line(line);
  }
  if (!json)
    print_line(std::to_string(preds.size() - failed) + " of " + std::to_string(preds.size()) + " files predicted (" + label + ")");
  if (failed > 0) fail(std::to_string(failed) + " of " + std::to_string(preds.size()) + " files could not be predicted (errors above)");
}

// An image classifier: top-k classes of every image file (as its folder's test split is fed).
void predict_images(const Args& a, const io::StateDict& weights, const Config& config) {
  if (!a.category.empty() || !a.output.empty() || a.force || a.options.upsample)
    fail("--category / --output / --force / --upsample: " + a.checkpoint + " classifies images; they apply to point clouds");
  auto model = infer::load_classifier(config, weights, a.checkpoint).first;
  const auto device = train::select_device(config.train.device);
  model->to(device);
  infer::PredictOptions options = a.options;
  Config cfg = config;
  options.protocol = protocol_from(a.protocol, cfg);
  const auto files = infer::expand_image_inputs(a.inputs);
  if (files.empty()) fail("predict: no image files (.png .jpg .jpeg .bmp) found in the given folders");
  const auto preds = infer::predict_image_files(*model, config, files, options, device);
  print_predictions(preds, weights.class_names, options.protocol.label(), a.json, /*points=*/false);
}

}  // namespace

void add_predict_command(CLI::App& app) {
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("predict", "Classify point files (.txt .xyz .pts .csv .npy .off .obj .pcd .ply) or folders of them; with a part-segmentation "
                                 "checkpoint, label every point; with an image classifier (trained on an image folder), classify "
                                 "image files (.png .jpg .jpeg .bmp) or folders of them");
  cmd->add_option("checkpoint", args->checkpoint, "Classifier weights: an ewa checkpoint, or an official .pth with --config")
      ->required();
  cmd->add_option("inputs", args->inputs, "Point (or image) files and folders (searched recursively)")->required();
  cmd->add_option("-c,--config", args->config, "Model config for files without an ewa config (official checkpoints)");
  cmd->add_option("--set", args->set, "Override a config key (repeatable)");
  cmd->add_option("-k,--top-k", args->options.top_k, "Classes listed per file")->capture_default_str()->check(at_least(1));
  add_protocol_options(cmd, args->protocol, /*repeats=*/false);
  cmd->add_option("--batch-size", args->options.batch_size, "Clouds per forward pass")->capture_default_str()->check(at_least(1));
  cmd->add_flag("--upsample", args->options.upsample,
                "Fill clouds with fewer points than data.num_points up by repeating points (default: refuse them)");
  cmd->add_flag("--json", args->json, "One JSON object per file instead of the table");
  cmd->add_option("--category", args->category,
                  "Part segmentation: the ShapeNetPart category of every file (e.g. Airplane); default: from the labels "
                  "a file carries (a PLY vertex property label, or the last column of a 4- or 7-column text file)");
  cmd->add_option("-o,--output", args->output,
                  "Part segmentation: folder for <file>.ply (points with a label property and part colours) and "
                  "<file>.json (parts and their point counts), the inputs' folders mirrored below it; default: "
                  "segmentation/ beside the checkpoint");
  cmd->add_flag("--force", args->force, "Part segmentation: replace outputs that exist (never an input file)");
  cmd->callback([args] {
    const auto weights = io::read_state_dict(args->checkpoint);
    const Config config = config_for_weights(args->checkpoint, weights, args->config, args->set);
    if (model_kind(config).is_segmenter()) return predict_parts(*args, weights, config);
    if (model_kind(config).input == ModelInput::Images) return predict_images(*args, weights, config);
    if (!args->category.empty() || !args->output.empty() || args->force)
      fail("--category / --output / --force: " + args->checkpoint +
           " is a classifier (it writes no files); they apply to part segmentation (point_seg)");
    const auto clf = load_point_classifier(args->checkpoint, weights, config, "predict classifies point clouds");
    Config cfg = clf.cfg;
    args->options.protocol = protocol_from(args->protocol, cfg);
    args->options.protocol.repeats = 1;  // one vote per file
    const auto files = infer::expand_point_inputs(args->inputs);
    if (files.empty()) fail("predict: no point files found in the given folders");
    const auto preds = infer::predict_point_files(*clf.model, cfg, files, args->options, clf.device);
    print_predictions(preds, clf.class_names, args->options.protocol.label(), args->json, /*points=*/true);
  });
}

}  // namespace ewa::app
