// Part segmentation (Point-MAE's ShapeNetPart protocol, docs/protocols.md "Part segmentation"):
// the segmentation Task of the one training loop (train/loop.h); its metrics are eval/parts.h.
#pragma once
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/config.h"
#include "data/batch_source.h"
#include "io/pretrained.h"
#include "models/point_seg.h"
#include "train/loop.h"

namespace ewa::tasks {

// Loads cfg.finetune.init into `model`: a Point-MAE segmentation checkpoint (model_state_dict),
// ours, or a Point-MAE pretraining checkpoint (MAE_encoder.*: the backbone only; the rest starts
// fresh, as upstream's strict=False load).
io::LoadReport init_segmentation(models::PointSegImpl& model, const Config& cfg);

}  // namespace ewa::tasks
