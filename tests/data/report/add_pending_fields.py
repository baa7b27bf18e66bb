#!/usr/bin/env python3
"""Makes tiny_w4a8_report.json (README.md here) from a real quant_report.json of the bundled tiny model, adding
by hand the fields moeslim's report gains next (per-layer and evaluation router agreement, the starved-expert
threshold, the α/β search's loss curves), so that the page's tests cover them before quant writes them.
The values added are made up but shaped like the real ones; everything else is the run's own.

    python3 tests/data/report/add_pending_fields.py /tmp/wtr-w4a8/quant_report.json > tests/data/report/tiny_w4a8_report.json
"""
import json
import sys

report = json.load(open(sys.argv[1]))
# A machine-specific prefix out of the recorded recipe path.
report["recipe_file"] = "configs/" + report["recipe_file"].split("/configs/", 1)[-1]

# With the tiny model's calibration every expert gets hundreds of tokens, so a high threshold makes some starved:
# 5 experts (layers 1, 2, 3) have fewer than 3000.
report["starved_expert_min_tokens"] = 3000

exact = [0.931, 0.912, 0.884, 0.853]
overlap = [0.982, 0.977, 0.969, 0.961]
for layer, e, o in zip(report["per_layer"], exact, overlap):
    layer["router_agreement"] = {"exact": e, "mean_overlap": o, "tokens": report["calibration_tokens"]}
report["evaluation"]["router_agreement"] = {
    "exact": 0.902, "mean_overlap": 0.975,
    "per_layer": [{"exact": e - 0.01, "mean_overlap": o - 0.002} for e, o in zip(exact, overlap)]}


def grid(i):
    return (5 * i) / 100.0  # msModelSlim's grid value, as flex_grid_value computes it


def curve(choice):
    """Phase 1 over α with β = 1 − α, then phase 2 over β at the chosen α; lowest at the chosen point."""
    a0, b0, best = choice["alpha"], choice["beta"], choice["error"]
    err = lambda a, b: round(best * (1 + 0.8 * (a - a0) ** 2 + 0.5 * (b - b0) ** 2), 9)
    points = [{"alpha": grid(i), "beta": 1.0 - grid(i), "error": err(grid(i), 1.0 - grid(i))} for i in range(21)]
    points += [{"alpha": a0, "beta": grid(i), "error": err(a0, grid(i))} for i in range(21)]
    return points


# Curves for two layers: the page draws the one with the larger relative error (layer 3).
for index in (1, 3):
    for choice in report["per_layer"][index]["smoothing"].values():
        choice["search"] = curve(choice)

json.dump(report, sys.stdout, indent=2, ensure_ascii=False)
sys.stdout.write("\n")
