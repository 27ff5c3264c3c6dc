"""Refactors change no numbers: tiny CPU float32 NCHW runs give bit-identical alphas, decision
tables and genotypes to the values recorded in tests/golden/ by the code from before the cell
description came in (commit ec395fd): quickstart, S3 with PT, SGAS with PT, S1 with grouped
PT scoring.

Re-record (only after a change that is meant to change numbers, and say so in the commit):
    DARTS_PT_RECORD_GOLDEN=1 .venv/bin/python -m pytest tests/test_golden.py -p no:xdist
"""
import csv
import json
import os

import numpy as np
import pytest

from helpers import GIN_DIR, run_cli, tiny_argv

GOLDEN = os.path.join(os.path.dirname(__file__), "golden")
RECORD = os.environ.get("DARTS_PT_RECORD_GOLDEN") == "1"
EXACT = ("precision.channels_last = 'off'", "run.do_retrain = False")

CASES = {
    "quickstart": ("quickstart.gin", ()),
    "s3_pt": ("s3_cifar10.gin", ()),
    "sgas_pt": ("sgas_pt_cifar10.gin", ("search.epochs = 1", "Sgas.warmup_dec_epoch = 0",
                                        "Sgas.decision_freq = 1", "select.tune_epochs = 0")),
    "s1_grouped_pt": ("s1_cifar10.gin", ("Perturbation.masks_per_pass = 2",)),
}


def snapshot(client, run_id, tmp):
    """What must not move: alphas per epoch, the decision table less its timings, genotype."""
    alphas = np.load(client.download_artifacts(run_id, "search/alphas.npz", str(tmp)))["alphas"]
    path = client.download_artifacts(run_id, "selection/decisions.csv", str(tmp))
    rows = [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(open(path))]
    return {"alphas": alphas, "decisions": rows,
            "genotype": client.get_run(run_id).data.tags["genotype"]}


@pytest.mark.parametrize("case", sorted(CASES))
def test_numbers_unchanged(case, data_root, tracking, capsys, tmp_path, clean_gin):
    exp, binds = CASES[case]
    rc, out, err = run_cli(tiny_argv(GIN_DIR / exp, data_root, *EXACT, *binds), capsys)
    assert rc == 0, err
    (run,) = tracking.search_runs([tracking.get_experiment_by_name(
        exp[:-4]).experiment_id])
    got = snapshot(tracking, run.info.run_id, tmp_path)
    stem = os.path.join(GOLDEN, case)
    if RECORD:
        os.makedirs(GOLDEN, exist_ok=True)
        np.save(stem + ".alphas.npy", got["alphas"])
        with open(stem + ".json", "w") as f:
            json.dump({"decisions": got["decisions"], "genotype": got["genotype"]}, f, indent=1)
        pytest.skip(f"recorded {stem}")
    want = json.load(open(stem + ".json"))
    want_alphas = np.load(stem + ".alphas.npy")
    assert got["alphas"].shape == want_alphas.shape
    assert np.array_equal(got["alphas"], want_alphas), "alphas moved"
    assert got["genotype"] == want["genotype"]
    assert got["decisions"] == want["decisions"]
    assert len(got["decisions"]) > 0
