#include "report/svg_chart.h"

#include <fmt/core.h>

#include <algorithm>
#include <array>
#include <cmath>

#include "report/markup.h"

namespace moeslim::report {
namespace {

constexpr double kWidth = 760;
// Colours chosen by lightness first, so that greyscale keeps them apart: a light bar, a dark hatched one.
constexpr const char* kBarFill = "#9ecae1";
constexpr const char* kMarkedFill = "#a50f15";
constexpr const char* kInk = "#222222";
constexpr const char* kGrid = "#d0d0d0";

std::string num(double v) { return svg_number(v); }

std::string svg_open(double width, double height, const std::string& title) {
  return fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" "
      "role=\"img\" aria-label=\"{2}\" font-family=\"sans-serif\" font-size=\"12\" fill=\"{3}\">",
      num(width), num(height), escape_xml(title), kInk);
}

std::string text_at(double x, double y, const std::string& text, const char* anchor = "start", const char* extra = "") {
  return fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"{}\"{}>{}</text>", num(x), num(y), anchor, extra,
                     escape_xml(text));
}

std::string line(double x1, double y1, double x2, double y2, const char* stroke, const char* extra = "") {
  return fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{}\"{}/>", num(x1), num(y1), num(x2),
                     num(y2), stroke, extra);
}

// White diagonal lines over the marked colour: the texture tells marked bars apart without colour.
std::string hatch_pattern(const std::string& id) {
  return fmt::format(
      "<defs><pattern id=\"{}-hatch\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" "
      "patternTransform=\"rotate(45)\"><rect width=\"6\" height=\"6\" fill=\"{}\"/>"
      "<line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"6\" stroke=\"#ffffff\" stroke-width=\"2.5\"/></pattern></defs>",
      escape_xml(id), kMarkedFill);
}

// A light-to-dark blue ramp (lightness falls monotonically, so greyscale keeps the order).
std::string ramp_colour(double t) {
  static constexpr std::array<std::array<double, 3>, 3> kStops = {{{247, 251, 255}, {107, 174, 214}, {8, 48, 107}}};
  t = std::clamp(std::isfinite(t) ? t : 0.0, 0.0, 1.0);
  const double pos = t * (kStops.size() - 1);
  const std::size_t i = std::min<std::size_t>(static_cast<std::size_t>(pos), kStops.size() - 2);
  const double f = pos - static_cast<double>(i);
  std::array<int, 3> rgb{};
  for (std::size_t c = 0; c < 3; ++c) {
    rgb[c] = static_cast<int>(std::lround(kStops[i][c] + f * (kStops[i + 1][c] - kStops[i][c])));
  }
  return fmt::format("#{:02x}{:02x}{:02x}", rgb[0], rgb[1], rgb[2]);
}

// Every k-th label, so that labels of rows `pitch` apart stay about `min_gap` apart.
std::size_t label_stride(double pitch, double min_gap) {
  return pitch >= min_gap ? 1 : static_cast<std::size_t>(std::ceil(min_gap / pitch));
}

}  // namespace

std::vector<double> nice_ticks(double lo, double hi, int target) {
  if (!std::isfinite(lo) || !std::isfinite(hi)) return {0, 1};
  if (!(hi > lo)) hi = lo + (lo == 0 ? 1 : std::fabs(lo) * 0.1);
  const double raw = (hi - lo) / std::max(1, target);
  const double magnitude = std::pow(10, std::floor(std::log10(raw)));
  const double norm = raw / magnitude;
  const double step = (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * magnitude;
  const double start = std::floor(lo / step) * step;
  const double steps = std::ceil((hi - start) / step - 1e-9);
  // Values near the double's limits (a hand-edited report may hold 1e308) overflow the arithmetic above.
  if (!std::isfinite(start) || !std::isfinite(steps) || !(step > 0)) return {lo, hi};
  std::vector<double> ticks;
  const int count = static_cast<int>(std::clamp(steps, 1.0, 40.0));
  for (int i = 0; i <= count; ++i) ticks.push_back(start + i * step);
  return ticks;
}

std::string svg_bar_chart(const BarChart& chart) {
  const std::size_t n = chart.bars.size();
  const ValueText value_text = chart.value_text ? chart.value_text : [](double v) { return format_number(v); };
  double largest = 0;
  for (const Bar& b : chart.bars) {
    if (std::isfinite(b.value)) largest = std::max(largest, b.value);
  }
  if (chart.reference && std::isfinite(*chart.reference)) largest = std::max(largest, *chart.reference);
  const std::vector<double> ticks = nice_ticks(0, chart.scale_max.value_or(largest > 0 ? largest : 1));
  const double scale_end = chart.scale_max.value_or(ticks.back());

  // Room for the longest label (at about 6.5 px a character of the 12 px font).
  std::size_t longest = 0;
  for (const Bar& b : chart.bars) longest = std::max(longest, b.label.size());
  const double left = std::clamp(12 + 6.5 * static_cast<double>(longest), 70.0, 240.0);
  const double plot_width = kWidth - left - 110;
  const double top = 8;
  const double row = std::clamp(560.0 / std::max<std::size_t>(n, 1), 8.0, 22.0);
  const double plot_height = row * static_cast<double>(n);
  const double legend_height = chart.marked_legend.empty() && !chart.reference ? 0 : 22;
  const double height = top + plot_height + 46 + legend_height;
  const auto x_of = [&](double v) { return left + plot_width * std::clamp(v / scale_end, 0.0, 1.0); };

  std::string s = svg_open(kWidth, height, chart.title);
  s += hatch_pattern(chart.id);
  for (const double t : ticks) {
    if (t > scale_end * (1 + 1e-9)) break;
    s += line(x_of(t), top, x_of(t), top + plot_height, kGrid);
    s += text_at(x_of(t), top + plot_height + 16, value_text(t), "middle");
  }
  s += line(left, top + plot_height, left + plot_width, top + plot_height, kInk);
  s += text_at(left + plot_width / 2, top + plot_height + 36, chart.value_axis, "middle", " font-weight=\"bold\"");

  const std::size_t stride = label_stride(row, 12);
  for (std::size_t i = 0; i < n; ++i) {
    const Bar& b = chart.bars[i];
    const double y = top + row * static_cast<double>(i);
    const double bar_height = std::max(row * 0.72, 4.0);
    const double mid = y + row / 2 + 4;
    if (i % stride == 0 || b.marked) s += text_at(left - 6, mid, b.label, "end");
    if (!std::isfinite(b.value)) {
      s += text_at(left + 4, mid, format_number(b.value));
      continue;
    }
    const double w = std::max(x_of(b.value) - left, 1.0);
    s += fmt::format(
        "<rect class=\"{}\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\" stroke=\"{}\" "
        "stroke-width=\"0.5\"/>",
        b.marked ? "bar marked" : "bar", num(left), num(y + (row - bar_height) / 2), num(w), num(bar_height),
        b.marked ? "url(#" + escape_xml(chart.id) + "-hatch)" : kBarFill, kInk);
    if (row >= 11) s += text_at(left + w + 4, mid, value_text(b.value));
  }
  if (chart.reference && std::isfinite(*chart.reference)) {
    const double x = x_of(*chart.reference);
    s += line(x, top - 4, x, top + plot_height, kInk, " stroke-dasharray=\"5 3\" stroke-width=\"1.5\"");
  }
  double legend_x = left;
  const double legend_y = top + plot_height + 52;
  if (!chart.marked_legend.empty()) {
    s += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"14\" height=\"12\" fill=\"url(#{}-hatch)\" stroke=\"{}\"/>",
                     num(legend_x), num(legend_y - 10), escape_xml(chart.id), kInk);
    s += text_at(legend_x + 20, legend_y, chart.marked_legend);
    legend_x += 330;
  }
  if (chart.reference) {
    s += line(legend_x, legend_y - 4, legend_x + 22, legend_y - 4, kInk,
              " stroke-dasharray=\"5 3\" stroke-width=\"1.5\"");
    s += text_at(legend_x + 28, legend_y, chart.reference_label);
  }
  return s + "</svg>";
}

std::string svg_heat_map(const HeatMap& map) {
  const std::size_t rows = map.values.size();
  std::size_t columns = 0;
  double largest = 0;
  for (const auto& r : map.values) {
    columns = std::max(columns, r.size());
    for (const double v : r) {
      if (std::isfinite(v)) largest = std::max(largest, v);
    }
  }
  const double left = 76;
  const double top = 34;
  const double cell_w = std::clamp(640.0 / std::max<std::size_t>(columns, 1), 4.0, 36.0);
  const double cell_h = std::clamp(520.0 / std::max<std::size_t>(rows, 1), 4.0, 28.0);
  const double grid_w = cell_w * static_cast<double>(columns);
  const double grid_h = cell_h * static_cast<double>(rows);
  const double height = top + grid_h + 74;
  // A logarithmic scale from the smallest count above 0 to the largest: token counts span orders of magnitude,
  // and the few-token experts are the ones to see. 0 takes the lightest colour too; starved cells are crossed.
  double smallest = largest;
  for (const auto& r : map.values) {
    for (const double v : r) {
      if (std::isfinite(v) && v > 0) smallest = std::min(smallest, v);
    }
  }
  const double log_span = smallest > 0 ? std::log(largest / smallest) : 0;
  const auto shade = [&](double v) {
    if (!(v > smallest)) return ramp_colour(0);
    return ramp_colour(log_span > 0 ? std::log(v / smallest) / log_span : 1);
  };

  std::string s = svg_open(std::max(kWidth, left + grid_w + 20), height, map.title);
  s += text_at(left + grid_w / 2, 12, map.column_axis, "middle", " font-weight=\"bold\"");
  const std::size_t column_stride = label_stride(cell_w, 22);
  for (std::size_t c = 0; c < columns; c += column_stride) {
    s += text_at(left + cell_w * (static_cast<double>(c) + 0.5), top - 6, std::to_string(c), "middle",
                 " font-size=\"10\"");
  }
  s += fmt::format(
      "<text x=\"14\" y=\"{0}\" text-anchor=\"middle\" font-weight=\"bold\" "
      "transform=\"rotate(-90 14 {0})\">{1}</text>",
      num(top + grid_h / 2), escape_xml(map.row_axis));
  const std::size_t row_stride = label_stride(cell_h, 11);
  std::string crosses;
  for (std::size_t r = 0; r < rows; ++r) {
    const double y = top + cell_h * static_cast<double>(r);
    if (r % row_stride == 0 && r < map.row_labels.size()) {
      s += text_at(left - 6, y + cell_h / 2 + 4, map.row_labels[r], "end", " font-size=\"10\"");
    }
    for (std::size_t c = 0; c < map.values[r].size(); ++c) {
      const double x = left + cell_w * static_cast<double>(c);
      const bool marked = r < map.marked.size() && c < map.marked[r].size() && map.marked[r][c];
      s += fmt::format("<rect class=\"{}\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\"/>",
                       marked ? "cell marked" : "cell", num(x), num(y), num(cell_w), num(cell_h),
                       shade(map.values[r][c]));
      if (marked) {
        // Drawn after every cell, so that no neighbour paints over it.
        crosses += fmt::format("<path class=\"cross\" d=\"M{0} {1}L{2} {3}M{0} {3}L{2} {1}\"/>", num(x + 1), num(y + 1),
                               num(x + cell_w - 1), num(y + cell_h - 1));
      }
    }
  }
  s += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"{}\"/>", num(left),
                   num(top), num(grid_w), num(grid_h), kInk);
  s += "<g stroke=\"#000000\" stroke-width=\"1.6\" fill=\"none\">" + crosses + "</g>";

  // Legend: swatches at evenly spaced points of the (logarithmic) scale, labelled with their counts.
  const double legend_y = top + grid_h + 22;
  s += text_at(left, legend_y + 11, map.value_name + ":", "start");
  double x = left + 8.0 * static_cast<double>(map.value_name.size()) + 14;
  for (int i = 0; i <= 5; ++i) {
    const double v = smallest * std::exp(log_span * i / 5.0);
    s += fmt::format(
        "<rect x=\"{}\" y=\"{}\" width=\"16\" height=\"14\" fill=\"{}\" stroke=\"{}\" "
        "stroke-width=\"0.5\"/>",
        num(x), num(legend_y), shade(v), kInk);
    s += text_at(x + 20, legend_y + 11, (i == 0 ? "≤ " : "") + format_number(std::round(v), 3));
    x += 62;
  }
  if (!map.marked_legend.empty()) {
    const double y = legend_y + 26;
    s += fmt::format(
        "<rect x=\"{0}\" y=\"{1}\" width=\"16\" height=\"14\" fill=\"{2}\" stroke=\"{3}\" "
        "stroke-width=\"0.5\"/><path d=\"M{0} {1}l16 14M{0} {4}l16 -14\" stroke=\"#000000\" "
        "stroke-width=\"1.6\"/>",
        num(left), num(y), shade(0), kInk, num(y + 14));
    s += text_at(left + 22, y + 11, map.marked_legend);
  }
  return s + "</svg>";
}

std::string svg_line_chart(const LineChart& chart) {
  std::vector<std::size_t> shown;
  double x_lo = INFINITY, x_hi = -INFINITY, y_lo = INFINITY, y_hi = -INFINITY;
  for (std::size_t i = 0; i < chart.points.size(); ++i) {
    const LinePoint& p = chart.points[i];
    if (!std::isfinite(p.x) || !std::isfinite(p.y)) continue;
    shown.push_back(i);
    x_lo = std::min(x_lo, p.x);
    x_hi = std::max(x_hi, p.x);
    y_lo = std::min(y_lo, p.y);
    y_hi = std::max(y_hi, p.y);
  }
  if (shown.empty()) x_lo = x_hi = y_lo = y_hi = 0;
  const std::vector<double> xt = nice_ticks(x_lo, x_hi, 8);
  const std::vector<double> yt = nice_ticks(y_lo, y_hi, 5);
  const double left = 80, top = 12, plot_w = kWidth - left - 24, plot_h = 200;
  const auto px = [&](double x) { return left + plot_w * (x - xt.front()) / (xt.back() - xt.front()); };
  const auto py = [&](double y) { return top + plot_h - plot_h * (y - yt.front()) / (yt.back() - yt.front()); };

  std::string s = svg_open(kWidth, top + plot_h + 50, chart.title);
  for (const double t : yt) {
    s += line(left, py(t), left + plot_w, py(t), kGrid);
    s += text_at(left - 6, py(t) + 4, format_number(t, 3), "end");
  }
  for (const double t : xt) s += text_at(px(t), top + plot_h + 16, format_number(t, 3), "middle");
  s += line(left, top + plot_h, left + plot_w, top + plot_h, kInk) + line(left, top, left, top + plot_h, kInk);
  s += text_at(left + plot_w / 2, top + plot_h + 38, chart.x_axis, "middle", " font-weight=\"bold\"");
  s += fmt::format(
      "<text x=\"14\" y=\"{0}\" text-anchor=\"middle\" font-weight=\"bold\" "
      "transform=\"rotate(-90 14 {0})\">{1}</text>",
      num(top + plot_h / 2), escape_xml(chart.y_axis));
  std::string path;
  for (const std::size_t i : shown) {
    path += fmt::format("{}{} {}", path.empty() ? "M" : "L", num(px(chart.points[i].x)), num(py(chart.points[i].y)));
  }
  if (!path.empty()) s += fmt::format("<path d=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\"/>", path, kInk);
  for (const std::size_t i : shown) {
    const bool marked = chart.marked && *chart.marked == i;
    const double x = px(chart.points[i].x), y = py(chart.points[i].y);
    s += fmt::format("<circle class=\"{}\" cx=\"{}\" cy=\"{}\" r=\"{}\" fill=\"{}\" stroke=\"{}\"/>",
                     marked ? "point marked" : "point", num(x), num(y), marked ? 4 : 2.5,
                     marked ? kMarkedFill : "#ffffff", kInk);
    if (marked) {
      s += fmt::format("<circle cx=\"{}\" cy=\"{}\" r=\"9\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"/>", num(x),
                       num(y), kInk);
      const bool right_half = x > left + plot_w * 0.6;
      // A white halo under the label keeps it legible where it crosses the curve.
      s += text_at(right_half ? x - 14 : x + 14, std::max(y - 16, top + 10), chart.marked_label, right_half ? "end" : "start",
                   " stroke=\"#ffffff\" stroke-width=\"4\" paint-order=\"stroke\" font-weight=\"bold\"");
    }
  }
  return s + "</svg>";
}

}  // namespace moeslim::report
