#include "bench/resample.h"

#include <algorithm>
#include <chrono>
#include <sstream>

#include <torch/cuda.h>

#include "bench/train_step.h"
#include "common/error.h"
#include "data/point_sampling.h"
#include "datasets/point_datasets.h"
#include "train/setup.h"

namespace ewa::bench {

std::vector<ResampleRow> bench_resample(const Config& base, const ResampleOptions& o) {
  struct Setting {
    const char* name;
    int64_t stored, num_points, groups;
  };
  const std::vector<Setting> all = {{"mn40-1k", 8192, 1024, 64}, {"mn40-8k", 8192, 8192, 512},
                                    {"scan-pb", 2048, 1024, 64}, {"scan-pm", 2048, 2048, 128}};
  const torch::Device device = train::select_device(base.train.device);
  std::vector<ResampleRow> rows;
  for (const auto& s : all) {
    if (!o.settings.empty() && std::find(o.settings.begin(), o.settings.end(), s.name) == o.settings.end()) continue;
    // fps_points 0: the official table.
    const Config cfg = base.with({{"data.num_points", s.num_points}, {"data.fps_points", 0}, {"model.num_groups", s.groups}});
    ResampleRow row{s.name, s.stored, std::min(data::official_fps_points(s.num_points), s.stored), s.num_points, s.groups};
    // Clouds of points on a unit sphere's surface (any clouds do: FPS's cost depends on the sizes).
    torch::manual_seed(0);
    auto clouds = torch::randn({o.batch_size, s.stored, 3});
    clouds = (clouds / clouds.norm(2, 2, true)).to(device);
    row.resample_ms = median_ms(o.repeats, device.is_cuda(), [&] {
      return data::augment_points(data::resample_for_training(clouds, s.num_points, data::fps_points_of(cfg.data)), cfg.data);
    });
    row.step_ms = dense_step_ms(cfg, o.batch_size, o.step_repeats);
    rows.push_back(row);
  }
  if (rows.empty()) fail("--settings: none of mn40-1k, mn40-8k, scan-pb, scan-pm chosen");
  return rows;
}

std::string resample_markdown(const std::vector<ResampleRow>& rows) {
  std::ostringstream os;
  os << "| setting | stored points | FPS to | model points | groups | resample + augment ms | dense training step ms | share of the step |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|\n";
  for (const auto& r : rows) {
    char line[256];
    std::snprintf(line, sizeof line, "| %s | %lld | %lld | %lld | %lld | %.2f | %.1f | %.2f%% |\n", r.setting.c_str(),
                  (long long)r.stored, (long long)r.fps_points, (long long)r.num_points, (long long)r.groups, r.resample_ms,
                  r.step_ms, 100.0 * r.resample_ms / r.step_ms);
    os << line;
  }
  return os.str();
}

}  // namespace ewa::bench
