// ewa show: point files coloured by what a model did (Open3D window, or PNG off-screen);
// ewa gallery: a captioned grid of dataset samples with true and predicted classes.
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "apps/commands.h"
#include "common/error.h"
#include "common/fs.h"
#include "config/model_kinds.h"
#include "datasets/registry.h"
#include "infer/predict.h"
#include "infer/visualize.h"
#include "io/pretrained.h"
#include "train/checkpoint.h"
#include "train/setup.h"

namespace ewa::app {
namespace {

struct ViewArgs {
  viz::Camera camera;
  std::string size = "480x480";
  int columns = 4;
};

void add_view_options(CLI::App* cmd, ViewArgs& v) {
  cmd->add_option("--view", v.camera.view, "Camera direction: front, side, top or iso")->capture_default_str();
  cmd->add_option("--up", v.camera.up, "The clouds' up axis: y (ModelNet40, ShapeNet) or z (scans)")->capture_default_str();
  cmd->add_option("--zoom", v.camera.zoom, "Open3D zoom (smaller = closer)")->capture_default_str();
  cmd->add_option("--point-size", v.camera.point_size, "Point size in pixels")->capture_default_str();
  cmd->add_option("--size", v.size, "Image size of one cloud, WIDTHxHEIGHT")->capture_default_str();
  cmd->add_option("--columns", v.columns, "Clouds per row of a grid image")->capture_default_str()->check(CLI::Range(1, 64));
}

void parse_size(ViewArgs& v) {
  int w = 0, h = 0;
  char extra = 0;
  if (std::sscanf(v.size.c_str(), "%dx%d%c", &w, &h, &extra) != 2) fail("--size: expected WIDTHxHEIGHT such as 480x480, got '" + v.size + "'");
  v.camera.width = w, v.camera.height = h;
  viz::check_camera(v.camera);
}

struct ShowArgs {
  std::string checkpoint, config, png, color = "class", category;
  std::vector<std::string> inputs, set;
  bool upsample = false, force = false, default_png = false;
  ViewArgs view;
};

// Prints each scene's caption and renders them: a PNG (--png, or no display) or a window each.
void render_scenes(const ShowArgs& args, const std::vector<infer::Scene>& scenes, const std::vector<std::string>& errors,
                   int64_t files_given) {
  for (const auto& e : errors) std::fprintf(stderr, "ewa: error: %s\n", e.c_str());
  for (const auto& s : scenes) {
    std::string line = s.path + ":";
    for (size_t i = 1; i < s.caption.size(); ++i) line += (i > 1 ? "; " : " ") + s.caption[i];
    print_line(line);
  }
  if (!scenes.empty()) {
    const std::string& png = args.png;
    if (args.default_png) print_line("no display: rendering off-screen into " + png + " (choose the file with --png)");
    if (!png.empty()) {
      const std::string note = viz::ensure_display();
      if (!note.empty()) print_line(note);
      infer::write_scenes_png(png, scenes, args.view.camera, args.view.columns,
                              scenes.size() > 1 ? args.checkpoint + ", coloured by " + args.color : "");
      print_line("wrote " + png);
    } else {
      for (const auto& s : scenes)
        viz::show_window(infer::scene_clouds(s, args.view.camera), args.view.camera, "ewa show: " + s.path);
    }
  }
  if (!errors.empty())
    fail(std::to_string(errors.size()) + " of " + std::to_string(files_given) + " files could not be shown (errors above)");
}

}  // namespace

void add_show_command(CLI::App& app) {
  auto args = std::make_shared<ShowArgs>();
  auto* cmd = app.add_subcommand("show", "Show point files coloured by what a model did with them: an Open3D window, or a PNG "
                                         "rendered off-screen (--png, or when there is no display)");
  cmd->add_option("checkpoint", args->checkpoint, "A classifier (as for predict), a part segmenter (point_seg), a Point-MAE pretraining "
                                                 "checkpoint, or a Point-BERT tokenizer (point_bert_dvae: input | reconstruction) or "
                                                 "stage-2 checkpoint (point_bert: masked patches | predicted tokens)")
      ->required();
  cmd->add_option("inputs", args->inputs, "Point files and folders (searched recursively)")->required();
  cmd->add_option("--color", args->color,
                  "class (predicted), patches (FPS centres and their kNN groups), attention (class token, last block), "
                  "experts (routed MoE), mae (pretraining: visible | masked | reconstruction), parts (part segmentation, "
                  "with a legend; the default for a point_seg checkpoint), plain")
      ->capture_default_str();
  cmd->add_option("--category", args->category,
                  "--color parts: the ShapeNetPart category of every file; default: from the labels a file carries");
  cmd->add_option("--png", args->png, "Render off-screen into this PNG (a grid when there are several files)");
  cmd->add_option("-c,--config", args->config, "Model config for files without an ewa config (official checkpoints)");
  cmd->add_option("--set", args->set, "Override a config key (repeatable)");
  cmd->add_flag("--upsample", args->upsample, "Fill clouds with fewer points than data.num_points up by repeating points");
  cmd->add_flag("--force", args->force, "Replace the PNG when it exists (it may never be one of the inputs)");
  add_view_options(cmd, args->view);
  cmd->callback([args] {
    parse_size(args->view);
    const char* display = std::getenv("DISPLAY");
    if (args->png.empty() && !(display && *display)) args->png = "ewa_show.png", args->default_png = true;
    if (!args->png.empty()) {  // checked before anything is read or drawn
      std::vector<std::string> reads = args->inputs;
      reads.push_back(args->checkpoint);
      check_outputs({{args->png, args->checkpoint}}, reads, args->force, "--png");
    }
    const auto weights = io::read_state_dict(args->checkpoint);
    Config cfg = config_for_weights(args->checkpoint, weights, args->config, args->set);
    std::vector<infer::Scene> scenes;
    std::vector<std::string> errors;
    int64_t files_given = 0;
    const ModelKind& kind = model_kind(cfg);
    if (kind.show_views.empty()) fail(args->checkpoint + ": a " + kind.name + " checkpoint: " + kind.no_show);
    if (kind.is_segmenter() || args->color == "parts") {
      if (!kind.is_segmenter()) fail("--color parts: " + args->checkpoint + " is not a part-segmentation checkpoint");
      if (args->color != "parts" && args->color != "class") fail("--color: a part-segmentation checkpoint is shown with --color parts");
      auto seg = load_point_segmenter(args->checkpoint, weights, cfg);
      const auto files = infer::expand_point_inputs(args->inputs);
      if (files.empty()) fail("show: no point files found in the given folders");
      files_given = static_cast<int64_t>(files.size());
      const auto segs = infer::segment_point_files(*seg.model, seg.cfg, files, category_option(args->category), seg.naming, seg.device);
      for (const auto& s : segs)
        if (!s.error.empty()) errors.push_back(s.error);
      scenes = infer::segmentation_scenes(segs, seg.naming);
      args->color = "parts";
      return render_scenes(*args, scenes, errors, files_given);
    }
    if (!args->category.empty()) fail("--category: applies to part-segmentation checkpoints; " + args->checkpoint + " is a " + cfg.model.name);
    if (kind.task == ModelTask::PretrainDvae || kind.task == ModelTask::PretrainBert) {  // Point-BERT's two stages
      const bool dvae = kind.task == ModelTask::PretrainDvae;
      if (args->color != "class" && args->color != "plain")
        fail("--color: " + args->checkpoint + " is a " + kind.name + " checkpoint, shown as " + kind.show_views[0] +
             ": leave --color out");
      const auto device = train::select_device(cfg.train.device);
      models::DiscreteVae dvae_model{nullptr};
      models::PointBert bert_model{nullptr};
      io::LoadOptions load;
      load.own_layout = !dvae;
      if (dvae) {
        dvae_model = models::DiscreteVae(models::dvae_options(cfg));
        io::load_pretrained(*dvae_model, weights, load, args->checkpoint);
        dvae_model->to(device);
      } else {
        bert_model = models::PointBert(cfg, models::dvae_options(cfg));
        io::load_pretrained(*bert_model, weights, load, args->checkpoint);
        bert_model->to(device);
      }
      const auto files = infer::expand_point_inputs(args->inputs);
      if (files.empty()) fail("show: no point files found in the given folders");
      const auto read = infer::for_each_point_batch(files, cfg, args->upsample, 16, [&](const torch::Tensor& x, const std::vector<size_t>& idx) {
        std::vector<std::string> names;
        for (auto i : idx) names.push_back(files[i]);
        auto s = dvae ? infer::dvae_scenes(*dvae_model, x, names, device) : infer::bert_scenes(*bert_model, x, names, device);
        scenes.insert(scenes.end(), s.begin(), s.end());
      });
      for (const auto& r : read)
        if (!r.error.empty()) errors.push_back(r.error);
      args->color = dvae ? "dVAE reconstruction" : "masked-token prediction";
      return render_scenes(*args, scenes, errors, static_cast<int64_t>(files.size()));
    }
    const bool mae = kind.task == ModelTask::PretrainMae;
    if (mae != (args->color == "mae"))
      fail(mae ? "--color: " + args->checkpoint + " is a Point-MAE pretraining checkpoint: use --color mae"
               : "--color mae: " + args->checkpoint + " is not a Point-MAE pretraining checkpoint");
    PointClassifier classifier;
    models::PointMae mae_model{nullptr};
    torch::Device device = torch::kCPU;
    if (mae) {
      mae_model = models::PointMae(cfg);
      io::LoadOptions own;  // ours or Point-MAE's pretrain.pth: the module's own names
      own.own_layout = true;
      io::load_pretrained(*mae_model, weights, own, args->checkpoint);
      device = train::select_device(cfg.train.device);
      mae_model->to(device);
    } else {
      classifier = load_point_classifier(args->checkpoint, weights, cfg,
                                         "shows point-cloud models (point_transformer, point_mae)");
      cfg = classifier.cfg;
      device = classifier.device;
    }

    const auto files = infer::expand_point_inputs(args->inputs);
    if (files.empty()) fail("show: no point files found in the given folders");
    files_given = static_cast<int64_t>(files.size());
    const auto read = infer::for_each_point_batch(
        files, cfg, args->upsample, 16, [&](const torch::Tensor& x, const std::vector<size_t>& idx) {
          std::vector<std::string> names;
          for (auto i : idx) names.push_back(files[i]);
          auto s = mae ? infer::mae_scenes(*mae_model, x, names, device)
                       : infer::classifier_scenes(*classifier.points, x, names, classifier.class_names, args->color, device);
          scenes.insert(scenes.end(), s.begin(), s.end());
        });
    for (const auto& r : read)
      if (!r.error.empty()) errors.push_back(r.error);
    render_scenes(*args, scenes, errors, files_given);
  });
}

void add_gallery_command(CLI::App& app) {
  struct Args {
    std::string checkpoint, config, out, split = "test";
    std::vector<std::string> set;
    int64_t count = 16;
    bool force = false;
    ViewArgs view;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("gallery", "A grid image of dataset samples with the true and predicted class under each "
                                            "(wrong ones marked red)");
  cmd->add_option("checkpoint", args->checkpoint, "A classifier of point clouds or images (ewa checkpoint, or an official file with --config)")->required();
  add_split_option(cmd, args->split);
  cmd->add_option("-n,--count", args->count, "Samples, evenly spaced over the split")->capture_default_str()->check(CLI::Range(1, 400));
  cmd->add_option("-o,--output", args->out, "Output PNG (default: <checkpoint dir>/gallery_<split>.png)");
  cmd->add_option("-c,--config", args->config, "Model and data config for files without an ewa config");
  cmd->add_option("--set", args->set, "Override a config key, e.g. --set data.root=... (repeatable)");
  cmd->add_flag("--force", args->force, "Replace the output PNG when it exists");
  args->view.size = "240x240";
  args->view.camera.point_size = 3;
  add_view_options(cmd, args->view);
  cmd->callback([args] {
    parse_size(args->view);
    const auto weights = io::read_state_dict(args->checkpoint);
    const Config config = config_for_weights(args->checkpoint, weights, args->config, args->set);
    const std::string out = args->out.empty()
                                ? (std::filesystem::path(args->checkpoint).parent_path() / ("gallery_" + args->split + ".png")).string()
                                : args->out;
    check_output(out, args->checkpoint, args->force, "--output");
    if (model_kind(config).input == ModelInput::Images && model_kind(config).is_classifier()) {  // no rendering: tiles of pixels
      auto model = infer::load_classifier(config, weights, args->checkpoint).first;
      const auto device = train::select_device(config.train.device);
      model->to(device);
      auto r = infer::write_image_gallery(*model, config, datasets::load_task, args->split, args->count, args->view.columns, out, device);
      print_line("wrote " + out + ": " + std::to_string(r.shown) + " " + args->split + " images, " + std::to_string(r.wrong) +
                 " wrong (marked red)");
      return;
    }
    const std::string note = viz::ensure_display();
    if (!note.empty()) print_line(note);
    if (model_kind(config).is_segmenter()) {  // part segmentation: coloured by predicted part, shape mIoU under each
      auto seg = load_point_segmenter(args->checkpoint, weights, config);
      auto r = infer::write_segmentation_gallery(*seg.model, seg.cfg, datasets::load_task, args->split, args->count,
                                                 args->view.columns, args->view.camera, out, seg.device);
      print_line("wrote " + out + ": " + std::to_string(r.shown) + " " + args->split + " shapes, " + std::to_string(r.wrong) +
                 " below mIoU 0.7 (marked red)");
      return;
    }
    auto c = load_point_classifier(args->checkpoint, weights, config, "shows point-cloud models (point_transformer, point_mae)");
    auto r = infer::write_gallery(*c.points, c.cfg, datasets::load_task, args->split, args->count, args->view.columns, args->view.camera, out, c.device);
    print_line("wrote " + out + ": " + std::to_string(r.shown) + " " + args->split + " samples, " + std::to_string(r.wrong) +
               " wrong (marked red)");
  });
}

}  // namespace ewa::app
