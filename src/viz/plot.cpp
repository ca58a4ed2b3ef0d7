#include "viz/plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/fs.h"

#ifdef EWA_HAS_CAIRO
#include <cairo.h>
#endif

namespace ewa::viz {
namespace fs = std::filesystem;

bool built_with_cairo() {
#ifdef EWA_HAS_CAIRO
  return true;
#else
  return false;
#endif
}

Color palette_color(int64_t index) {
  // tab10, then the light halves of tab20.
  static const uint32_t kTab[20] = {0x1f77b4, 0xff7f0e, 0x2ca02c, 0xd62728, 0x9467bd, 0x8c564b, 0xe377c2,
                                    0x7f7f7f, 0xbcbd22, 0x17becf, 0xaec7e8, 0xffbb78, 0x98df8a, 0xff9896,
                                    0xc5b0d5, 0xc49c94, 0xf7b6d2, 0xc7c7c7, 0xdbdb8d, 0x9edae5};
  if (index < 0) index = -index;
  if (index < 20) {
    const uint32_t c = kTab[index];
    return {((c >> 16) & 255) / 255.0, ((c >> 8) & 255) / 255.0, (c & 255) / 255.0};
  }
  // Golden-ratio hues, saturated and mid-bright, beyond the palette.
  const double h = std::fmod(0.11 + 0.618033988749895 * double(index - 20), 1.0) * 6.0;
  const double s = 0.65, v = 0.85, c = v * s, x = c * (1 - std::fabs(std::fmod(h, 2.0) - 1)), m = v - c;
  double r = 0, g = 0, b = 0;
  switch (static_cast<int>(h)) {
    case 0: r = c, g = x; break;
    case 1: r = x, g = c; break;
    case 2: g = c, b = x; break;
    case 3: g = x, b = c; break;
    case 4: r = x, b = c; break;
    default: r = c, b = x; break;
  }
  return {r + m, g + m, b + m};
}

Color heat_color(double t) {
  // Piecewise-linear through viridis' anchor colours.
  static const double kStops[5][3] = {{0.267, 0.005, 0.329}, {0.231, 0.322, 0.545}, {0.129, 0.569, 0.549},
                                      {0.369, 0.788, 0.384}, {0.992, 0.906, 0.145}};
  t = std::clamp(std::isfinite(t) ? t : 0.0, 0.0, 1.0) * 4.0;
  const int i = std::min(3, static_cast<int>(t));
  const double f = t - i;
  return {kStops[i][0] + f * (kStops[i + 1][0] - kStops[i][0]), kStops[i][1] + f * (kStops[i + 1][1] - kStops[i][1]),
          kStops[i][2] + f * (kStops[i + 1][2] - kStops[i][2])};
}

#ifdef EWA_HAS_CAIRO
namespace {

// Owns a cairo image surface and its context.
struct Canvas {
  cairo_surface_t* surface = nullptr;
  cairo_t* cr = nullptr;
  Canvas(int w, int h) {
    surface = cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h);
    cr = cairo_create(surface);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
  }
  ~Canvas() {
    cairo_destroy(cr);
    cairo_surface_destroy(surface);
  }
  Canvas(const Canvas&) = delete;
  Canvas& operator=(const Canvas&) = delete;

  void color(const Color& c) { cairo_set_source_rgb(cr, c.r, c.g, c.b); }
  double text_width(const std::string& s) {
    cairo_text_extents_t e;
    cairo_text_extents(cr, s.c_str(), &e);
    return e.x_advance;
  }
  // Text with its anchor: align 0 = left, 0.5 = centre, 1 = right; y is the baseline.
  void text(const std::string& s, double x, double y, double align = 0, double size = 13, bool bold = false) {
    cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL, bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
    cairo_move_to(cr, x - align * text_width(s), y);
    cairo_show_text(cr, s.c_str());
  }
  void save(const std::string& path);
};

// A cairo surface holding a copy of `image` (the caller destroys it).
cairo_surface_t* image_surface(const Image& image) {
  if (image.rgb.size() != static_cast<size_t>(image.width) * image.height * 3) fail("image: pixel buffer does not match its size");
  cairo_surface_t* s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, image.width, image.height);
  cairo_surface_flush(s);
  unsigned char* data = cairo_image_surface_get_data(s);
  const int stride = cairo_image_surface_get_stride(s);
  for (int y = 0; y < image.height; ++y)
    for (int x = 0; x < image.width; ++x) {
      const uint8_t* p = image.at(x, y);
      reinterpret_cast<uint32_t*>(data + y * stride)[x] = (uint32_t(p[0]) << 16) | (uint32_t(p[1]) << 8) | p[2];
    }
  cairo_surface_mark_dirty(s);
  return s;
}

void save_surface(cairo_surface_t* surface, const std::string& path) {
  cairo_surface_flush(surface);
  write_atomically(path, [&](const std::string& tmp) {
    const auto st = cairo_surface_write_to_png(surface, tmp.c_str());
    if (st != CAIRO_STATUS_SUCCESS) fail(path + ": cannot write PNG (" + cairo_status_to_string(st) + ")");
  });
}

void Canvas::save(const std::string& path) { save_surface(surface, path); }

// Tick positions: about `target` steps of 1, 2 or 5 x 10^k covering [lo, hi].
std::vector<double> nice_ticks(double lo, double hi, int target = 5) {
  const double span = hi - lo;
  const double raw = span / target, mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * mag >= raw) {
      step = m * mag;
      break;
    }
  std::vector<double> out;
  for (double t = std::ceil(lo / step - 1e-9) * step; t <= hi + step * 1e-9; t += step) out.push_back(std::fabs(t) < step * 1e-9 ? 0 : t);
  return out;
}

std::string number_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

// A chart's plot area on the canvas and the data ranges it shows.
struct Frame {
  double px, py, pw, ph;                // plot area
  double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;  // data (y as drawn: log10 when log_y)
  bool log_y = false;
  double ty(double v) const { return log_y ? std::log10(v) : v; }
  double sx(double v) const { return px + (v - xlo) / (xhi - xlo) * pw; }
  double sy(double v) const { return py + ph - (v - ylo) / (yhi - ylo) * ph; }
  bool drawable(double x, double y) const { return std::isfinite(x) && std::isfinite(y) && !(log_y && y <= 0); }
};

// The ranges of every finite point, padded (and from zero when asked); xlo stays infinite when
// there is no point at all.
void fit_ranges(Frame& f, const Chart& chart) {
  for (const auto& s : chart.series)
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!f.drawable(s.x[i], s.y[i])) continue;
      f.xlo = std::min(f.xlo, s.x[i]), f.xhi = std::max(f.xhi, s.x[i]);
      f.ylo = std::min(f.ylo, f.ty(s.y[i])), f.yhi = std::max(f.yhi, f.ty(s.y[i]));
      if (s.low.size() == s.x.size() && s.high.size() == s.x.size()) {
        if (f.drawable(s.x[i], s.low[i])) f.ylo = std::min(f.ylo, f.ty(s.low[i]));
        if (f.drawable(s.x[i], s.high[i])) f.yhi = std::max(f.yhi, f.ty(s.high[i]));
      }
    }
  if (!std::isfinite(f.xlo)) return;
  if (chart.y_from_zero && !chart.log_y) f.ylo = std::min(f.ylo, 0.0), f.yhi = std::max(f.yhi, 0.0);
  if (f.xhi <= f.xlo) f.xlo -= 0.5, f.xhi += 0.5;
  if (f.yhi <= f.ylo) f.ylo -= std::max(0.5, std::fabs(f.ylo) * 0.1), f.yhi += std::max(0.5, std::fabs(f.yhi) * 0.1);
  const double pad = (f.yhi - f.ylo) * 0.05;
  if (!(chart.y_from_zero && f.ylo == 0)) f.ylo -= pad;
  f.yhi += pad;
}

// Horizontal grid lines and labels at the y ticks, and the rotated y label at x0 + 18.
void draw_y_axis(Canvas& c, const Frame& f, const std::string& label, double x0) {
  cairo_t* cr = c.cr;
  cairo_set_line_width(cr, 1);
  for (double t : nice_ticks(f.ylo, f.yhi)) {
    c.color({0.9, 0.9, 0.9});
    cairo_move_to(cr, f.px + 1, std::round(f.sy(t)) + 0.5);
    cairo_line_to(cr, f.px + f.pw, std::round(f.sy(t)) + 0.5);
    cairo_stroke(cr);
    c.color({0.15, 0.15, 0.15});
    c.text(number_text(f.log_y ? std::pow(10.0, t) : t), f.px - 6, f.sy(t) + 4, 1.0, 12);
  }
  cairo_save(cr);
  cairo_move_to(cr, x0 + 18, f.py + f.ph / 2);
  cairo_rotate(cr, -M_PI / 2);
  cairo_set_font_size(cr, 13);
  cairo_rel_move_to(cr, -c.text_width(label) / 2, 0);
  cairo_show_text(cr, label.c_str());
  cairo_restore(cr);
}

// Grid, ticks, tick labels and axis labels.
void draw_axes(Canvas& c, const Chart& chart, const Frame& f, double x0) {
  cairo_t* cr = c.cr;
  cairo_set_font_size(cr, 12);
  for (double t : nice_ticks(f.xlo, f.xhi)) {
    c.color({0.9, 0.9, 0.9});
    cairo_move_to(cr, std::round(f.sx(t)) + 0.5, f.py + 1);
    cairo_line_to(cr, std::round(f.sx(t)) + 0.5, f.py + f.ph);
    cairo_stroke(cr);
    c.color({0.15, 0.15, 0.15});
    c.text(number_text(t), f.sx(t), f.py + f.ph + 17, 0.5, 12);
  }
  draw_y_axis(c, f, chart.y_label, x0);
  c.text(chart.x_label, f.px + f.pw / 2, f.py + f.ph + 38, 0.5, 13);
}

// Series k, clipped to the plot area, and its legend row on the right.
void draw_series(Canvas& c, const Series& s, size_t k, const Frame& f) {
  cairo_t* cr = c.cr;
  const Color col = palette_color(static_cast<int64_t>(k));
  cairo_save(cr);
  cairo_rectangle(cr, f.px, f.py, f.pw, f.ph);
  cairo_clip(cr);
  if (s.low.size() == s.x.size() && s.high.size() == s.x.size() && !s.x.empty()) {  // the band, under the line
    bool any = false;
    for (size_t i = 0; i < s.x.size(); ++i)
      if (f.drawable(s.x[i], s.high[i])) {
        if (any) cairo_line_to(cr, f.sx(s.x[i]), f.sy(f.ty(s.high[i])));
        else cairo_move_to(cr, f.sx(s.x[i]), f.sy(f.ty(s.high[i])));
        any = true;
      }
    for (size_t i = s.x.size(); i-- > 0;)
      if (f.drawable(s.x[i], s.low[i])) cairo_line_to(cr, f.sx(s.x[i]), f.sy(f.ty(s.low[i])));
    if (any) {
      cairo_close_path(cr);
      cairo_set_source_rgba(cr, col.r, col.g, col.b, 0.18);
      cairo_fill(cr);
    }
  }
  c.color(col);
  cairo_set_line_width(cr, 2);
  bool pen = false;
  for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
    if (!f.drawable(s.x[i], s.y[i])) {
      pen = false;
      continue;
    }
    if (pen) cairo_line_to(cr, f.sx(s.x[i]), f.sy(f.ty(s.y[i])));
    else cairo_move_to(cr, f.sx(s.x[i]), f.sy(f.ty(s.y[i])));
    pen = true;
  }
  cairo_stroke(cr);
  if (s.markers)
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!std::isfinite(s.y[i]) || (f.log_y && s.y[i] <= 0)) continue;
      cairo_arc(cr, f.sx(s.x[i]), f.sy(f.ty(s.y[i])), 3.5, 0, 2 * M_PI);
      cairo_fill(cr);
    }
  cairo_restore(cr);
  const double ly = f.py + 14 + 20 * double(k);
  c.color(col);
  cairo_set_line_width(cr, 3);
  cairo_move_to(cr, f.px + f.pw + 12, ly - 4);
  cairo_line_to(cr, f.px + f.pw + 34, ly - 4);
  cairo_stroke(cr);
  c.color({0.1, 0.1, 0.1});
  std::string label = s.name;
  if (!s.y.empty() && std::isfinite(s.y.back())) {
    char last[32];
    std::snprintf(last, sizeof last, " (%.4g)", s.y.back());
    label += last;
  }
  c.text(label, f.px + f.pw + 40, ly, 0, 12);
}

void draw_chart(Canvas& c, const Chart& chart, double x0, double y0, double w, double h) {
  const double left = 78, right = 250, top = 34, bottom = 50;
  Frame f{x0 + left, y0 + top, w - left - right, h - top - bottom};
  f.log_y = chart.log_y;
  c.color({0, 0, 0});
  c.text(chart.title, x0 + left + f.pw / 2, y0 + 22, 0.5, 15, true);
  fit_ranges(f, chart);
  cairo_set_line_width(c.cr, 1);
  c.color({0.2, 0.2, 0.2});
  cairo_rectangle(c.cr, f.px + 0.5, f.py + 0.5, f.pw, f.ph);
  cairo_stroke(c.cr);
  if (!std::isfinite(f.xlo)) {
    c.text("no data", f.px + f.pw / 2, f.py + f.ph / 2, 0.5);
    return;
  }
  draw_axes(c, chart, f, x0);
  for (size_t k = 0; k < chart.series.size(); ++k) draw_series(c, chart.series[k], k, f);
}

}  // namespace
#endif

void write_charts_png(const std::string& path, const std::vector<Chart>& charts, int width, int panel_height) {
#ifdef EWA_HAS_CAIRO
  if (charts.empty()) fail(path + ": no charts to draw");
  Canvas c(width, panel_height * static_cast<int>(charts.size()));
  for (size_t i = 0; i < charts.size(); ++i) draw_chart(c, charts[i], 0, double(panel_height) * double(i), width, panel_height);
  c.save(path);
#else
  fail(path + ": ewa was built without cairo, so plots cannot be drawn (install libcairo2-dev and reconfigure)");
#endif
}

void write_paired_png(const std::string& path, const std::string& title, const std::string& y_label,
                      const std::vector<std::string>& arms, const std::vector<std::vector<double>>& values,
                      const std::vector<std::array<double, 3>>& intervals) {
#ifdef EWA_HAS_CAIRO
  const size_t n_arms = arms.size();
  if (n_arms == 0 || values.size() != n_arms || intervals.size() != n_arms) fail(path + ": no arms to draw");
  const size_t n_seeds = values[0].size();
  double title_w = 0;
  {
    Canvas probe(1, 1);
    cairo_select_font_face(probe.cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_BOLD);
    cairo_set_font_size(probe.cr, 15);
    title_w = probe.text_width(title);
  }
  const int width = std::max({520, 160 * static_cast<int>(n_arms) + 200, static_cast<int>(title_w) + 40}), height = 460;
  Canvas c(width, height);
  const double left = 78, right = 40, top = 40, bottom = 56;
  Frame f{left, top, width - left - right, height - top - bottom};
  f.xlo = -0.5, f.xhi = double(n_arms) - 0.5;
  for (size_t a = 0; a < n_arms; ++a) {
    for (double v : values[a])
      if (std::isfinite(v)) f.ylo = std::min(f.ylo, v), f.yhi = std::max(f.yhi, v);
    for (int k = 1; k < 3; ++k)
      if (std::isfinite(intervals[a][k])) f.ylo = std::min(f.ylo, intervals[a][k]), f.yhi = std::max(f.yhi, intervals[a][k]);
  }
  c.color({0, 0, 0});
  c.text(title, width / 2.0, 24, 0.5, 15, true);
  cairo_t* cr = c.cr;
  cairo_set_line_width(cr, 1);
  c.color({0.2, 0.2, 0.2});
  cairo_rectangle(cr, f.px + 0.5, f.py + 0.5, f.pw, f.ph);
  cairo_stroke(cr);
  if (!std::isfinite(f.ylo)) {
    c.text("no finished runs", f.px + f.pw / 2, f.py + f.ph / 2, 0.5);
    c.save(path);
    return;
  }
  if (f.yhi <= f.ylo) f.ylo -= 0.5, f.yhi += 0.5;
  const double pad = (f.yhi - f.ylo) * 0.08;
  f.ylo -= pad, f.yhi += pad;
  draw_y_axis(c, f, y_label, 0);
  for (size_t a = 0; a < n_arms; ++a) c.text(arms[a], f.sx(double(a)), f.py + f.ph + 20, 0.5, 13, true);
  // Paired seeds: grey lines across the arms, then the dots in the arm's colour.
  cairo_set_line_width(cr, 1);
  c.color({0.72, 0.72, 0.72});
  for (size_t k = 0; k < n_seeds; ++k) {
    bool pen = false;
    for (size_t a = 0; a < n_arms; ++a) {
      const double v = k < values[a].size() ? values[a][k] : NAN;
      if (!std::isfinite(v)) {
        pen = false;
        continue;
      }
      if (pen) cairo_line_to(cr, f.sx(double(a)), f.sy(v));
      else cairo_move_to(cr, f.sx(double(a)), f.sy(v));
      pen = true;
    }
    cairo_stroke(cr);
  }
  for (size_t a = 0; a < n_arms; ++a) {
    const Color col = palette_color(static_cast<int64_t>(a));
    c.color(col);
    for (double v : values[a])
      if (std::isfinite(v)) {
        cairo_arc(cr, f.sx(double(a)), f.sy(v), 4, 0, 2 * M_PI);
        cairo_fill(cr);
      }
    const double x = f.sx(double(a)) + 26;
    const auto& iv = intervals[a];
    if (std::isfinite(iv[1]) && std::isfinite(iv[2])) {  // the interval, with caps
      cairo_set_line_width(cr, 2);
      cairo_move_to(cr, x, f.sy(iv[1]));
      cairo_line_to(cr, x, f.sy(iv[2]));
      for (int k = 1; k < 3; ++k) {
        cairo_move_to(cr, x - 6, f.sy(iv[k]));
        cairo_line_to(cr, x + 6, f.sy(iv[k]));
      }
      cairo_stroke(cr);
    }
    if (std::isfinite(iv[0])) {
      cairo_rectangle(cr, x - 5, f.sy(iv[0]) - 5, 10, 10);
      cairo_fill(cr);
      c.color({0.1, 0.1, 0.1});
      char b[32];
      std::snprintf(b, sizeof b, "%.2f", iv[0]);
      c.text(b, x + 10, f.sy(iv[0]) + 4, 0, 11);
    }
  }
  c.color({0.3, 0.3, 0.3});
  c.text("square: mean; bar: 95% t interval of the mean", f.px + f.pw, f.py + f.ph + 44, 1.0, 11);
  c.save(path);
#else
  fail(path + ": ewa was built without cairo, so plots cannot be drawn (install libcairo2-dev and reconfigure)");
#endif
}

void write_confusion_png(const std::string& path, const std::vector<std::vector<int64_t>>& counts,
                         const std::vector<std::string>& class_names, const std::string& title) {
#ifdef EWA_HAS_CAIRO
  const int n = static_cast<int>(counts.size());
  if (n == 0) fail(path + ": empty confusion matrix");
  for (const auto& row : counts)
    if (static_cast<int>(row.size()) != n) fail(path + ": confusion matrix is not square");
  auto name = [&](int i) { return i < static_cast<int>(class_names.size()) ? class_names[i] : "class_" + std::to_string(i); };
  const double cell = std::clamp(640.0 / n, 12.0, 48.0), font = std::clamp(cell * 0.42, 7.0, 13.0);
  double label_w = 0, title_w = 0;
  {
    Canvas probe(1, 1);
    cairo_set_font_size(probe.cr, font);
    for (int i = 0; i < n; ++i) label_w = std::max(label_w, probe.text_width(name(i)));
    cairo_select_font_face(probe.cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_BOLD);
    cairo_set_font_size(probe.cr, 15);
    title_w = probe.text_width(title);
  }
  const double left = label_w + 40, top = label_w + 60, grid = cell * n;
  const double width = std::max(left + grid + 30, title_w + 40);
  Canvas c(static_cast<int>(width), static_cast<int>(top + grid + 50));
  cairo_t* cr = c.cr;
  c.color({0, 0, 0});
  c.text(title, std::clamp(left + grid / 2, title_w / 2 + 20, width - title_w / 2 - 20), 24, 0.5, 15, true);
  int64_t total = 0, correct = 0;
  for (int i = 0; i < n; ++i) {
    int64_t row_sum = 0;
    for (int j = 0; j < n; ++j) row_sum += counts[i][j];
    total += row_sum;
    correct += counts[i][i];
    for (int j = 0; j < n; ++j) {
      const double rate = row_sum > 0 ? double(counts[i][j]) / double(row_sum) : 0.0;
      c.color(counts[i][j] == 0 ? Color{0.97, 0.97, 0.97} : heat_color(rate));
      cairo_rectangle(cr, left + j * cell, top + i * cell, cell - 1, cell - 1);
      cairo_fill(cr);
      if (n <= 20 && counts[i][j] > 0) {
        c.color(rate > 0.6 ? Color{0, 0, 0} : Color{1, 1, 1});
        c.text(std::to_string(counts[i][j]), left + (j + 0.5) * cell, top + (i + 0.5) * cell + font / 3, 0.5, font);
      }
    }
    c.color({0.1, 0.1, 0.1});
    c.text(name(i), left - 6, top + (i + 0.5) * cell + font / 3, 1.0, font);
    cairo_save(cr);
    cairo_move_to(cr, left + (i + 0.5) * cell + font / 3, top - 6);
    cairo_rotate(cr, -M_PI / 2);
    cairo_set_font_size(cr, font);
    cairo_show_text(cr, name(i).c_str());
    cairo_restore(cr);
  }
  c.color({0.1, 0.1, 0.1});
  c.text("predicted class", left + grid / 2, top + grid + 22, 0.5, 13);
  char acc[96];
  std::snprintf(acc, sizeof acc, "rows: true class; %lld samples, accuracy %.2f%%", static_cast<long long>(total),
                total > 0 ? 100.0 * double(correct) / double(total) : 0.0);
  c.text(acc, left + grid / 2, top + grid + 42, 0.5, 12);
  c.save(path);
#else
  fail(path + ": ewa was built without cairo, so plots cannot be drawn (install libcairo2-dev and reconfigure)");
#endif
}

void write_grid_png(const std::string& path, const std::vector<Tile>& tiles, int columns, const std::string& title) {
#ifdef EWA_HAS_CAIRO
  if (tiles.empty()) fail(path + ": no images for the grid");
  columns = std::max(1, std::min<int>(columns, static_cast<int>(tiles.size())));
  int tw = 0, th = 0;
  size_t lines = 0;
  for (const auto& t : tiles) tw = std::max(tw, t.image.width), th = std::max(th, t.image.height), lines = std::max(lines, t.caption.size());
  const int gap = 8, cap = 16 * static_cast<int>(lines) + 6, head = title.empty() ? gap : 34;
  const int rows = (static_cast<int>(tiles.size()) + columns - 1) / columns;
  Canvas c(columns * (tw + gap) + gap, head + rows * (th + cap + gap));
  cairo_t* cr = c.cr;
  if (!title.empty()) {
    c.color({0, 0, 0});
    c.text(title, (columns * (tw + gap) + gap) / 2.0, 23, 0.5, 15, true);
  }
  for (size_t k = 0; k < tiles.size(); ++k) {
    const auto& t = tiles[k];
    const int x = gap + static_cast<int>(k % columns) * (tw + gap), y = head + static_cast<int>(k / columns) * (th + cap + gap);
    if (t.image.width > 0) {
      cairo_surface_t* s = image_surface(t.image);
      cairo_set_source_surface(cr, s, x, y);
      cairo_paint(cr);
      cairo_surface_destroy(s);
    }
    if (t.marked) {
      c.color({0.85, 0.1, 0.1});
      cairo_set_line_width(cr, 3);
      cairo_rectangle(cr, x + 1.5, y + 1.5, tw - 3, th - 3);
      cairo_stroke(cr);
    }
    for (size_t l = 0; l < t.caption.size(); ++l) {
      c.color(t.marked ? Color{0.8, 0.05, 0.05} : Color{0.1, 0.1, 0.1});
      c.text(t.caption[l], x + tw / 2.0, y + th + 15 + 16 * double(l), 0.5, 12);
    }
  }
  c.save(path);
#else
  fail(path + ": ewa was built without cairo, so image grids cannot be drawn (install libcairo2-dev and reconfigure)");
#endif
}

void write_png(const std::string& path, const Image& image) {
#ifdef EWA_HAS_CAIRO
  cairo_surface_t* s = image_surface(image);
  try {
    save_surface(s, path);
  } catch (...) {
    cairo_surface_destroy(s);
    throw;
  }
  cairo_surface_destroy(s);
#else
  fail(path + ": ewa was built without cairo, so PNG files cannot be written (install libcairo2-dev and reconfigure)");
#endif
}

Image read_png(const std::string& path) {
#ifdef EWA_HAS_CAIRO
  if (!fs::exists(path)) fail(path + ": cannot open file");
  cairo_surface_t* s = cairo_image_surface_create_from_png(path.c_str());
  const auto st = cairo_surface_status(s);
  if (st != CAIRO_STATUS_SUCCESS) {
    cairo_surface_destroy(s);
    fail(path + ": not a readable PNG (" + cairo_status_to_string(st) + ")");
  }
  Image img;
  img.width = cairo_image_surface_get_width(s);
  img.height = cairo_image_surface_get_height(s);
  const auto format = cairo_image_surface_get_format(s);
  const unsigned char* data = cairo_image_surface_get_data(s);
  const int stride = cairo_image_surface_get_stride(s);
  img.rgb.resize(static_cast<size_t>(img.width) * img.height * 3);
  for (int y = 0; y < img.height; ++y)
    for (int x = 0; x < img.width; ++x) {
      const uint32_t p = reinterpret_cast<const uint32_t*>(data + y * stride)[x];
      const uint32_t a = format == CAIRO_FORMAT_ARGB32 ? (p >> 24) : 255;
      uint8_t* o = img.rgb.data() + (static_cast<size_t>(y) * img.width + x) * 3;
      for (int ch = 0; ch < 3; ++ch) {
        const uint32_t v = (p >> (16 - 8 * ch)) & 255;  // premultiplied by alpha in ARGB32
        o[ch] = static_cast<uint8_t>(a == 0 ? 0 : std::min<uint32_t>(255, v * 255 / a));
      }
    }
  cairo_surface_destroy(s);
  return img;
#else
  fail(path + ": ewa was built without cairo, so PNG files cannot be read (install libcairo2-dev and reconfigure)");
#endif
}

namespace {
// One of a run's accuracy / loss numbers: `split` json of an epoch record.
double field(const nlohmann::json& rec, const char* split, const char* key) {
  if (!rec.contains(split) || !rec[split].is_object() || !rec[split].contains(key) || !rec[split][key].is_number()) return NAN;
  return rec[split][key].get<double>();
}
}  // namespace

namespace {

// The run's log.jsonl records by step, steps and epochs apart. A resumed run logs its epochs
// again from the resume point: the last record of a step wins.
struct LogRecords {
  std::map<int64_t, nlohmann::json> steps, epochs;
};

LogRecords read_log(const std::string& run_dir) {
  const std::string log = run_dir + "/log.jsonl";
  std::ifstream in(log);
  if (!in) fail(log + ": cannot open the run's log (is " + run_dir + " a run directory?)");
  LogRecords out;
  std::string line;
  for (int64_t line_no = 1; std::getline(in, line); ++line_no) {
    if (line.empty()) continue;
    nlohmann::json rec;
    try {
      rec = nlohmann::json::parse(line);
    } catch (const std::exception&) {
      fail(log + ":" + std::to_string(line_no) + ": not a JSON object");
    }
    if (!rec.is_object() || !rec.contains("type") || !rec.contains("step") || !rec["step"].is_number_integer())
      fail(log + ":" + std::to_string(line_no) + ": expected a record with \"type\" and an integer \"step\"");
    (rec["type"] == "epoch" ? out.epochs : out.steps)[rec["step"].get<int64_t>()] = rec;
  }
  if (out.steps.empty() && out.epochs.empty()) fail(log + ": no records (the run has not logged a step yet)");
  return out;
}

Series named(const std::string& name, bool markers) {
  Series s;
  s.name = name;
  s.markers = markers;
  return s;
}

double number_of(const nlohmann::json& r, const char* k) {
  return r.contains(k) && r[k].is_number() ? r[k].get<double>() : NAN;
}

// The series that hold at least one finite value.
std::vector<Series> with_data(std::vector<Series> v) {
  std::vector<Series> out;
  for (auto& s : v)
    if (std::any_of(s.y.begin(), s.y.end(), [](double y) { return std::isfinite(y); })) out.push_back(std::move(s));
  return out;
}

// The confusion matrix of the final test evaluation (classification runs) into <dir>/confusion.png,
// when metrics.json has one.
void plot_confusion(const std::string& run_dir, const std::string& dir, const std::string& name,
                    std::vector<std::string>& written) {
  std::ifstream min(run_dir + "/metrics.json");
  if (!min) return;
  nlohmann::json m;
  try {
    m = nlohmann::json::parse(min);
  } catch (const std::exception&) {
    fail(run_dir + "/metrics.json: not valid JSON");
  }
  if (!m.contains("test") || !m["test"].is_object() || !m["test"].contains("confusion")) return;
  std::vector<std::vector<int64_t>> counts;
  try {
    counts = m["test"]["confusion"].get<std::vector<std::vector<int64_t>>>();
  } catch (const std::exception&) {
    fail(run_dir + "/metrics.json: test.confusion: expected a square array of counts");
  }
  std::vector<std::string> names;
  if (m.contains("class_names") && m["class_names"].is_array()) names = m["class_names"].get<std::vector<std::string>>();
  write_confusion_png(dir + "/confusion.png", counts, names, name + ": test confusion matrix (" + m.value("evaluation", "") + ")");
  written.push_back(dir + "/confusion.png");
}

}  // namespace

std::vector<std::string> plot_run(const std::string& run_dir) {
  const LogRecords records = read_log(run_dir);
  Series step_loss = named("train loss (logged steps)", false), lr = named("learning rate", false),
         share = named("EWA share rate", false);
  for (const auto& [s, r] : records.steps) {
    step_loss.x.push_back(double(s)), step_loss.y.push_back(number_of(r, "loss"));
    lr.x.push_back(double(s)), lr.y.push_back(number_of(r, "lr"));
    share.x.push_back(double(s)), share.y.push_back(number_of(r, "share_rate"));
  }
  Series epoch_train = named("train (epoch mean)", true), test_loss = named("test loss (epoch end)", true),
         val_loss = named("val loss (epoch end)", true);
  Series train_acc = named("train", true), test_acc = named("test", true), val_acc = named("val", true);
  Series test_ins = named("test instance mIoU", true), test_cls = named("test class mIoU", true);
  // Point-BERT's stage 2: masked-token accuracy (train epoch mean, test), the SVM probe, the loss terms.
  Series train_tok = named("train masked-token acc (epoch mean)", true), test_tok = named("test masked-token acc", true),
         val_svm = named("val: linear SVM probe acc", true);
  Series train_token_loss = named("train token CE (epoch mean)", true), train_mix_loss = named("train patch-mix loss (epoch mean)", true);
  bool has_acc = false, has_miou = false, has_tokens = false;
  for (const auto& [s, r] : records.epochs) {
    const double x = double(s);
    epoch_train.x.push_back(x), epoch_train.y.push_back(number_of(r, "train_loss"));
    double tl = field(r, "test", "loss");
    if (std::isnan(tl) && !std::isnan(field(r, "test", "chamfer")))
      tl = field(r, "test", "chamfer"), test_loss.name = "test Chamfer (epoch end)";
    test_loss.x.push_back(x), test_loss.y.push_back(tl);
    val_loss.x.push_back(x), val_loss.y.push_back(field(r, "val", "loss"));
    train_acc.x.push_back(x), train_acc.y.push_back(100 * number_of(r, "train_acc"));
    test_acc.x.push_back(x), test_acc.y.push_back(100 * field(r, "test", "oa"));
    val_acc.x.push_back(x), val_acc.y.push_back(100 * field(r, "val", "oa"));
    has_acc = has_acc || std::isfinite(test_acc.y.back());
    test_ins.x.push_back(x), test_ins.y.push_back(100 * field(r, "test", "instance_miou"));
    test_cls.x.push_back(x), test_cls.y.push_back(100 * field(r, "test", "class_miou"));
    has_miou = has_miou || std::isfinite(test_ins.y.back());
    train_tok.x.push_back(x), train_tok.y.push_back(100 * field(r, "test", "train_token_acc"));
    test_tok.x.push_back(x), test_tok.y.push_back(100 * field(r, "test", "token_acc"));
    val_svm.x.push_back(x), val_svm.y.push_back(100 * field(r, "val", "svm_acc"));
    train_token_loss.x.push_back(x), train_token_loss.y.push_back(field(r, "test", "train_token_loss"));
    train_mix_loss.x.push_back(x), train_mix_loss.y.push_back(field(r, "test", "train_mix_loss"));
    has_tokens = has_tokens || std::isfinite(test_tok.y.back());
  }
  if (has_tokens) test_loss.name = "test token CE (epoch end)";
  const std::string name = fs::path(run_dir).filename().string().empty() ? fs::path(run_dir).parent_path().filename().string()
                                                                          : fs::path(run_dir).filename().string();
  const std::string dir = run_dir + "/plots";
  ensure_writable_dir(dir);
  std::vector<std::string> written;
  write_charts_png(dir + "/loss.png",
                   {Chart{name + ": loss", "step", "loss",
                          with_data({step_loss, epoch_train, test_loss, val_loss, train_token_loss, train_mix_loss}), false, false}});
  written.push_back(dir + "/loss.png");
  if (has_tokens) {
    write_charts_png(dir + "/tokens.png", {Chart{name + ": masked-token accuracy and SVM probe per epoch", "step", "accuracy (%)",
                                                 with_data({train_tok, test_tok, val_svm}), false, false}});
    written.push_back(dir + "/tokens.png");
  }
  if (has_acc) {
    write_charts_png(dir + "/accuracy.png", {Chart{name + ": overall accuracy per epoch", "step", "accuracy (%)",
                                                   with_data({train_acc, val_acc, test_acc}), false, false}});
    written.push_back(dir + "/accuracy.png");
  }
  if (has_miou) {  // part segmentation
    write_charts_png(dir + "/miou.png", {Chart{name + ": part segmentation mIoU per epoch", "step", "mIoU (%)",
                                               with_data({test_ins, test_cls}), false, false}});
    written.push_back(dir + "/miou.png");
  }
  write_charts_png(dir + "/schedule.png",
                   {Chart{name + ": learning rate", "step", "learning rate", with_data({lr}), true, false},
                    Chart{name + ": EWA share rate (beta)", "step", "share rate", with_data({share}), true, false}},
                   900, 260);
  written.push_back(dir + "/schedule.png");
  plot_confusion(run_dir, dir, name, written);
  return written;
}

}  // namespace ewa::viz
