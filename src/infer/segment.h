// Part segmentation of users' own point files and of dataset samples (`ewa predict`, `ewa show
// --color parts`, `ewa gallery` on a point_seg checkpoint). Every file goes through the one point
// reader (io/point_io.h); non-finite points are dropped and counted; every point of the file is
// segmented (normalised into the unit sphere as the dataset readers do; no resampling), with the
// prediction restricted to the shape's category, which comes from --category or from the labels
// the file carries (io::read_point_labels), as the official evaluation takes it from the ground
// truth. Parts are coloured by their index within the category (the palette's first colours) and
// named by the checkpoint's part names.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/config.h"
#include "data/batch_source.h"
#include "infer/visualize.h"
#include "models/point_seg.h"

namespace ewa::infer {

struct PartSegmentation {
  std::string path, error;           // error non-empty: the file could not be segmented
  torch::Tensor points;              // float [P, 3] as read (non-finite points dropped)
  torch::Tensor parts;               // int64 [P] predicted global part ids
  torch::Tensor truth;               // int64 [P] the file's own labels, undefined when it has none
  int64_t category = -1;
  double iou = -1;                   // shape mIoU against `truth` (-1 without it)
  int64_t dropped_nonfinite = 0;
};

// What names the outputs: the checkpoint's part names (50) and the categories.
struct PartNaming {
  std::vector<std::string> part_names;   // empty: "part <id>"
  std::vector<int64_t> part_category;    // category of every part id
  std::vector<std::string> category_names;
  std::string part(int64_t id) const;
};
// The ShapeNetPart naming with the given part names (a checkpoint's class_names).
PartNaming shapenet_part_naming(const std::vector<std::string>& part_names);

// Segments `files` with `model` (eval mode set here). `category` >= 0 applies to every file;
// -1 takes each file's category from its labels (a file without labels then gets an error
// asking for --category).
std::vector<PartSegmentation> segment_point_files(models::PointSegImpl& model, const Config& cfg,
                                                  const std::vector<std::string>& files, int64_t category,
                                                  const PartNaming& naming, torch::Device device);

// Colours of the parts [P] (uint8 [P, 3]): palette colour of the part's index within its category.
torch::Tensor part_colors(const torch::Tensor& parts, const PartNaming& naming);
// The palette colour's name of index i within a category (blue, orange, green, ...), for legends.
std::string part_color_name(int64_t index);

// {"file", "category", "points", "dropped_nonfinite", "parts": [{"part", "id", "color", "points"}],
//  "miou" (when the file has labels), "evaluation"}.
nlohmann::json segmentation_summary(const PartSegmentation& s, const PartNaming& naming);
// The ShapeNetPart category the released layouts give a file by its folders:
// <synset>/points/<id>.pts (the v0 layout, whose labels are then read from
// <synset>/points_label/<id>.seg) or <synset>/<id>.txt (v0_normal), with <synset> one of the 16
// of synsetoffset2category.txt; -1 for any other path. predict and show take a file's category
// from --category, its labels or this, and refuse when two of them disagree.
int64_t layout_category(const std::string& path);

// Where ewa predict writes each of `files` (expand_point_inputs of `inputs`) under `out`: the
// file's path relative to the folder that holds every input (a folder argument counts as itself,
// a file as its folder), without its extension; the outputs are <that>.ply and <that>.json. So a
// folder is mirrored under `out`, and mug/0001.txt and plane/0001.txt get mug/0001.* and
// plane/0001.*. Check them with check_outputs before writing (ewa predict does).
std::vector<std::string> segmentation_output_stems(const std::vector<std::string>& inputs,
                                                   const std::vector<std::string>& files, const std::string& out);
// Writes <stem>.ply (the points with the vertex property "label" = predicted part id and the part
// colours) and <stem>.json (segmentation_summary), creating the folders. Returns the PLY path.
std::string write_segmentation(const std::string& stem, const PartSegmentation& s, const PartNaming& naming);

// One scene per segmentation, coloured by part, captioned with the legend ("blue wing 412, ...").
std::vector<Scene> segmentation_scenes(const std::vector<PartSegmentation>& segs, const PartNaming& naming);

// `count` samples of a dataset split (evenly spaced over it) segmented by `model`, coloured by
// predicted part, captioned with category and shape mIoU (below 0.7 marked), as a grid PNG.
GalleryResult write_segmentation_gallery(models::PointSegImpl& model, const Config& cfg, const data::TaskLoader& load_data,
                                         const std::string& split, int64_t count, int columns, const viz::Camera& camera,
                                         const std::string& out, torch::Device device);

}  // namespace ewa::infer
