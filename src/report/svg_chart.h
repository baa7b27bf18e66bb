// The report page's charts as inline SVG: horizontal bars, a heat map, a line chart. Each is drawn so that it
// reads in greyscale too: marked elements differ in shape or texture (hatching, a cross, a ring), not only in
// colour, and every axis has a label with its unit. The charts carry no text a terminal browser would need: the
// page states the same facts in tables and sentences beside them. Marked elements carry the class "marked", so
// tests (and readers of the source) can count them: rect.bar, rect.cell, path.cross, circle.point.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace moeslim::report {

using ValueText = std::function<std::string(double)>;

struct Bar {
  std::string label;
  double value = 0;  // not finite: no bar, the text "NaN" in its place
  bool marked = false;
};

struct BarChart {
  std::string id;          // unique in the page; prefixes the chart's pattern ids
  std::string title;       // what the chart shows, for screen readers
  std::string value_axis;  // the value axis's label, with its unit
  std::vector<Bar> bars;
  std::optional<double> reference;  // a dashed line across the bars, e.g. twice the median
  std::string reference_label;
  std::optional<double> scale_max;  // the axis's end (e.g. 1 for fractions); default: from the values
  std::string marked_legend;        // what a marked (hatched) bar means; empty: no legend
  ValueText value_text;             // the number written at a bar's end; default format_number
};

struct HeatMap {
  std::string id;
  std::string title;
  std::string row_axis;     // e.g. "layer"
  std::string column_axis;  // e.g. "expert (index)"
  std::string value_name;   // e.g. "calibration tokens"
  std::vector<std::string> row_labels;
  std::vector<std::vector<double>> values;  // per row, ≥ 0; rows may differ in length
  std::vector<std::vector<bool>> marked;    // the same shape; a marked cell is crossed out
  std::string marked_legend;
};

struct LinePoint {
  double x = 0;
  double y = 0;
};

struct LineChart {
  std::string id;
  std::string title;
  std::string x_axis;
  std::string y_axis;
  std::vector<LinePoint> points;      // in order; a point that is not finite is left out
  std::optional<std::size_t> marked;  // the point drawn with a ring and labelled
  std::string marked_label;
};

std::string svg_bar_chart(const BarChart& chart);
std::string svg_heat_map(const HeatMap& map);
std::string svg_line_chart(const LineChart& chart);

// Evenly spaced round tick values covering [lo, hi] (steps of 1, 2 or 5 × 10^k), about `target` of them.
std::vector<double> nice_ticks(double lo, double hi, int target = 5);

}  // namespace moeslim::report
