// What `ewa show` and `ewa gallery` draw: point files or dataset samples coloured by what a model
// did with them (predicted class, patches, the class token's attention, routed experts, or
// Point-MAE's visible / masked / reconstructed patches), rendered with Open3D (viz/render.h) and
// captioned into PNG grids with cairo (viz/plot.h).
#pragma once
#include <string>
#include <vector>

#include "config/config.h"
#include "data/batch_source.h"
#include "models/dvae.h"
#include "models/point_bert.h"
#include "models/point_mae.h"
#include "models/point_transformer.h"
#include "viz/render.h"

namespace ewa::infer {

// Colourings of `ewa show`.
const std::vector<std::string>& color_modes();  // class, patches, attention, experts, mae, parts, plain

// One file's scene and caption, or its error.
struct Scene {
  std::string path, error;
  std::vector<viz::ColoredCloud> clouds;
  // Or groups of clouds drawn side by side on the screen (Point-MAE's view), placed for the camera.
  std::vector<std::vector<viz::ColoredCloud>> panels;
  std::vector<std::string> caption;
  bool wrong = false;  // the true class (from the folder layout) differs from the prediction
  int64_t predicted = -1, truth = -1;
  double probability = 0;  // of the predicted class
};

// The true class of a file from its folder layout: the nearest parent directory named like a
// class (ModelNet40: <class>/<train|test>/<file>); -1 when none is.
int64_t class_from_path(const std::string& path, const std::vector<std::string>& class_names);

// The per-point patch of a cloud: among the groups that contain a point, the one whose centre is
// nearest; -1 for points in no group. points [P, 3], centers [G, 3], index [G, K] -> int64 [P].
torch::Tensor patch_owner(const torch::Tensor& points, const torch::Tensor& centers, const torch::Tensor& index);

// Scenes of a point classifier on model-ready clouds [B, P, C] (named by `paths`).
std::vector<Scene> classifier_scenes(models::PointTransformerImpl& model, const torch::Tensor& clouds,
                                     const std::vector<std::string>& paths, const std::vector<std::string>& class_names,
                                     const std::string& color_by, torch::Device device);

// Point-BERT's tokenizer on clouds [B, P, C] (eval mode, hard codes, Gumbel noise of a fixed
// seed): the input patches (grey) | their reconstruction from the codes (green), side by side;
// the caption gives the CD-L1 and the distinct tokens of the cloud.
std::vector<Scene> dvae_scenes(models::DiscreteVaeImpl& model, const torch::Tensor& clouds, const std::vector<std::string>& paths,
                               torch::Device device);
// Point-BERT's stage 2 on clouds [B, P, C] (eval mode, block masks of a fixed seed): visible
// patches (grey) and masked ones (red) | the masked patches coloured by whether lm_head predicts
// the tokenizer's token (green) or not (orange).
std::vector<Scene> bert_scenes(models::PointBertImpl& model, const torch::Tensor& clouds, const std::vector<std::string>& paths,
                               torch::Device device);

// Point-MAE's view of clouds [B, P, C]: visible patches | masked patches | reconstruction
// (visible grey + predicted points), side by side.
std::vector<Scene> mae_scenes(models::PointMaeImpl& model, const torch::Tensor& clouds, const std::vector<std::string>& paths,
                              torch::Device device);

// What a scene draws with `camera`: its clouds, or its panels side by side.
std::vector<viz::ColoredCloud> scene_clouds(const Scene& scene, const viz::Camera& camera);

// Renders scenes into one PNG: a single scene with its caption, or a grid of `columns`.
void write_scenes_png(const std::string& path, const std::vector<Scene>& scenes, const viz::Camera& camera, int columns,
                      const std::string& title);

struct GalleryResult {
  int64_t shown = 0, wrong = 0;
};
// `count` samples of a dataset split (evenly spaced over it, so that sorted splits show many
// classes) classified by `model`, coloured by predicted class, captioned "true / predicted p",
// wrong ones marked, as a grid PNG.
GalleryResult write_gallery(models::PointTransformerImpl& model, const Config& cfg, const data::TaskLoader& load_data,
                            const std::string& split, int64_t count,
                            int columns, const viz::Camera& camera, const std::string& out, torch::Device device);

// The same for an image classifier, without Open3D: `count` images of the split (evenly spaced)
// as the model sees them (ImageNet's normalisation undone for image folders; other sets
// stretched to their range per image), scaled up by whole pixels to at least 192 pixels a side,
// captioned "true / predicted p", wrong ones marked, as a grid PNG of `columns` (needs cairo).
GalleryResult write_image_gallery(models::ClassifierImpl& model, const Config& cfg, const data::TaskLoader& load_data,
                                  const std::string& split, int64_t count, int columns, const std::string& out,
                                  torch::Device device);

}  // namespace ewa::infer
