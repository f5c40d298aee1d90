"""A visual report of one results.json: `rmkit eval <benchmark> ... --report DIR`, or

    from rmkit.evaluate.report import write_report
    paths = write_report(results, "report/")

writes DIR/summary.md (score, sections and subsets with 95% intervals, length diagnostics),
DIR/sections.png (section bars with interval whiskers), DIR/rewards.png (chosen vs rejected reward
distributions), DIR/reward_vs_length.png, DIR/length_buckets.png (accuracy by length-ratio bucket)
and DIR/report.html, one self-contained page with the PNGs embedded as base64. Matplotlib runs on
the Agg backend (no display needed). No torch.
"""
from __future__ import annotations

import base64
import html
import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from rmkit.data.io import atomic_path


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _pct(x: Any) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}"


def _ci(iv: Any) -> str:
    return f"[{_pct(iv[0])}, {_pct(iv[1])}]" if iv else ""


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    _plt().close(fig)
    return path


def plot_sections(results: Mapping[str, Any], path: Path) -> Path:
    """Horizontal bars: the overall score and each section, with 95% interval whiskers."""
    plt = _plt()
    names = ["Overall", *results["sections"]]
    vals = [results["score"], *results["sections"].values()]
    ivs = [results["intervals"]["score"], *(results["intervals"]["sections"].get(s, [v, v])
                                            for s, v in results["sections"].items())]
    lo = [max(0.0, v - (iv[0] if iv[0] is not None else v)) for v, iv in zip(vals, ivs)]
    hi = [max(0.0, (iv[1] if iv[1] is not None else v) - v) for v, iv in zip(vals, ivs)]
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(names) + 1.2))
    colors = ["#2b6cb0"] + ["#90cdf4"] * (len(names) - 1)
    ax.barh(names[::-1], vals[::-1], xerr=[lo[::-1], hi[::-1]], color=colors[::-1], capsize=3)
    ax.set_xlim(0, 1)
    ax.set_xlabel("score (95% bootstrap interval)")
    ax.set_title(f"{results.get('benchmark', '')} — {results.get('model', '')}")
    return _save(fig, path)


def plot_rewards(view: Mapping[str, list], path: Path) -> Path:
    """Overlaid histograms of chosen and rejected rewards."""
    plt = _plt()
    c, r = (np.asarray(view[k], float) for k in ("chosen_reward", "rejected_reward"))
    c, r = c[~np.isnan(c)], r[~np.isnan(r)]
    fig, ax = plt.subplots(figsize=(7, 4))
    both = np.concatenate([c, r]) if c.size + r.size else np.zeros(1)
    bins = np.histogram_bin_edges(both, bins=min(40, max(5, both.size // 4)))
    ax.hist(c, bins=bins, alpha=0.6, label=f"chosen (n={c.size})", color="#38a169")
    ax.hist(r, bins=bins, alpha=0.6, label=f"rejected (n={r.size})", color="#e53e3e")
    ax.set_xlabel("reward")
    ax.set_ylabel("responses")
    ax.legend()
    ax.set_title("Chosen vs rejected rewards")
    return _save(fig, path)


def plot_reward_vs_length(view: Mapping[str, list], diagnostics: Mapping[str, Any], path: Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    for kind, color in (("chosen", "#38a169"), ("rejected", "#e53e3e")):
        ax.scatter(view[f"{kind}_len"], view[f"{kind}_reward"], s=8, alpha=0.5, color=color, label=kind)
    corr = diagnostics.get("reward_length_correlation", {})
    rho = corr.get("spearman", {}).get("value")
    ax.set_xscale("symlog")
    ax.set_xlabel("response length (characters)")
    ax.set_ylabel("reward")
    ax.set_title(f"Reward vs length (Spearman ρ = {rho:.2f})" if rho is not None and rho == rho
                 else "Reward vs length")
    ax.legend()
    return _save(fig, path)


def plot_length_buckets(diagnostics: Mapping[str, Any], path: Path) -> Path:
    plt = _plt()
    rows = diagnostics.get("length_buckets", [])
    fig, ax = plt.subplots(figsize=(7, 3.6))
    labels = [f"{r['bucket']}\n(n={r['n']})" for r in rows]
    acc = [r["accuracy"] if r["n"] else 0.0 for r in rows]
    err = [[max(0.0, a - (r["interval"][0] or a)) if r["n"] else 0 for a, r in zip(acc, rows)],
           [max(0.0, (r["interval"][1] or a) - a) if r["n"] else 0 for a, r in zip(acc, rows)]]
    ax.bar(range(len(rows)), acc, yerr=err, color="#805ad5", capsize=3)
    ax.set_xticks(range(len(rows)), labels, fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.set_title("Accuracy by length of chosen relative to rejected")
    return _save(fig, path)


def summary_markdown(results: Mapping[str, Any], images: Mapping[str, str]) -> str:
    iv = results["intervals"]
    lines = [f"# {results.get('benchmark', 'benchmark')}: {results.get('model', '?')}", "",
             f"**Score {_pct(results['score'])}** (95% CI {_ci(iv['score'])}), "
             f"{results.get('n_items', len(results.get('items', [])))} items.", "",
             "| section | score | 95% CI |", "|---|---:|---|"]
    lines += [f"| {s} | {_pct(v)} | {_ci(iv['sections'].get(s))} |" for s, v in results["sections"].items()]
    if set(results.get("subsets", {})) != set(results["sections"]):
        lines += ["", "| subset | n | score | 95% CI |", "|---|---:|---:|---|"]
        lines += [f"| {s} | {v['n']} | {_pct(v.get('score', v.get('accuracy')))} | "
                  f"{_ci(iv.get('subsets', {}).get(s))} |" for s, v in results["subsets"].items()]
    lines += ["", *_extra_markdown(results), *_diagnostics_markdown(results.get("diagnostics", {}))]
    lines += ["", *(f"![{k}]({v})" for k, v in images.items()), ""]
    return "\n".join(lines)


def _extra_markdown(results: Mapping[str, Any]) -> list[str]:
    from rmkit.evaluate.common import partial_note

    out = [f"**{partial_note(results)}**"] if partial_note(results) else []
    if "levels" in results:  # RM-Bench
        lv = results["levels"]
        doms = list(lv["domains"])
        out += ["| level | overall | 95% CI | " + " | ".join(doms) + " |",
                "|---|---:|---|" + "---:|" * len(doms)]
        out += [f"| {k} | {_pct(v)} | {_ci(lv['intervals'][k]['overall'])} | "
                + " | ".join(_pct(lv["domains"][d][k]) for d in doms) + " |" for k, v in lv["overall"].items()]
    if "judge" in results:  # a generative judge: its protocol and its behaviour across answer orders
        out += _judge_markdown(results["judge"])
    if "ties_components" in results:  # RewardBench 2
        out += ["Ties terms: " + ", ".join(f"{k} {v:.3f}" for k, v in results["ties_components"].items())]
    if results.get("ties", {}).get("n"):
        t = results["ties"]
        out += [f"Tie-labelled pairs: {t['n']}. The score is Auto-J's official agreement over all rows "
                "(ties included; a tie predicted only on equal rewards)."]
        if "non_tie_accuracy" in results:
            nt = results["non_tie_accuracy"]
            out += [f"Accuracy on the non-tie rows only (not the official figure): {_pct(nt['score'])} "
                    f"{_ci(nt['intervals']['score'])}."]
    return [*out, ""] if out else out


def _judge_markdown(j: Mapping[str, Any]) -> list[str]:
    out = ["## The judge", "", f"{j['model']}, {j['protocol']}; answers up to {j['max_tokens']} tokens.", "",
           "| | value | 95% CI |", "|---|---:|---|"]
    for key, name in (("picks_first", "picks the answer shown first"), ("consistency", "same answer in both orders")):
        if j.get(key) is not None:
            out.append(f"| {name} | {_pct(j[key])} | {_ci(j[f'{key}_interval'])} |")
    for key, name in (("unparseable", "unparseable verdicts (the benchmark's rule)"),
                      ("failed_requests", "failed requests (counted as unparseable)")):
        if key in j:
            out.append(f"| {name} | {j[key]} | |")
    for name, v in (j.get("orders") or {}).items():
        out.append(f"| score, {name} | {_pct(v['score'])} | |")
    return [*out, ""]


def _diagnostics_markdown(d: Mapping[str, Any]) -> list[str]:
    if not d:
        return []
    base, corr = d["length_baseline"], d["reward_length_correlation"]
    out = ["## Length diagnostics", "",
           f"- agrees with the length baseline on {_pct(base['agreement'])}% "
           f"{_ci(base['agreement_interval'])} of {base['n_pairs_differing_in_length']} pairs "
           f"(the length baseline itself scores {_pct(base['length_baseline_accuracy'])})",
           f"- reward vs length: Pearson {corr['pearson']['value']:.2f}, Spearman "
           f"{corr['spearman']['value']:.2f}; reward margin vs length margin "
           f"{corr['margin_pearson']['value']:.2f}", "",
           "| chosen vs rejected length | n | accuracy | 95% CI |", "|---|---:|---:|---|"]
    out += [f"| {r['bucket']} | {r['n']} | {_pct(r['accuracy'])} | {_ci(r['interval'] if r['n'] else None)} |"
            for r in d["length_buckets"]]
    return out


def _html(markdown: str, pngs: Mapping[str, Path]) -> str:
    """A minimal self-contained page: the markdown's tables and text, then the embedded images."""
    body, table = [], []
    for line in markdown.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if not all(set(c) <= set("-:") for c in cells):
                tag = "th" if not table else "td"
                table.append("<tr>" + "".join(f"<{tag}>{html.escape(c)}</{tag}>" for c in cells) + "</tr>")
            continue
        if table:
            body.append("<table>" + "".join(table) + "</table>")
            table = []
        if line.startswith("!["):
            continue
        if line.startswith("#"):
            level = min(3, len(line) - len(line.lstrip("#")))
            body.append(f"<h{level}>{html.escape(line.lstrip('# '))}</h{level}>")
        elif line.strip():
            body.append(f"<p>{html.escape(line).replace('**', '')}</p>")
    if table:
        body.append("<table>" + "".join(table) + "</table>")
    for name, p in pngs.items():
        data = base64.b64encode(Path(p).read_bytes()).decode("ascii")
        body.append(f'<figure><img alt="{name}" src="data:image/png;base64,{data}"/></figure>')
    style = ("body{font-family:sans-serif;max-width:900px;margin:2em auto}table{border-collapse:"
             "collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px}img{max-width:100%}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>rmkit report</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>")


def write_report(results: Mapping[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """Write the markdown summary, the PNG plots and the self-contained HTML page; return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    view, diag = results.get("pair_view") or {}, results.get("diagnostics") or {}
    pngs = {"sections": plot_sections(results, out / "sections.png")}
    if view and view.get("chosen_reward"):
        pngs["rewards"] = plot_rewards(view, out / "rewards.png")
        pngs["reward_vs_length"] = plot_reward_vs_length(view, diag, out / "reward_vs_length.png")
    if diag:
        pngs["length_buckets"] = plot_length_buckets(diag, out / "length_buckets.png")
    md = summary_markdown(results, {k: p.name for k, p in pngs.items()})
    paths = {"summary": out / "summary.md", "html": out / "report.html", **pngs}
    for key, text in (("summary", md), ("html", _html(md, pngs))):
        with atomic_path(paths[key]) as tmp:
            Path(tmp).write_text(text, encoding="utf-8")
    return paths
