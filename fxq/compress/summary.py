"""The compression section of report.md and of `fxq compress`'s output, from its JSON."""
from __future__ import annotations

from typing import Any


def _kbit(bits: int) -> str:
    return f"{bits / 8192:.1f} KiB"


def markdown(doc: dict[str, Any]) -> list[str]:
    """Lines of markdown for a Compressed.to_json() (with compile's "fixed" storage when
    present)."""
    before, after = doc["before"], doc["after"]
    tb, ta = before["total"], after["total"]
    lines = [f"Compression (post-training, on the calibration data): {len(doc['changes'])} "
             "layers changed", ""]
    lines += [f"- {c['layer']}: {c['what']}" for c in doc["changes"]]
    b = doc.get("budget") or {}
    if b:
        steps = ", ".join(f"{t['prune']:.4g}: {t['loss_points']:+.2f}" for t in b["tried"])
        lines += ["", f"Budget {b['budget_points']} points on the calibration data: prune "
                  f"{b['chosen_prune']} chosen (tried, with their loss in points: {steps})"]
    chosen = (doc.get("ranks") or {}).get("chosen")
    if chosen:
        lines += ["", "Ranks for the weights kept (rank_params; a shared target from the "
                  "layers' sensitivity curves): " +
                  ", ".join(f"{k} {v}" for k, v in chosen.items())]
    q = doc.get("quality") or {}
    if q:
        lines += ["", f"{q['task']} on {q['samples']} labelled calibration samples: float "
                  f"{q['float']:.4f}, compressed float {q['compressed']:.4f}"]
    lines += ["", f"Parameters {tb['params']} -> {ta['params']}, nonzero {tb['nonzeros']} -> "
              f"{ta['nonzeros']}, MACs per sample {tb['macs']} -> {ta['nonzero_macs']} "
              "(with a nonzero weight)", "",
              "| layer | weights | nonzero | dense | pruned | shared | Huffman |"
              + (" fixed point |" if doc.get("fixed") else ""),
              "|---|---|---|---|---|---|---|" + ("---|" if doc.get("fixed") else "")]
    fixed = {l["layer"]: l for l in (doc.get("fixed") or {}).get("layers", [])}
    for l in after["layers"]:
        cells = [l["layer"], str(l["params"]), str(l["nonzeros"])] + \
            [_kbit(l[k]) for k in ("dense_bits", "pruned_bits", "shared_bits", "huffman_bits")]
        if fixed:
            cells.append(_kbit(fixed[l["layer"]]["huffman_bits"]) if l["layer"] in fixed else "")
        lines.append("| " + " | ".join(cells) + " |")
    dense = tb["dense_bits"]
    total = [f"total: float32 dense {_kbit(dense)}"] + \
        [f"{k} {_kbit(ta[k + '_bits'])} ({dense / max(ta[k + '_bits'], 1):.1f}x)"
         for k in ("pruned", "shared", "huffman")]
    if doc.get("fixed"):
        f = doc["fixed"]["total"]["huffman_bits"]
        total.append(f"fixed point, Huffman-coded {_kbit(f)} ({dense / max(f, 1):.1f}x)")
    lines += ["", ", ".join(total) + " (against the float32 model as given)"]
    return lines
