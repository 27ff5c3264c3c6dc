"""Zero-Cost-PT's candidate pool and post-validation (the authors' networks_proposal.py and
zerocostnas/post_validate.py), a run mode: bound `pool.size` turns it on.

One parent run. Its supernet comes from a nested search-only run (with `search.epochs = 0`, the
untrained supernet the authors score), or from `source.run` when that is bound (a trained
supernet, which the authors also study). Then `size` nested runs each select an architecture
from it (`source.run`, the same path as any selection from a saved supernet) with seeds
seed, seed + 1, ...: another edge order and other minibatches each, as the authors' loop, which
keeps the supernet's weights and redraws only the alphas. The distinct candidates are then
post-validated: each one's own network, freshly initialised, scored by the proxy summed over
`validate_rounds` batches of `batch_size` drawn from the first validate_rounds x batch_size
training images; the highest sum wins. The parent logs `selection/pool.csv` and the winner's
genotype (with its benchmark numbers where there is a table), and a nested run retrains it
(`run.genotype = <parent>`) unless `run.do_retrain = False`. With --resume, finished
candidates are kept and the others continue, as every nested run does.
"""
import dataclasses
import os
import tempfile

import gin
import numpy as np
import torch

from runner.config import parse_config
from runner.selection import proxies
from runner.training.loops import shuffled_batches, train_batch

# the authors post-validate at the search supernet's size: NAS-Bench-201's C16/N5 network, and
# in the DARTS space args.init_channels 16 and args.layers 8 of post_validate.py
POST_VALIDATION_SIZE = {"nb201": (16, 5)}
DEFAULT_SIZE = (16, 8)


@gin.configurable("pool")
class Pool:
    """size: candidates (None: no pool; the authors' scripts: 10). validate_rounds, batch_size:
    post-validation batches (the authors: 100 of 256 on NAS-Bench-201 and 100 of 64 in the
    DARTS space). proxy: the post-validation score. C, layers: the candidates' networks (None:
    the authors' size for the family)."""

    def __init__(self, size=None, validate_rounds=100, batch_size=256, proxy="naswot", C=None,
                 layers=None):
        proxies.proxy(proxy)
        if size is not None and size < 1:
            raise ValueError(f"pool.size must be at least 1, not {size}")
        if validate_rounds < 1 or batch_size < 1:
            raise ValueError("pool.validate_rounds and pool.batch_size must be at least 1")
        self.size, self.validate_rounds, self.batch_size = size, validate_rounds, batch_size
        self.proxy, self.C, self.layers = proxy, C, layers

    def network_size(self, space):
        C, layers = POST_VALIDATION_SIZE.get(space.family.name, DEFAULT_SIZE)
        return self.C or C, self.layers or layers

    def __call__(self, call, settings, source, nested):
        """Returns {'run_id', 'genotype', 'pool': rows, ...the retrain's result}."""
        from tracking.mlflow_tracker import Tracker

        name = settings.experiment_name
        tracker = Tracker(plots=settings.plots)
        tracker.check()
        run_name = call.run_name or f"{name}-pool-seed{settings.seed}"
        newest = tracker.newest(name, run_name) if call.resume else None
        with tracker.run(name, run_name=run_name, run_id=newest and newest.run_id,
                         tags={"run_mode": "pool", "pool_size": self.size}):
            parent = tracker.run_id
            tracker.text("\n".join(call.bindings) + "\n", "config/bindings.gin")
            child = dataclasses.replace(call, parent_run_id=parent)
            supernet = source.run or nested(dataclasses.replace(
                child, run_name=f"{name}-pool-supernet-seed{settings.seed}"),
                do_select=False)["run_id"]
            rows = [self.candidate(call, child, settings, supernet, i, nested, tracker)
                    for i in range(self.size)]
            parse_config(call.gin_files, call.bindings)  # the parent's own settings again
            return self.conclude(child, settings, tracker, rows, nested)

    def candidate(self, call, child, settings, supernet, i, nested, tracker):
        """The i-th candidate: a nested selection from the supernet with seed + i."""
        seed = settings.seed + i
        bindings = list(call.bindings) + [f"source.run = '{supernet}'"]
        parse_config(call.gin_files, bindings)
        out = nested(dataclasses.replace(
            child, bindings=bindings, run_name=f"{settings.experiment_name}-candidate{i}-"
            f"seed{settings.seed}", extra_tags={"pool_candidate": i}),
            seed=seed, do_retrain=False)
        run = tracker.get_run(out["run_id"])
        return {"candidate": i, "seed": seed, "run_id": out["run_id"],
                "genotype": run.tags.get("genotype"), "selector": run.tags.get("selector"),
                "method": run.tags.get("method"),
                **{f"bench_{k}": run.metrics[f"bench/{k}"] for k in ("test_acc", "rank")
                   if f"bench/{k}" in run.metrics}}

    def conclude(self, child, settings, tracker, rows, nested):
        """Post-validate the distinct candidates, log the pool and the winner, retrain it."""
        from runner.data.datasets import dataset
        from runner.lifecycle.environment import pick_device
        from runner.lifecycle.phases import log_genotype
        from runner.selection.lookup import judge_for, log_final
        from spaces.cell import get_space

        device, _ = pick_device(settings.device)
        space, data = get_space(settings.space), dataset(device=device)
        # the pool is one result of the candidates' method and selector (runner report)
        tracker.tags({"space": space.name, "method": rows[0]["method"],
                      "selector": rows[0]["selector"], "dataset": data.name,
                      "seed": settings.seed})
        done = {int(p.step): p.value
                for p in tracker.metric_history("pool/validation_score", tracker.run_id)}
        scores = {}
        for row in rows:
            g = row["genotype"]
            if g not in scores:  # duplicates are scored once (the authors' net_history)
                i = row["candidate"]
                scores[g] = done[i] if i in done else self.validate(
                    space.family.parse_genotype(g), space, data, settings.seed + i, device)
                tracker.ensure_logged({"pool/validation_score": scores[g]}, step=i)
            row["validation_score"] = scores[g]
        best = _first_max(rows)
        for row in rows:
            row["chosen"] = row["genotype"] == best["genotype"]
        genotype = space.family.parse_genotype(best["genotype"])
        log_pool(tracker, rows)
        log_genotype(tracker, genotype, space, data.num_classes)
        tracker.ensure_logged({"pool/distinct": float(len(scores)),
                               "pool/chosen": float(best["candidate"])}, step=0)
        summary = {"run_id": tracker.run_id, "space": space.name, "genotype": genotype,
                   "pool": rows}
        judge = judge_for(space, data.name, tracker)
        if judge:
            summary["bench"] = log_final(tracker, judge, genotype)
        if settings.do_retrain:
            out = nested(dataclasses.replace(
                child, run_name=f"{settings.experiment_name}-pool-retrain-seed{settings.seed}"),
                genotype=tracker.run_id)
            got = tracker.get_run(out["run_id"]).metrics
            tracker.ensure_logged({k: got[k] for k in ("test_error", "test_acc",
                                                        "test_top5_error") if k in got}, step=0)
            summary.update({k: v for k, v in out.items()  # a --resume's retrain: just its run
                            if k not in ("run_id", "space", "genotype", "already_finished")})
        return summary

    def validate(self, genotype, space, data, seed, device):
        """The post-validation score of one candidate: its own network, initialised from
        `seed`, scored on `validate_rounds` batches (fresh order and augmentation, as the
        authors' SubsetRandomSampler) of the first validate_rounds x batch_size train images."""
        from runner.training.precision import precision

        torch.manual_seed(seed)
        C, layers = self.network_size(space)
        net = space.family.network(genotype, data.num_classes, data.in_channels, C=C,
                                   layers=layers, auxiliary=False).to(device)
        mode = precision(device)
        net = mode.model(net)
        gen = torch.Generator(device).manual_seed(seed)
        n = min(self.validate_rounds * self.batch_size, data.train_y.numel())
        idx = torch.arange(n, device=data.train_y.device)
        batches = (train_batch(data, b, mode, gen)
                   for b in shuffled_batches(idx, self.batch_size, gen))
        return validation_score(net, batches, proxies.proxy(self.proxy))


def validation_score(net, batches, proxy):
    """The proxy of a candidate's own network summed over `batches` (the authors'
    post_validate.py: eval mode, no gradient for NASWOT; highest sum wins)."""
    return float(sum(proxy(net, x, y) for x, y in batches))


def _first_max(rows):
    """The candidate of highest score, NaN never; the first on ties (numpy nanargmax)."""
    vals = np.array([r["validation_score"] for r in rows], dtype=float)
    k = int(np.nanargmax(vals)) if np.isfinite(vals).any() else 0
    return rows[k]


def log_pool(tracker, rows):
    import pandas as pd

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "pool.csv")
        pd.DataFrame(rows).to_csv(path, index=False)
        tracker.artifact(path, "selection")
