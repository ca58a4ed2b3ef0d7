// Charts and image grids as PNG files, drawn with cairo (libcairo2): the training plots of a run
// directory (`ewa plot`, and at the end of every training run), the confusion matrix, and the
// captioned grids of `ewa gallery`. Built only with cairo (EWA_HAS_CAIRO); without it every
// writer throws ewa::Error saying so and built_with_cairo() is false.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace ewa::viz {

bool built_with_cairo();

// An 8-bit RGB image, rows top to bottom.
struct Image {
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;  // width * height * 3
  const uint8_t* at(int x, int y) const { return rgb.data() + (static_cast<size_t>(y) * width + x) * 3; }
};

// Colours as RGB in [0, 1].
struct Color {
  double r = 0, g = 0, b = 0;
};
// Distinct colours for classes, patches and experts: the 20 colours of the "tab20" palette
// reordered so that the first 10 are tab10's, then evenly spaced hues beyond 20.
Color palette_color(int64_t index);
// A sequential colour map (viridis-like, dark blue -> yellow) for t in [0, 1].
Color heat_color(double t);

struct Series {
  std::string name;
  std::vector<double> x, y;
  bool markers = false;  // draw a dot at every point (few points, e.g. one per epoch)
  std::vector<double> low, high;  // when as long as x: a shaded band from low to high (e.g. mean +- sd)
};

struct Chart {
  std::string title, x_label, y_label;
  std::vector<Series> series;
  bool y_from_zero = false;  // include 0 in the y range
  bool log_y = false;        // logarithmic y axis (positive values only)
};

// Writes the charts stacked vertically into one PNG of `width` x (panel_height * charts) pixels.
void write_charts_png(const std::string& path, const std::vector<Chart>& charts, int width = 900, int panel_height = 320);

// Confusion matrix (rows: true class, columns: predicted), cells coloured by the row-normalised
// rate, counts written in the cells when there are at most 20 classes, class names on both axes.
void write_confusion_png(const std::string& path, const std::vector<std::vector<int64_t>>& counts,
                         const std::vector<std::string>& class_names, const std::string& title);

// Paired figures (`ewa study`): one column per arm, one dot per seed (values[arm][seed]; NaN = no
// figure), a grey line joining the dots of each seed across the arms, and beside each arm its mean
// with the interval intervals[arm] = {mean, low, high}.
void write_paired_png(const std::string& path, const std::string& title, const std::string& y_label,
                      const std::vector<std::string>& arms, const std::vector<std::vector<double>>& values,
                      const std::vector<std::array<double, 3>>& intervals);

// A grid of captioned tiles; a `marked` tile gets a red frame and red caption (wrong predictions).
struct Tile {
  Image image;
  std::vector<std::string> caption;  // lines under the image
  bool marked = false;
};
void write_grid_png(const std::string& path, const std::vector<Tile>& tiles, int columns, const std::string& title);

// Writes an image as PNG (atomically) and reads one back (tests, gallery tiles).
void write_png(const std::string& path, const Image& image);
Image read_png(const std::string& path);

// The plots of a run directory from its log.jsonl and metrics.json, written to <run_dir>/plots/:
// loss.png (training loss over steps, test / val loss per epoch), miou.png (part segmentation: test instance and class mIoU per epoch),
// accuracy.png (train / val / test
// accuracy per epoch; classification runs), schedule.png (learning rate and EWA share rate over
// steps) and confusion.png (final test confusion matrix with class names; classification runs).
// Returns the files written. A missing or malformed log is an error naming the file and line.
std::vector<std::string> plot_run(const std::string& run_dir);

}  // namespace ewa::viz
