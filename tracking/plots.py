"""Static PNG plots of a run: alpha history, selection decisions, retrain curves, sweep objective.

Headless: figures are built with the `matplotlib.figure.Figure` API (no pyplot, no display,
no global backend switch), and matplotlib is imported only when a plot is drawn. Each function
writes one PNG to `path` (creating its folder) and returns `path`.
"""
import json
import math
import os

import numpy as np

DPI = 100
CELL_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:purple")  # per cell type, in order


# --- shared helpers ------------------------------------------------------------------------
def _figure(width, height, layout="constrained"):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout=layout)


def _save(fig, path):
    folder = os.path.dirname(os.fspath(path))
    if folder:
        os.makedirs(folder, exist_ok=True)
    fig.savefig(path, format="png", dpi=DPI)
    return path


def _message(path, title, text):
    """A small figure that only says `text` (empty inputs still give a valid PNG)."""
    fig = _figure(6, 2.5)
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.set_title(title)
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=14, transform=ax.transAxes)
    return _save(fig, path)


def _softmax(x):
    x = x - x.max(axis=-1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=-1, keepdims=True)


def _finite(v):
    """True for a finite real number (Python or numpy), False for None, NaN, strings."""
    if v is None or isinstance(v, (str, bytes, bool)):
        return False
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


# --- 1. alphas per search epoch ----------------------------------------------------------
def _edge_probs(alphas, space):
    """[cell type][edge] -> [epochs, ops of that edge]: softmax over the edge's real op columns."""
    return [[_softmax(alphas[:, t, e, :len(space.ops(t)[e])])
             for e in range(space.cell.num_edges)] for t in range(len(space.cell.types))]


def alpha_history(alphas, space, path):
    """softmax(alpha) of every edge over the search epochs: one small plot per (cell type, edge).

    alphas: [epochs, T, E, K] raw architecture parameters (`search/alphas.npz`, key 'alphas');
    row t is the space's cell type t. space: a `spaces.cell.SearchSpace` (or its name); edge e
    of a cell uses its first len(space.ops(cell)[e]) columns, any padding beyond them is ignored and
    the softmax is taken over the edge's real ops only. One colour per op name, one legend;
    one y range for all edges, fitted to the data (0..1 once the weights spread that far).
    """
    from spaces.cell import get_space

    if isinstance(space, str):
        space = get_space(space)
    cells, E = space.cell.types, space.cell.num_edges
    a = np.asarray(alphas, dtype=np.float64)
    if a.ndim != 4 or a.shape[1:3] != (len(cells), E):
        raise ValueError(f"alphas must have shape [epochs, {len(cells)}, {E}, K], not {a.shape}")
    need = max(len(ops) for c in cells for ops in space.ops(c))
    if a.shape[3] < need:
        raise ValueError(f"alphas have {a.shape[3]} op columns; space {space.name!r} needs {need}")
    if a.shape[0] == 0:
        return _message(path, f"alpha history ({space.name})", "no search epochs")

    names = list(dict.fromkeys(n for c in cells for ops in space.ops(c) for n in ops))
    palette = [f"C{i}" for i in range(10)] + ["black", "olive", "teal", "navy"]
    colour = {n: palette[i % len(palette)] for i, n in enumerate(names)}
    epochs = np.arange(1, a.shape[0] + 1)
    marker = "o" if a.shape[0] <= 12 else None
    cols = 7
    rows_per_cell = math.ceil(E / cols)
    # fixed margins: a constrained layout of 28 axes costs seconds
    fig = _figure(2.2 * cols, 1.7 * len(cells) * rows_per_cell + 0.8, layout=None)
    grid = fig.add_gridspec(len(cells) * rows_per_cell, cols, left=0.045, right=0.995, top=0.93,
                            bottom=0.1, hspace=0.5, wspace=0.12)
    probs = _edge_probs(a, space)
    # one y range for all edges, fitted to the data: short searches move alpha very little
    lo = min(float(p.min()) for row in probs for p in row)
    hi = max(float(p.max()) for row in probs for p in row)
    pad = max(0.08 * (hi - lo), 1e-4)
    ylim = (max(lo - pad, 0.0) if lo - pad > 0.02 else -0.02, min(hi + pad, 1.0)
            if hi + pad < 0.98 else 1.02)
    from matplotlib.ticker import MaxNLocator

    first = None
    for c, cell in enumerate(cells):
        for e, (node, inp) in enumerate(space.cell.edges):
            ops = space.ops(cell)[e]
            ax = fig.add_subplot(grid[c * rows_per_cell + e // cols, e % cols],
                                 sharex=first, sharey=first)
            if first is None:
                first = ax
            p = probs[c][e]
            for k, name in enumerate(ops):
                ax.plot(epochs, p[:, k], color=colour[name], marker=marker, markersize=2.5,
                        linewidth=1.2)
            # a plain text, not set_title: placing 28 titles measures every axis (slow)
            ax.text(0.5, 1.03, f"{cell} e{e}: {inp}\u2192{node}", fontsize=8, ha="center",
                    va="bottom", transform=ax.transAxes)
            ax.set_ylim(*ylim)
            ax.xaxis.set_major_locator(MaxNLocator(4, integer=True))
            ax.yaxis.set_major_locator(MaxNLocator(3))
            left, bottom = e % cols == 0, e + cols >= E
            ax.tick_params(labelsize=7, labelleft=left, labelbottom=bottom)
            ax.grid(alpha=0.3)
            if left:
                ax.set_ylabel("softmax(\u03b1)", fontsize=7)
            if bottom and c == len(cells) - 1:
                ax.set_xlabel("search epoch", fontsize=7)
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=colour[n], marker=marker, markersize=4) for n in names]
    fig.legend(handles, names, loc="lower center", ncols=min(len(names), 8), fontsize=9)
    fig.suptitle(f"architecture weights per search epoch ({space.name}, {a.shape[0]} epochs)")
    return _save(fig, path)


# --- 2. selection decisions --------------------------------------------------------------
def _record(rec):
    """A decision record; rows of `records_table` (JSON strings) are decoded back."""
    rec = dict(rec)
    for key in ("candidates", "scores", "chosen"):
        if isinstance(rec.get(key), str):
            try:
                rec[key] = json.loads(rec[key])
            except ValueError:
                pass
    return rec


def _candidate_scores(rec):
    """[(label, value, chosen, metric)] for one decision; metric is 'acc' or 'weight'.

    op: one entry per candidate op with masked accuracy (PT) or softmax weight (magnitude);
    candidates PT did not score (`none` when excluded) are left out. topology: one entry per
    input edge with its magnitude strength, or for PT its masked accuracy in the first
    elimination round (the only one in which every input edge is measured).
    """
    out = []
    if rec["kind"] == "op":
        for name, s in zip(rec["candidates"], rec["scores"]):
            if not s:
                continue
            metric = "acc" if "acc" in s else "weight"
            out.append((name, s.get(metric), name == rec["chosen"], metric))
        return out
    kept = {int(e) for e in rec["chosen"]}
    scores = rec["scores"]
    if scores and "edge" in scores[0]:  # magnitude: [{"edge", "weight"}]
        return [(f"e{s['edge']}", s["weight"], int(s["edge"]) in kept, "weight")
                for s in scores]
    if scores:  # perturbation: elimination rounds [{"scores": {edge: {...}}, "dropped"}]
        return [(f"e{e}", s.get("acc"), int(e) in kept, "acc")
                for e, s in scores[0]["scores"].items()]
    return [(f"e{e}", None, int(e) in kept, "acc") for e in rec["candidates"]]


def _cell_colours(recs, cell_types):
    """Cell type name -> colour, in the space's order (else in order of appearance)."""
    names = list(cell_types or dict.fromkeys(r["cell"] for r in recs))
    return {n: CELL_COLOURS[i % len(CELL_COLOURS)] for i, n in enumerate(names)}


def decision_timeline(records, path, cell_types=None):
    """Candidate scores per selection decision, in decision order, the chosen ones marked.

    records: the decision dicts of `runner.selection.select.select` (or
    `selection/decisions.json`, or rows of `records_table`). Top: each candidate's masked accuracy (perturbation) or softmax
    weight (magnitude) per decision; hollow circles are candidates, filled stars the kept op
    or edges; one colour per cell type (`cell_types`, the space's order). Bottom (when any is
    finite): the supernet's valid accuracy after each round's tuning and, on a family with a
    benchmark, the benchmark test accuracy of the cell each decision state gives.
    """
    recs = [_record(r) for r in records]
    if not recs:
        return _message(path, "selection decisions", "no decisions")
    colours = _cell_colours(recs, cell_types)
    entries = [_candidate_scores(r) for r in recs]
    metrics = {m for es in entries for *_, m in es}
    after = [r.get("valid_acc_after") for r in recs]
    bench = [r.get("bench_test_acc") for r in recs]
    has_after = any(_finite(v) for v in after + bench)
    fig = _figure(max(8.0, 0.32 * len(recs) + 2), 6.5 if has_after else 4.5)
    axes = fig.subplots(2 if has_after else 1, 1, sharex=True, squeeze=False,
                        height_ratios=[2, 1] if has_after else None)[:, 0]
    ax = axes[0]
    x = np.arange(len(recs))
    for i, (rec, es) in enumerate(zip(recs, entries)):
        col = colours.get(rec["cell"], "gray")
        for _, v, chosen, _ in es:
            if not _finite(v):
                continue
            if chosen:
                ax.scatter(i, v, marker="*", s=110, color=col, edgecolors="black",
                           linewidths=0.5, zorder=3)
            else:
                ax.scatter(i, v, marker="o", s=22, facecolors="none", edgecolors=col, zorder=2)
    first_topo = next((i for i, r in enumerate(recs) if r["kind"] == "topology"), None)
    for a in axes:
        a.grid(alpha=0.3)
        if first_topo is not None and first_topo > 0:
            a.axvline(first_topo - 0.5, color="gray", linestyle=":", linewidth=1)
    if first_topo is not None:
        ax.text(first_topo - 0.4, 1.0, "topology \u2192", transform=ax.get_xaxis_transform(),
                fontsize=8, va="bottom", color="gray")
    ylabel = {"acc": "masked accuracy (%)", "weight": "softmax weight"}
    ax.set_ylabel(" / ".join(ylabel[m] for m in sorted(metrics)) or "score")
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], marker="o", linestyle="", markerfacecolor="none",
                      markeredgecolor="gray", label="candidate"),
               Line2D([], [], marker="*", linestyle="", markersize=10, color="gray",
                      markeredgecolor="black", label="chosen")]
    handles += [Line2D([], [], marker="s", linestyle="", color=c, label=n)
                for n, c in colours.items()]
    ax.legend(handles=handles, fontsize=8, loc="best")
    what = {"acc": "masked accuracy (op or edge removed)", "weight": "softmax weight"}
    ax.set_title("selection decisions: " + " / ".join(what[m] for m in sorted(metrics))
                 + " per candidate")
    if has_after:
        for values, colour, label in ((after, "tab:green", "supernet valid acc after tune"),
                                      (bench, "tab:purple", "benchmark test acc of the cell")):
            if any(_finite(v) for v in values):
                axes[1].plot(x, [v if _finite(v) else np.nan for v in values], marker="o",
                             markersize=3, color=colour, label=label)
        axes[1].set_ylabel("accuracy (%)")
        axes[1].legend(fontsize=7, loc="best")
    labels = [f"{r['cell'][0].upper()} {'e' if r['kind'] == 'op' else 'n'}{r['where']}"
              for r in recs]
    axes[-1].set_xticks(x, labels, rotation=90, fontsize=7)
    cells = ", ".join(f"{n[0].upper()} = {n}" for n in colours)
    axes[-1].set_xlabel(f"decision ({cells} cell; e = edge op, n = node inputs)")
    return _save(fig, path)


def _selector_lines(lines, path, xlabel, ylabel, title=None, height=4.0, markersize=None):
    """One line per selector: lines = {selector: (xs, ys)}, in legend order."""
    fig = _figure(6.5, height)
    ax = fig.add_subplot()
    for i, (sel, (xs, ys)) in enumerate(lines.items()):
        ax.plot(xs, ys, marker="o", markersize=markersize, color=f"C{i}", label=sel)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def selection_trajectory(rows, path):
    """Benchmark test accuracy of the selected cell against the supernet epoch it was
    selected from, one line per selector (paper Figure 4). rows: dicts with supernet_epoch,
    selector and (when the benchmark was looked up) test_acc."""
    rows = [r for r in rows if _finite(r.get("test_acc"))]
    if not rows:
        return _message(path, "selection over supernet epochs", "no benchmark lookups")
    lines = {}
    for sel in dict.fromkeys(r["selector"] for r in rows):
        pts = sorted((r["supernet_epoch"], r["test_acc"]) for r in rows if r["selector"] == sel)
        lines[sel] = ([p[0] for p in pts], [p[1] for p in pts])
    return _selector_lines(lines, path, "supernet search epoch", "benchmark test accuracy (%)",
                           "selected cell over supernet training", height=4.2)


def selection_curves(series, path):
    """The supernet's valid accuracy after each decision, one line per selector (paper
    Figure 6). series: {selector: [accuracy after decision 0, 1, ...]}."""
    series = {k: v for k, v in series.items() if any(_finite(x) for x in v)}
    if not series:
        return _message(path, "valid accuracy after each decision", "no fine-tuning logged")
    return _selector_lines({k: (range(len(v)), v) for k, v in series.items()}, path,
                           "decision", "supernet valid accuracy after tuning (%)", markersize=3)


def shuffling_bars(rows, path):
    """Test accuracy before and after shuffling, mean ± std over the draws, per model
    (paper Table 1 as a figure). rows: dicts with model, before, after_mean, after_std."""
    if not rows:
        return _message(path, "edge shuffling", "no models")
    fig = _figure(5.5, 3.8)
    ax = fig.add_subplot()
    x = np.arange(len(rows))
    ax.bar(x - 0.2, [r["before"] for r in rows], 0.4, color="tab:blue", label="before")
    std = [r["after_std"] if _finite(r["after_std"]) else 0.0 for r in rows]
    ax.bar(x + 0.2, [r["after_mean"] for r in rows], 0.4, yerr=std, capsize=3,
           color="tab:orange", label="after shuffling")
    ax.set_xticks(x, [r["model"] for r in rows])
    ax.set_ylabel("test accuracy (%)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    return _save(fig, path)


def discretisation_bars(rows, cell, path):
    """Per edge, softmax(alpha) and discretisation accuracy at convergence of each op, side by
    side (paper Figures 1 and 7). rows: dicts with edge, op, alpha, disc_acc."""
    edges = list(dict.fromkeys(r["edge"] for r in rows))
    if not edges:
        return _message(path, "discretisation accuracy", "no edges")
    cols = min(len(edges), 4)
    fig = _figure(3.4 * cols, 3.0 * -(-len(edges) // cols))
    axes = np.atleast_1d(fig.subplots(-(-len(edges) // cols), cols, squeeze=False)).ravel()
    for ax, e in zip(axes, edges):
        rs = [r for r in rows if r["edge"] == e]
        x = np.arange(len(rs))
        ax.bar(x - 0.2, [r["alpha"] for r in rs], 0.4, color="tab:blue", label="softmax(alpha)")
        ax.set_ylabel("softmax(alpha)", color="tab:blue", fontsize=8)
        acc = ax.twinx()
        acc.bar(x + 0.2, [r["disc_acc"] for r in rs], 0.4, color="tab:orange",
                label="discretisation acc")
        acc.set_ylabel("valid acc (%)", color="tab:orange", fontsize=8)
        ax.set_xticks(x, [r["op"] for r in rs], rotation=60, fontsize=7, ha="right")
        ax.set_title(f"{cell} edge {e}", fontsize=9)
    for ax in axes[len(edges):]:
        ax.set_axis_off()
    return _save(fig, path)


def skip_gap_vs_accuracy(rows, path):
    """mean(alpha_skip - alpha_conv) against the supernet's valid accuracy, one point per
    search epoch, coloured by epoch (paper Figure 3)."""
    if not rows:
        return _message(path, "alpha_skip - alpha_conv", "no epochs")
    fig = _figure(5.5, 4.0)
    ax = fig.add_subplot()
    acc = [r["valid_acc"] for r in rows]
    gap = [r["skip_minus_conv"] for r in rows]
    ax.plot(acc, gap, color="lightgray", zorder=1)
    dots = ax.scatter(acc, gap, c=[r["epoch"] for r in rows], cmap="viridis", zorder=2)
    fig.colorbar(dots, ax=ax, label="search epoch")
    ax.set_xlabel("supernet valid accuracy (%)")
    ax.set_ylabel("mean softmax(alpha): skip - conv")
    ax.grid(alpha=0.3)
    return _save(fig, path)


# --- 3. retrain curves -------------------------------------------------------------------
def _pairs(values):
    """(steps, values) from (step, value) pairs or MLflow Metric objects, sorted by step."""
    pts = [(m.step, m.value) if hasattr(m, "step") else tuple(m) for m in values]
    pts.sort(key=lambda p: p[0])
    return [p[0] for p in pts], [float(p[1]) for p in pts]


def retrain_curves(history, path):
    """Accuracy metrics on one axis, losses on another (and the learning rate when logged).

    history: metric name -> [(step, value)] (or MLflow `Metric`s), e.g. 'retrain/train_acc',
    'retrain/test_acc', 'retrain/train_loss', 'retrain/test_loss', 'retrain/lr'. A metric is
    an accuracy when its last name part contains 'acc', a loss when it contains 'loss', the
    learning rate when it is 'lr'; other metrics (seconds, params_M) are not drawn.
    """
    groups = {"acc": [], "loss": [], "lr": []}
    for name in sorted(history):
        short = name.rsplit("/", 1)[-1]
        kind = "acc" if "acc" in short else "loss" if "loss" in short else short
        if kind in groups and len(history[name]):
            groups[kind].append(name)
    panels = [("acc", "accuracy (%)"), ("loss", "loss")] + ([("lr", "learning rate")]
                                                           if groups["lr"] else [])
    from matplotlib.ticker import MaxNLocator

    fig = _figure(5 * len(panels), 4)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (kind, label) in zip(axes, panels):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))  # epochs
        for name in groups[kind]:
            steps, vals = _pairs(history[name])
            ax.plot(steps, vals, marker="o" if len(steps) <= 30 else None, markersize=3,
                    label=name)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if groups[kind]:
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    fig.suptitle("training curves")
    return _save(fig, path)


# --- 4. hyperparameter sweep --------------------------------------------------------------
def sweep_objective(trials, path, objective="value"):
    """Objective against each hyperparameter of a sweep, completed trials only.

    trials: `optuna.Study.trials_dataframe()` (columns number, value, state, params_<name>).
    One subplot per params_* column: numeric parameters on a linear axis (log when positive
    and spanning over two decades), others (categorical, bool) at category positions. Points
    are coloured by trial number.
    """
    if len(trials) == 0:  # a study without trials has no columns at all
        return _message(path, "sweep", "no completed trials")
    if objective not in trials.columns:
        raise ValueError(f"no column {objective!r} in the trials; columns: {list(trials.columns)}")
    df = trials
    if "state" in df.columns:
        df = df.loc[df["state"].map(lambda s: str(s).rsplit(".", 1)[-1] == "COMPLETE")
                    .astype(bool)]
    df = df.loc[df[objective].map(_finite).astype(bool)]  # astype: an empty map is object
    params = [c for c in trials.columns if str(c).startswith("params_")]
    if not params:
        return _message(path, "sweep", "no params_* columns")
    if df.empty:
        return _message(path, "sweep", "no completed trials")
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    cols = min(len(params), 3)
    rows = math.ceil(len(params) / cols)
    fig = _figure(4.2 * cols + 0.8, 3.4 * rows)
    axes = fig.subplots(rows, cols, squeeze=False, sharey=True).ravel()
    number = df["number"] if "number" in df.columns else np.arange(len(df))
    norm = (float(np.min(number)), float(max(np.max(number), np.min(number) + 1)))
    sc = None
    for ax, col in zip(axes, params):
        sub = df[df[col].notna()]
        xs, ys, cs = sub[col], sub[objective].astype(float), np.asarray(number)[df[col].notna()]
        if is_numeric_dtype(xs) and not is_bool_dtype(xs):
            xs = xs.astype(float)
            if len(xs) and xs.min() > 0 and xs.max() / xs.min() > 100:
                ax.set_xscale("log")
        else:
            cats = sorted({str(v) for v in xs})
            xs = xs.map(lambda v: cats.index(str(v)))
            ax.set_xticks(range(len(cats)), cats, rotation=30 if len(cats) > 3 else 0,
                          fontsize=8)
            ax.set_xlim(-0.5, len(cats) - 0.5)
        sc = ax.scatter(xs, ys, c=cs, cmap="viridis", vmin=norm[0], vmax=norm[1], s=25,
                        edgecolors="black", linewidths=0.3)
        ax.set_xlabel(col[len("params_"):])
        ax.grid(alpha=0.3)
    for ax in axes[: len(params): cols]:
        ax.set_ylabel(objective)
    for ax in axes[len(params):]:
        ax.set_axis_off()
    fig.colorbar(sc, ax=axes[: len(params)].tolist(), label="trial number")
    fig.suptitle(f"{objective} per hyperparameter ({len(df)} completed trials)")
    return _save(fig, path)
