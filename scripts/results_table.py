"""The CMS-LapSRN poster's Table 1 layout from `python -m lapsrn_jax.evaluate --output` JSON files.

    python scripts/results_table.py --bicubic bicubic.json,bicubic_urban100.json --lapsrn \
lapsrn_x2.json,lapsrn_x4.json,lapsrn_x8.json --ms-lapsrn ms_d5r8.json --cms3 conv3.json

Each option takes comma-separated JSON files (e.g. one per set); a cell with no JSON shows
"not run". `--from-dir results/evaluate` takes every row's files from a folder by their names
(`bicubic*.json`, `lapsrn_x*.json`, `ms_d5r8*.json`; for CMS-LapSRN tie t the CPU recipe's
`cms_cpu_conv<t>_<set>.json` if any exist, else `cms_conv<t>.json`), and `--update RESULTS.md`
rewrites that file's table (from its header line to the next blank line) in place. `--gaps cms3`
prints (or updates) instead the CMS-LapSRN (3rd conv) row minus the poster's row and minus our
MS-LapSRN row, per cell.

Prints a Markdown table: rows = scale x model (Bicubic, LapSRN, MS-LapSRN, CMS-LapSRN 1st / 3rd /
5th conv, each CMS row labelled with the checkpoints its JSON scored, e.g. `cms_conv3_cpu@6000`),
columns = Set5, Set14, BSDS100, Urban100, Manga109; each cell `ours PSNR / SSIM (poster PSNR /
SSIM)`, the poster's numbers being the CMS-LapSRN poster's Table 1 (docs/evaluation_protocol.md).
"""

import argparse
import json
import pathlib

SETS = ("Set5", "Set14", "BSDS100", "Urban100", "Manga109")
ROWS = (("bicubic", "Bicubic"), ("lapsrn", "LapSRN (official weights)"),
        ("ms_lapsrn", "MS-LapSRN D5R8 (official weights)"), ("cms1", "CMS-LapSRN (1st conv), ours"),
        ("cms3", "CMS-LapSRN (3rd conv), ours"), ("cms5", "CMS-LapSRN (5th conv), ours"))
# The CMS-LapSRN poster's Table 1 (PSNR, SSIM) for the five sets of SETS
# (docs/evaluation_protocol.md).
POSTER = {
    2: {"bicubic": ((33.69, .931), (30.25, .870), (29.57, .844), (26.89, .841), (30.86, .936)),
        "lapsrn": ((37.24, .957), (32.78, .910), (31.78, .892), (30.60, .911), (36.73, .971)),
        "ms_lapsrn": ((36.76, .955), (32.57, .908), (31.38, .888), (29.59, .899), (36.16, .970)),
        "cms1": ((36.65, .954), (32.50, .906), (31.31, .886), (29.44, .895), (36.04, .967)),
        "cms3": ((36.88, .955), (32.61, .908), (31.44, .888), (29.61, .898), (36.31, .970)),
        "cms5": ((36.46, .954), (32.38, .905), (31.23, .885), (29.34, .894), (35.37, .968))},
    4: {"bicubic": ((28.43, .811), (26.01, .704), (25.97, .670), (23.15, .660), (24.93, .790)),
        "lapsrn": ((31.33, .884), (27.80, .769), (27.31, .724), (25.26, .757), (29.03, .886)),
        "ms_lapsrn": ((31.48, .885), (28.19, .771), (27.30, .726), (25.35, .761), (29.27, .890)),
        "cms1": ((31.44, .884), (28.20, .771), (27.31, .726), (25.36, .761), (29.26, .890)),
        "cms3": ((31.51, .884), (28.19, .770), (27.32, .726), (25.38, .762), (29.37, .891)),
        "cms5": ((31.52, .884), (28.19, .769), (27.31, .724), (25.29, .758), (29.17, .888))},
    8: {"bicubic": ((24.40, .658), (23.10, .566), (23.67, .548), (20.74, .516), (21.47, .650)),
        "lapsrn": ((26.19, .750), (24.29, .624), (24.61, .585), (21.97, .589), (23.72, .741)),
        "ms_lapsrn": ((26.39, .754), (24.66, .629), (24.61, .587), (22.09, .596), (23.87, .751)),
        "cms1": ((26.34, .753), (24.60, .627), (24.61, .587), (22.08, .596), (23.86, .751)),
        "cms3": ((26.40, .756), (24.68, .629), (24.60, .587), (22.12, .598), (23.92, .754)),
        "cms5": ((26.35, .753), (24.60, .627), (24.60, .586), (22.05, .594), (23.82, .749))},
}


def load(paths: str) -> dict:
  """`{(set, scale): (psnr, ssim)}` from comma-separated evaluate JSON files (first model each)."""
  out = {}
  for path in (p for p in paths.split(",") if p):
    with open(path) as f:
      for r in json.load(f)["results"]:
        out[(r["set"], int(r["scale"]))] = (r["psnr"], r["ssim"])
  return out


def model_names(paths: str) -> list:
  """The distinct `model` names in comma-separated evaluate JSON files, in order of appearance
  (for a training run of ours, `ours:<workdir>@<step>`: the checkpoint scored). Raises ValueError
  where one name was scored with different weights in different files (their `weights`
  fingerprints differ: a checkpoint trained again under the same name), so a row never mixes them
  unseen; results without a fingerprint (written before it was recorded) are not compared."""
  names, weights = [], {}
  for path in (p for p in paths.split(",") if p):
    with open(path) as f:
      for r in json.load(f)["results"]:
        if r["model"] not in names:
          names.append(r["model"])
        if r.get("weights"):
          seen = weights.setdefault(r["model"], (r["weights"], path))
          if seen[0] != r["weights"]:
            raise ValueError(f"{r['model']} has weights {seen[0]} in {seen[1]} but "
                             f"{r['weights']} in {path}: one row must come from one checkpoint")
  return names


def table(measured: dict, names: dict | None = None) -> str:
  """Markdown rows of `measured` (`{row key: load(...)}`); a CMS row's label names the models in
  `names` (`{row key: model_names(...)}`), e.g. `ours: cms_conv3_cpu@6000`."""
  lines = ["| Model | Scale | " + " | ".join(SETS) + " |", "|---|---|" + "---|" * len(SETS)]
  for scale in (2, 4, 8):
    for key, label in ROWS:
      if key.startswith("cms") and (names or {}).get(key):
        label += ": " + ", ".join(n.removeprefix("ours:") for n in names[key])
      cells = []
      for i, s in enumerate(SETS):
        p_psnr, p_ssim = POSTER[scale][key][i]
        got = measured.get(key, {}).get((s, scale))
        ours = f"**{got[0]:.2f}** / {got[1]:.4f}" if got else "not run"
        cells.append(f"{ours} ({p_psnr:.2f} / {p_ssim:.3f})")
      lines.append(f"| {label} | {scale}x | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def files_in(folder) -> dict:
  """`{row key: comma-separated JSON paths}` of a results folder, by the files' names."""
  folder = pathlib.Path(folder)
  names = lambda pattern: sorted(str(p) for p in folder.glob(pattern))
  rows = {"bicubic": names("bicubic*.json"), "lapsrn": names("lapsrn_x*.json"),
          "ms_lapsrn": names("ms_d5r8*.json")}
  for tie in (1, 3, 5):
    rows[f"cms{tie}"] = names(f"cms_cpu_conv{tie}_*.json") or names(f"cms_conv{tie}.json")
  return {key: ",".join(paths) for key, paths in rows.items()}


def gaps(measured: dict, key: str) -> str:
  """Markdown: CMS row `key`'s PSNR minus the poster's same row and minus our MS-LapSRN row, per
  set and scale, from the two-decimal values the table shows (✔ at or above the poster's row)."""
  label = dict(ROWS)[key].removesuffix(", ours")
  lines = [f"| {label}, ours, minus | Scale | " + " | ".join(SETS) + " |",
           "|---|---|" + "---|" * len(SETS)]
  for versus in ("poster", "ms_lapsrn"):
    for scale in (2, 4, 8):
      cells = []
      for i, s in enumerate(SETS):
        ours = measured.get(key, {}).get((s, scale))
        other = (POSTER[scale][key][i][0] if versus == "poster"
                 else (measured.get("ms_lapsrn", {}).get((s, scale)) or (None,))[0])
        if ours is None or other is None:
          cells.append("not run")
          continue
        gap = round(round(ours[0], 2) - round(other, 2), 2) + 0.0  # + 0.0: no "-0.00"
        mark = ("✔ " if gap >= -1e-9 else "✘ ") if versus == "poster" else ""
        cells.append(f"{mark}{gap:+.2f}".replace("-", "−"))
      name = "the poster's row" if versus == "poster" else "MS-LapSRN D5R8 (official weights)"
      lines.append(f"| {name} | {scale}x | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def update(path, text: str) -> None:
  """Replaces the table that starts with `text`'s header line in the Markdown file `path` (up to
  the next blank line)."""
  path = pathlib.Path(path)
  md = path.read_text()
  start = md.index(text.split("\n", 1)[0] + "\n")
  end = md.find("\n\n", start)
  path.write_text(md[:start] + text + (md[end:] if end >= 0 else "\n"))


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  for key, label in ROWS:
    parser.add_argument(f"--{key.replace('_', '-')}", default="", help=f"JSON(s) of {label}")
  parser.add_argument("--from-dir", help="take every row's JSON from this folder, by name")
  parser.add_argument("--gaps", choices=("cms1", "cms3", "cms5"),
                      help="print this CMS row's gaps to the poster and to MS-LapSRN instead")
  parser.add_argument("--update", help="rewrite the table in this Markdown file")
  args = parser.parse_args(argv)
  found = files_in(args.from_dir) if args.from_dir else {}
  paths = {key: getattr(args, key) or found.get(key, "") for key, _ in ROWS}
  measured = {key: load(p) for key, p in paths.items()}
  try:
    names = {key: model_names(p) for key, p in paths.items()}
  except ValueError as err:
    raise SystemExit(f"error: {err}") from err
  text = gaps(measured, args.gaps) if args.gaps else table(measured, names)
  print(text)
  if args.update:
    update(args.update, text)


if __name__ == "__main__":
  main()
