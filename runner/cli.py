"""`runner --gin FILE [--gin FILE ...] [--bind 'a.b = c' ...]`: parse gin, run one experiment."""
import argparse
import glob
import os
import signal
import sys

from runner.config import REPO_GIN, one_line, parse_config

EPILOG = """The experiment files are the .gin files at the top of gin/ (one per paper experiment,
plus quickstart.gin): list them with `runner --list`. Shared parts live in gin/spaces,
gin/methods, gin/selectors, gin/data and gin/retrain and are pulled in with `include`.
Tracking: MLFLOW_TRACKING_URI (default sqlite:///mlflow.db in the working folder).
Other commands: `runner report` (tables over runs), `runner nb201-table` (convert the official
NAS-Bench-201 file once into the table the NB201 runs look cells up in)."""


def parser():
    p = argparse.ArgumentParser(prog="runner", description=__doc__, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gin", action="append", default=[], metavar="FILE",
                   help="gin file (repeatable; later files override earlier ones)")
    p.add_argument("--bind", action="append", default=[], metavar="BINDING",
                   help="gin binding, e.g. 'search.epochs = 10' (repeatable, applied last)")
    p.add_argument("--resume", action="store_true",
                   help="continue the newest unfinished run of the same name from its checkpoint")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="sweeps and run.seeds: N worker processes on this machine sharing the "
                        "work, one GPU each (round robin over the visible GPUs)")
    p.add_argument("--list", action="store_true", help="list the experiment files and exit")
    p.add_argument("--traceback", action="store_true", help="show the full traceback on errors")
    return p


def list_experiments(root=REPO_GIN):
    """Print each top-level experiment file with the first sentence of its header."""
    paths = sorted(glob.glob(os.path.join(root, "*.gin")))
    width = max((len(os.path.basename(p)) for p in paths), default=0) + len("gin/")
    for path in paths:
        print(f"{'gin/' + os.path.basename(path):{width}s}  {header_sentence(path)}")


def header_sentence(path):
    """The header's first sentence: its comment lines joined up to the first '.' that ends a
    line, or up to the first 'Field:' line (Command:, Needs:, ...)."""
    words = []
    with open(path) as f:
        for line in f:
            if not line.startswith("#"):
                break
            text = line.lstrip("#").strip()
            if not text or (words and text.split(" ", 1)[0].endswith(":")):
                break
            words.append(text)
            if text.endswith("."):
                break
    return " ".join(words)


def main(argv=None):
    """Every command of `runner`, its printed lines redacted (tracking/secrets.py)."""
    from tracking.secrets import redacted_output

    with redacted_output():
        return dispatch(sys.argv[1:] if argv is None else list(argv))


def dispatch(argv):
    if argv[:1] == ["report"]:
        from runner.commands.report import main as report_main

        return report_main(argv[1:])
    if argv[:1] == ["nb201-table"]:
        from runner.commands.nb201_table import main as table_main

        return table_main(argv[1:])
    args = parser().parse_args(argv)
    if args.list:
        list_experiments()
        return 0
    if not args.gin:
        parser().error("give at least one --gin FILE (runner --list shows the experiment files)")
    from runner.training import distributed

    with distributed.session() as ranks:  # torchrun: the process group; else nothing
        rc = run_command(args, argv, f"rank {ranks.rank}: " if ranks.world > 1 else "")
        if rc == 0:
            distributed.finish()
        return rc


def run_command(args, argv, who):
    """The command of `args`; one line on stderr for any failure (`who` names the rank)."""
    try:
        if args.workers is not None and args.workers < 1:  # before anything is created
            raise ValueError(f"--workers must be at least 1, not {args.workers}")
        bindings = args.bind + ([f"sweep.workers = {args.workers}",
                                 f"seeds.workers = {args.workers}"] if args.workers else [])
        from runner.config import configurables  # noqa: F401

        from runner.lifecycle.modes import file_default, run_command as run_mode
        from runner.lifecycle.settings import Call

        default = file_default(args.gin, bindings)  # what the experiment file alone runs
        args.gin = parse_config(args.gin, bindings)
        signal.signal(signal.SIGTERM, _terminate)  # preemption: mark the run KILLED
        summary = run_mode(Call(args.gin, args.bind, args.resume, argv, file_default=default))
    except KeyboardInterrupt:
        print("runner: interrupted; the MLflow run is marked KILLED and its checkpoints kept; "
              "continue it with --resume", file=sys.stderr)
        return 130
    except Stopped as e:
        print(f"runner: error: {who}{e}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - one line per failure, full trace on request
        if args.traceback:
            raise
        print(f"runner: error: {who}{peer_lost(e) if who else one_line(e)}", file=sys.stderr)
        return 2
    from runner.training import distributed

    if distributed.is_main():  # under torchrun rank 0 speaks for the job
        print_summary(summary)
    return 0


class Stopped(BaseException):
    """SIGTERM under torchrun: it stops the other ranks when one rank has failed. Not an
    Exception, so that no handler on the way turns it into another error; the open run
    is marked FAILED (tracking/mlflow_tracker.Tracker.run)."""


def peer_lost(e):
    """Under torchrun: a collective that failed because another rank died, said so."""
    text = one_line(e)
    if isinstance(e, RuntimeError) and any(k in str(e) for k in ("gloo", "NCCL", "Connection")):
        return f"another rank failed or left the job ({text[:160]})"
    return text


def _terminate(signum, frame):
    from runner.training import distributed
    from tracking import signals

    if distributed.ranks().world > 1:  # the run is marked FAILED (an exception), not KILLED
        exc = Stopped(f"stopped by torchrun (signal {signum}): another rank failed or the job "
                      "was stopped; continue with --resume")
    else:
        exc = KeyboardInterrupt(f"signal {signum}")
    if not signals.defer(exc):  # during a tracking-store call: raised when it returns
        raise exc


def print_summary(s):
    from spaces.cell import get_space
    from tracking.mlflow_tracker import Tracker

    if "already_finished" in s:
        print(f"runner: {s['already_finished']}")
        return
    if "study" in s:
        best = (f"; best trial {s['best_trial']}: {s['best_value']:.4g} with {s['best_params']}"
                if "best_trial" in s else "")
        print(f"\nsweep {s['study']}: {s['n_complete']} trials complete, {s['n_fail']} failed"
              f"{best}")
    elif "trajectory" in s:
        for r in s["trajectory"]:
            acc = f"{r['test_acc']:.2f} %" if "test_acc" in r else "n/a (no lookup)"
            print(f"epoch {r['supernet_epoch']:4d}  {r['selector']:10s} benchmark test acc {acc}"
                  f"  {r['genotype']}")
    elif "analysis" in s:
        extra = {k: v for k, v in s.items() if k not in ("run_id", "space", "analysis")}
        print(f"\n{s['analysis']} on the {s['space']} supernet: "
              + "; ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k}: {v}"
                          for k, v in extra.items()))
    elif "pool" in s:
        for r in s["pool"]:
            acc = f"  benchmark test acc {r['bench_test_acc']:.2f} %" if "bench_test_acc" in r \
                else ""
            mark = "*" if r["chosen"] else " "
            print(f"{mark} candidate {r['candidate']:2d} (seed {r['seed']}): post-validation "
                  f"score {r['validation_score']:.4g}{acc}  {r['genotype']}")
        print(f"\ngenotype (the best of the pool): {s['genotype']}")
    elif "seeds" in s:
        for seed, r in s["seeds"].items():
            print(f"seed {seed}: run {r['run_id']}  test error {r.get('test_error', 'n/a')}")
    else:
        print(f"\ngenotype: {s['genotype']}")
        if "test_acc" not in s:  # no network trained: its size at the paper's retrain setting
            family = get_space(s["space"]).family
            print(f"genotype's network at {family.param_size_label} (not trained here): "
                  f"{family.param_size(s['genotype'], 10) / 1e6:.3f} M params")
    if s.get("bench"):
        b = s["bench"]
        print(f"benchmark: test accuracy {b['test_acc']:.2f} % (valid {b['valid_acc']:.2f} %), "
              f"rank {b['rank']:.0f} of {b['num_cells']:.0f} cells")
    if "test_acc" in s:
        print(f"retrained network: {s['params'] / 1e6:.3f} M params, multiply-adds "
              f"{s['multiply_adds'] / 1e6:.1f} M")
        print(f"final test accuracy: {s['test_acc']:.2f} %  (test error {s['test_error']:.2f} %)")
        if "test_top5_error" in s:
            print(f"final top-5 test error: {s['test_top5_error']:.2f} %")
    if s.get("model"):
        print(f"model (uint8 images (N, H, W, C) in, class scores out): "
              f"mlflow.pyfunc.load_model({s['model']!r})")
    print(f"MLflow run {s['run_id']}; {Tracker().ui_hint(s['run_id'])}")


if __name__ == "__main__":
    sys.exit(main())
