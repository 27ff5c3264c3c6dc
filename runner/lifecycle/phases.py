"""The phases the run modes are made of: the supernet trained or loaded, selection, retrain,
and what each logs."""
import functools
import glob
import os
import tempfile

import gin
import numpy as np

from runner.config import flat_bindings
from runner.lifecycle.environment import seed_everything
from runner.selection.lookup import log_final
from runner.selection.select import records_table
from runner.training import checkpoint, distributed, export
from runner.training.retrain import retrain
from tracking import plots


@gin.configurable(denylist=["space", "num_classes", "in_channels"])
def supernet(space, num_classes, in_channels, C=16, layers=8, alpha_init_std=1e-3):
    """The search supernet of the space's family (DARTS: C=16, 8 cells, darts-pt's defaults).

    alpha_init_std 0 starts every edge at uniform mixing weights."""
    return space.family.supernet(space, alpha_init_std, C=C, layers=layers,
                                 num_classes=num_classes, in_channels=in_channels)


def log_config(tracker, gin_files, bindings):
    for path in gin_files:
        tracker.artifact(path, "config")
    tracker.text("\n".join(bindings) + "\n", "config/bindings.gin")
    tracker.params(flat_bindings())


def log_selection(tracker, records, genotype, space, num_classes):
    import pandas as pd

    rows = records_table(records)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "decisions.csv")
        pd.DataFrame(rows).to_csv(path, index=False)
        tracker.artifact(path, "selection")
    tracker.json(records, "selection/decisions.json")
    timeline = functools.partial(plots.decision_timeline, cell_types=space.cell.types)
    tracker.plot(timeline, records, name="decisions.png")
    log_genotype(tracker, genotype, space, num_classes)


def log_genotype(tracker, genotype, space, num_classes):
    tracker.text(genotype.to_json(), "genotype.json")
    tracker.text(str(genotype) + "\n", "genotype.txt")
    tracker.tags({"genotype": str(genotype)})
    size = space.family.param_size(genotype, num_classes)
    tracker.ensure_logged({"genotype/param_size_M": size / 1e6,
                           "genotype/skip_count": genotype.count("skip_connect")}, step=0)


def saved(out, phase):
    """The checkpoint a killed run left for `phase`, or None."""
    path = os.path.join(out, f"{phase}.pt")
    return checkpoint.load(path) if os.path.exists(path) else None


def new_supernet(p):
    return supernet(p.space, p.data.num_classes, p.data.in_channels).to(p.device)


def trained_supernet(p):
    """This run's supernet: searched (or, after a kill, searched on from its checkpoint), with
    the alphas per epoch and the checkpoint logged; a killed selection's supernet comes back
    from the selection checkpoint instead (`resume_selection`)."""
    net = new_supernet(p)
    tracker, out = p.tracker, p.out
    ckpt = os.path.join(out, "search.pt")
    alphas = p.search(net, p.method, p.data, tracker, p.gen, ckpt,
                      distributed.decide(lambda: saved(out, "search")), p.mode)
    if not distributed.is_main():  # rank 0 writes the files and logs them
        return net
    alpha_path = os.path.join(out, "alphas.npz")
    np.savez_compressed(alpha_path, alphas=alphas, cells=np.array(net.space.cell.types))
    tracker.artifact(alpha_path, "search")
    tracker.plot(plots.alpha_history, alphas, net.space, name="alpha_history.png")
    for snapshot in sorted(glob.glob(os.path.join(out, "search_epoch*.pt"))):
        tracker.artifact(snapshot, "search")  # search.keep_every; after a resume too
    if not os.path.exists(ckpt):  # zero search epochs: still leave the supernet to select from
        checkpoint.save({"epoch": 0, "meta": checkpoint.meta(net, p.method),
                         "net": net.state_dict(), "method": p.method.state_dict()}, ckpt)
    tracker.artifact(ckpt, "search")
    return net


def loaded_supernet(p):
    """The supernet another run trained (`source.run`), after its search epoch
    `source.epoch` (a `search.keep_every` snapshot) or at its end."""
    net, run_id, epoch = new_supernet(p), p.source.run, p.source.epoch
    name = "search.pt" if epoch is None else f"search_epoch{epoch}.pt"
    # torchrun: rank 0 reads the tracking store, every rank gets the state
    state = distributed.decide(lambda: fetch_supernet(p.tracker, run_id, name, p.out, p.device))
    trained = state.get("meta", {}).get("space", net.space.name)
    if trained != net.space.name:  # another method may select from it; another space may not
        raise checkpoint.CheckpointError(f"run {run_id} trained a {trained} supernet, "
                                         f"not {net.space.name}")
    with checkpoint.applying(state, f"supernet checkpoint of run {run_id}"):
        net.load_state_dict(state["net"])
        p.method.setup(net)
        p.method.load_state_dict(state["method"])
    p.tracker.tags({"selected_from_run": run_id, "selected_from_epoch":
                    state.get("epoch") if epoch is not None else "final"})
    return net


def fetch_supernet(tracker, run_id, name, out, device):
    try:
        path = tracker.download(run_id, f"search/{name}", out)
    except LookupError as e:
        raise checkpoint.CheckpointError(str(e)) from e
    return checkpoint.load(path, map_location=device)


def resume_selection(p):
    """(supernet, selection checkpoint) of a run killed during selection, else (None, None):
    the checkpoint holds the supernet and the alpha optimiser."""
    state = distributed.decide(lambda: saved(p.out, "select"))  # rank 0's file, to all
    if state is None:
        return None, None
    net = new_supernet(p)
    p.method.setup(net)
    return net, state


def reseed(p):
    """Fresh RNGs before selection or an analysis, so that selecting again from this run's
    supernet (`source.run`) replays the same batches and decisions."""
    seed_everything(p.seed)
    p.gen.manual_seed(p.seed)


def selection(p, net, state=None):
    """Decide the architecture; log the decisions and the genotype (and the benchmark's
    numbers for it, where there is a table). Returns the summary so far."""
    if state is None:
        reseed(p)
    genotype, records = p.selector(net, p.method, p.data, p.tracker, p.gen, p.seed,
                                   os.path.join(p.out, "select.pt"), state, p.judge, p.mode)
    log_selection(p.tracker, records, genotype, p.space, p.data.num_classes)
    summary = {"run_id": p.tracker.run_id, "space": p.space.name, "genotype": genotype}
    if p.judge:
        summary["bench"] = log_final(p.tracker, p.judge, genotype)
    return summary


def retraining(p, genotype):
    """Train the genotype's network from scratch; its test error is the run's result."""
    resume = distributed.decide(lambda: saved(p.out, "retrain"))  # rank 0's file, to all
    result, net = retrain(genotype, p.space, p.data, p.tracker, p.gen, p.device,
                          ckpt_path=os.path.join(p.out, "retrain.pt"), resume=resume,
                          mode=p.mode)
    p.tracker.ensure_logged({k: result[k] for k in ("test_error", "test_acc", "test_top5_error")
                             if k in result}, step=0)
    p.tracker.plot(plots.retrain_curves, p.tracker.history("retrain/"), name="retrain.png")
    if p.settings.log_model and distributed.is_main():
        result["model"] = log_model(p.tracker, net, p.data, genotype,
                                    p.settings.register_model)
    return result


def log_model(tracker, net, data, genotype, register_as):
    """The retrained network as the run's MLflow Model (runner/training/export.py)."""
    model = export.predictor(net, data)
    return tracker.log_model(model, export.test_images(data, 2),
                             export.info(data, genotype), register_as)


def log_dataset(tracker, data):
    """What the network is trained on: class names, normalisation, image shape, splits."""
    tracker.json({"name": data.name, "classes": getattr(data, "classes", None),
                  "mean": data.mean.flatten().tolist(), "std": data.std.flatten().tolist(),
                  "image_shape": list(data.image_shape),
                  "streamed": bool(getattr(data, "streamed", False)),
                  "val_split": getattr(data, "val_start", None) is not None},
                 "data/dataset.json")
