#include "viz/render.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "common/error.h"

#ifdef EWA_HAS_OPEN3D
#include <open3d/geometry/PointCloud.h>
#include <open3d/geometry/TriangleMesh.h>
#include <open3d/utility/Logging.h>
#include <open3d/visualization/visualizer/Visualizer.h>
#endif

namespace ewa::viz {

bool built_with_rendering() {
#ifdef EWA_HAS_OPEN3D
  return true;
#else
  return false;
#endif
}

void check_camera(const Camera& c) {
  if (c.view != "front" && c.view != "side" && c.view != "top" && c.view != "iso")
    fail("--view: expected front, side, top or iso, got '" + c.view + "'");
  if (c.up != "y" && c.up != "z") fail("--up: expected y or z, got '" + c.up + "'");
  if (!(c.zoom > 0 && c.zoom <= 10)) fail("--zoom: expected a number in (0, 10], got " + std::to_string(c.zoom));
  if (!(c.point_size >= 1 && c.point_size <= 50)) fail("--point-size: expected 1 to 50 pixels, got " + std::to_string(c.point_size));
  if (c.width < 64 || c.height < 64 || c.width > 4096 || c.height > 4096)
    fail("--size: expected 64 to 4096 pixels per side, got " + std::to_string(c.width) + "x" + std::to_string(c.height));
}

namespace {
pid_t g_xvfb = 0;
void stop_xvfb() {
  if (g_xvfb > 0) {
    ::kill(g_xvfb, SIGTERM);
    ::waitpid(g_xvfb, nullptr, 0);
    g_xvfb = 0;
  }
}
}  // namespace

std::string ensure_display() {
  const char* d = std::getenv("DISPLAY");
  if ((d && *d) || g_xvfb > 0) return "";
  int fds[2];
  if (::pipe(fds) != 0) fail("cannot start Xvfb: pipe failed");
  const std::string fd = std::to_string(fds[1]);  // before fork: the child only makes async-signal-safe calls
  const pid_t pid = ::fork();
  if (pid < 0) fail("cannot start Xvfb: fork failed");
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);  // never outlive ewa
    ::close(fds[0]);
    const int null = ::open("/dev/null", O_WRONLY);
    if (null >= 0) ::dup2(null, 1), ::dup2(null, 2);
    ::execlp("Xvfb", "Xvfb", "-displayfd", fd.c_str(), "-screen", "0", "2048x2048x24", "-nolisten", "tcp",
             static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(fds[1]);
  // Xvfb writes its display number to the pipe once it accepts connections.
  std::string number;
  pollfd p{fds[0], POLLIN, 0};
  while (::poll(&p, 1, 15000) > 0) {
    char c;
    if (::read(fds[0], &c, 1) != 1 || c == '\n') break;
    number += c;
  }
  ::close(fds[0]);
  if (number.empty()) {
    ::kill(pid, SIGTERM);
    int status = 0;
    ::waitpid(pid, &status, 0);
    fail(std::string("no display (DISPLAY is not set) and Xvfb could not be started") +
         (WIFEXITED(status) && WEXITSTATUS(status) == 127 ? ": Xvfb is not installed (apt-get install xvfb)" : "") +
         "; Open3D renders only through an X server");
  }
  g_xvfb = pid;
  std::atexit(stop_xvfb);
  ::setenv("DISPLAY", (":" + number).c_str(), 1);
  return "no display: rendering off-screen with a private Xvfb on :" + number;
}

CameraAxes camera_axes(const Camera& c) {
  // Directions are written for a y-up cloud; for z-up the same view turns y into z.
  auto oriented = [&](double x, double y, double z) {
    return c.up == "y" ? std::array<double, 3>{x, y, z} : std::array<double, 3>{x, -z, y};
  };
  std::array<double, 3> front = c.view == "front" ? oriented(0, 0, 1)
                                : c.view == "side" ? oriented(1, 0, 0)
                                : c.view == "top"  ? oriented(0, 1, 0)
                                                   : oriented(0.62, 0.45, 0.64);
  const double n = std::sqrt(front[0] * front[0] + front[1] * front[1] + front[2] * front[2]);
  for (auto& v : front) v /= n;
  std::array<double, 3> up = c.view == "top" ? oriented(0, 0, -1) : oriented(0, 1, 0);
  // Orthogonalise up against front, then right = up x front.
  const double d = up[0] * front[0] + up[1] * front[1] + up[2] * front[2];
  for (int k = 0; k < 3; ++k) up[k] -= d * front[k];
  const double un = std::sqrt(up[0] * up[0] + up[1] * up[1] + up[2] * up[2]);
  for (auto& v : up) v /= un;
  std::array<double, 3> right = {up[1] * front[2] - up[2] * front[1], up[2] * front[0] - up[0] * front[2],
                                 up[0] * front[1] - up[1] * front[0]};
  return {front, up, right};
}

#ifdef EWA_HAS_OPEN3D
namespace {
using open3d::geometry::PointCloud;
using open3d::geometry::TriangleMesh;

void add_clouds(open3d::visualization::Visualizer& vis, const std::vector<ColoredCloud>& clouds) {
  for (const auto& cc : clouds) {
    auto pts = cc.points.to(torch::kDouble).contiguous();
    auto col = cc.colors.to(torch::kDouble).clamp(0, 1).contiguous();
    if (pts.dim() != 2 || pts.size(1) != 3 || col.sizes() != pts.sizes()) fail("render: points and colours must both be [P, 3]");
    const auto* p = pts.data_ptr<double>();
    const auto* c = col.data_ptr<double>();
    if (cc.sphere_radius > 0) {
      auto mesh = std::make_shared<TriangleMesh>();
      for (int64_t i = 0; i < pts.size(0); ++i) {
        auto s = TriangleMesh::CreateSphere(cc.sphere_radius, 10);
        s->Translate(Eigen::Vector3d(p[3 * i], p[3 * i + 1], p[3 * i + 2]));
        s->PaintUniformColor(Eigen::Vector3d(c[3 * i], c[3 * i + 1], c[3 * i + 2]));
        *mesh += *s;
      }
      mesh->ComputeVertexNormals();
      vis.AddGeometry(mesh);
    } else {
      auto pc = std::make_shared<PointCloud>();
      pc->points_.resize(pts.size(0));
      pc->colors_.resize(pts.size(0));
      for (int64_t i = 0; i < pts.size(0); ++i) {
        pc->points_[i] = Eigen::Vector3d(p[3 * i], p[3 * i + 1], p[3 * i + 2]);
        pc->colors_[i] = Eigen::Vector3d(c[3 * i], c[3 * i + 1], c[3 * i + 2]);
      }
      vis.AddGeometry(pc);
    }
  }
}

void set_view(open3d::visualization::Visualizer& vis, const Camera& c, const std::vector<ColoredCloud>& clouds) {
  auto& opt = vis.GetRenderOption();
  opt.background_color_ = Eigen::Vector3d(1, 1, 1);
  opt.point_size_ = c.point_size;
  opt.point_show_normal_ = false;
  Eigen::Vector3d lo(INFINITY, INFINITY, INFINITY), hi(-INFINITY, -INFINITY, -INFINITY);
  for (const auto& cc : clouds) {
    if (cc.points.size(0) == 0) continue;
    auto mn = std::get<0>(cc.points.min(0)).to(torch::kDouble), mx = std::get<0>(cc.points.max(0)).to(torch::kDouble);
    for (int k = 0; k < 3; ++k) lo(k) = std::min(lo(k), mn[k].item<double>()), hi(k) = std::max(hi(k), mx[k].item<double>());
  }
  auto& vc = vis.GetViewControl();
  const auto axes = camera_axes(c);
  const Eigen::Vector3d front(axes.front[0], axes.front[1], axes.front[2]), up(axes.up[0], axes.up[1], axes.up[2]);
  if (std::isfinite(lo(0))) vc.SetLookat((lo + hi) / 2);
  vc.SetFront(front);
  vc.SetUp(up);
  vc.ChangeFieldOfView(-90);  // Open3D's narrowest (5 degrees): nearly orthographic, no near-point blow-up
  vc.SetZoom(c.zoom);
}
}  // namespace

struct Renderer::State {
  open3d::visualization::Visualizer vis;
};

Renderer::Renderer(const Camera& camera) : state_(std::make_unique<State>()), camera_(camera) {
  check_camera(camera);
  ensure_display();
  open3d::utility::SetVerbosityLevel(open3d::utility::VerbosityLevel::Error);
  if (!state_->vis.CreateVisualizerWindow("ewa", camera.width, camera.height, 0, 0, /*visible=*/false))
    fail("Open3D could not open an OpenGL window on display " + std::string(std::getenv("DISPLAY") ? std::getenv("DISPLAY") : "?") +
         " (is Mesa's libgl1-mesa-dri installed?)");
}

Renderer::~Renderer() { state_->vis.DestroyVisualizerWindow(); }

Image Renderer::render(const std::vector<ColoredCloud>& clouds) {
  auto& vis = state_->vis;
  vis.ClearGeometries();
  add_clouds(vis, clouds);
  set_view(vis, camera_, clouds);
  vis.PollEvents();
  vis.UpdateRender();
  auto buffer = vis.CaptureScreenFloatBuffer(true);
  if (!buffer || buffer->width_ != camera_.width || buffer->height_ != camera_.height)
    fail("Open3D returned no image of " + std::to_string(camera_.width) + "x" + std::to_string(camera_.height));
  Image img;
  img.width = buffer->width_;
  img.height = buffer->height_;
  img.rgb.resize(static_cast<size_t>(img.width) * img.height * 3);
  for (int y = 0; y < img.height; ++y)
    for (int x = 0; x < img.width; ++x)
      for (int ch = 0; ch < 3; ++ch)
        img.rgb[(static_cast<size_t>(y) * img.width + x) * 3 + ch] =
            static_cast<uint8_t>(std::lround(std::clamp(*buffer->PointerAt<float>(x, y, ch), 0.0f, 1.0f) * 255.0f));
  return img;
}

void show_window(const std::vector<ColoredCloud>& clouds, const Camera& camera, const std::string& title) {
  check_camera(camera);
  open3d::utility::SetVerbosityLevel(open3d::utility::VerbosityLevel::Error);
  open3d::visualization::Visualizer vis;
  if (!vis.CreateVisualizerWindow(title, camera.width, camera.height)) fail("Open3D could not open a window (no usable display)");
  add_clouds(vis, clouds);
  set_view(vis, camera, clouds);
  vis.Run();
  vis.DestroyVisualizerWindow();
}
#else
struct Renderer::State {};
Renderer::Renderer(const Camera& camera) : camera_(camera) {
  fail("ewa was built without Open3D, so clouds cannot be rendered (install libopen3d-dev and reconfigure)");
}
Renderer::~Renderer() = default;
Image Renderer::render(const std::vector<ColoredCloud>&) { return {}; }
void show_window(const std::vector<ColoredCloud>&, const Camera&, const std::string&) {
  fail("ewa was built without Open3D, so clouds cannot be shown (install libopen3d-dev and reconfigure)");
}
#endif

std::vector<ColoredCloud> side_by_side(const std::vector<std::vector<ColoredCloud>>& panels, const Camera& camera,
                                       double gap) {
  const auto axes = camera_axes(camera);
  auto right = torch::tensor({float(axes.right[0]), float(axes.right[1]), float(axes.right[2])});
  std::vector<ColoredCloud> out;
  double cursor = 0;
  for (const auto& panel : panels) {
    // The panel's extent along the screen's right direction.
    double lo = INFINITY, hi = -INFINITY;
    for (const auto& c : panel)
      if (c.points.size(0) > 0) {
        auto along = torch::matmul(c.points.to(torch::kFloat), right);
        lo = std::min(lo, along.min().item<double>() - c.sphere_radius);
        hi = std::max(hi, along.max().item<double>() + c.sphere_radius);
      }
    if (!std::isfinite(lo)) continue;
    const double shift = cursor - lo;
    for (const auto& c : panel) out.push_back({c.points.to(torch::kFloat) + right * shift, c.colors, c.sphere_radius});
    cursor += (hi - lo) + gap;
  }
  return out;
}

}  // namespace ewa::viz
