// Point clouds drawn with Open3D's Visualizer: an interactive window, or off-screen into an
// image. Open3D (as Debian builds it) renders only through an X server, so without a display
// ensure_display() starts a private Xvfb (from the xvfb package) for the process and says so.
// Built only with Open3D (EWA_HAS_OPEN3D); without it every call throws ewa::Error saying so.
#pragma once
#include <array>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "viz/plot.h"

namespace ewa::viz {

bool built_with_rendering();

// A coloured cloud: points [P, 3] and colours [P, 3] in [0, 1]; `sphere_radius` > 0 draws every
// point as a small sphere instead (patch centres).
struct ColoredCloud {
  torch::Tensor points, colors;
  double sphere_radius = 0;
};

// A fixed camera so that images are reproducible.
struct Camera {
  std::string view = "iso";  // front (looking along -z), side (along -x), top (along -y), iso
  std::string up = "y";      // the cloud's up axis: y (ModelNet40, ShapeNet) or z (scans)
  double zoom = 0.8;         // Open3D's zoom: 1 fits the bounding box, smaller = closer
  double point_size = 5;     // pixels
  int width = 480, height = 480;
};
// Checks a camera's fields; the error names the option.
void check_camera(const Camera& camera);

// Makes sure an X display exists: DISPLAY set, or a private Xvfb started (and stopped at exit).
// Returns a line saying what was done, empty when a display was already there.
std::string ensure_display();

// Renders clouds with a reused hidden Open3D window.
class Renderer {
 public:
  explicit Renderer(const Camera& camera);
  ~Renderer();
  Renderer(const Renderer&) = delete;
  Renderer& operator=(const Renderer&) = delete;
  Image render(const std::vector<ColoredCloud>& clouds);

 private:
  struct State;
  std::unique_ptr<State> state_;
  Camera camera_;
};

// Opens an interactive window (blocks until it is closed).
void show_window(const std::vector<ColoredCloud>& clouds, const Camera& camera, const std::string& title);

// The camera's direction vectors in cloud coordinates: `front` points from the scene to the eye,
// `right` is the screen's left-to-right direction.
struct CameraAxes {
  std::array<double, 3> front, up, right;
};
CameraAxes camera_axes(const Camera& camera);

// Places groups of clouds ("panels") side by side, left to right on the screen of `camera`,
// `gap` apart, for comparisons in one view.
std::vector<ColoredCloud> side_by_side(const std::vector<std::vector<ColoredCloud>>& panels, const Camera& camera,
                                       double gap = 0.4);

}  // namespace ewa::viz
