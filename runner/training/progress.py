"""Progress of the long phases on the terminal: a line per selection decision and per tuning
epoch (stdout, kept in logs), and a bar inside long epochs and scoring passes that is drawn
only on a terminal (stderr), so redirected logs stay free of carriage returns.

`RUNNER_PROGRESS=0` turns the bars off on a terminal too.
"""
import contextlib
import math
import os
import sys


def duration(seconds):
    """75 -> '1m15s', 3700 -> '1h01m', 4.2 -> '4.2s'."""
    if not math.isfinite(seconds):
        return "?"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, s = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{s:02d}s"
    hours, m = divmod(minutes, 60)
    return f"{hours}h{m:02d}m"


class _NoBar:
    def update(self, n=1):
        pass


def draws(enabled=True, stream=None):
    """Whether a bar is drawn: asked for, on a terminal, not turned off."""
    stream = stream or sys.stderr
    return (enabled and os.environ.get("RUNNER_PROGRESS", "1") != "0"
            and hasattr(stream, "isatty") and stream.isatty())


@contextlib.contextmanager
def bar(total, desc, enabled=True, stream=None):
    """A bar of `total` steps (call `.update(n)`), gone when done; nothing off a terminal.
    enabled: False on torchrun ranks other than 0."""
    if not draws(enabled, stream):
        yield _NoBar()
        return
    from tqdm import tqdm

    with tqdm(total=total, desc=desc, leave=False, file=stream or sys.stderr,
              dynamic_ncols=True) as b:
        yield b


def _what(rec):
    """'op sep_conv_3x3 (acc 71.20)' or 'inputs [0, 2]' for a decision record of select()."""
    if rec["kind"] == "op":
        k = rec["candidates"].index(rec["chosen"])
        score = rec["scores"][k] or {}
        shown = ", ".join(f"{key} {v:.4g}" for key, v in score.items()
                          if isinstance(v, (int, float)))
        return f"op {rec['chosen']}" + (f" ({shown})" if shown else "")
    return f"inputs {rec['chosen']}"


class Decisions:
    """One line per selection decision and per tuning epoch, with the time left estimated from
    the mean time of the rounds so far. A round's decisions are printed after its tuning
    epochs, with the valid accuracy those epochs reached."""

    def __init__(self, rounds, enabled=True, out=None):
        self.rounds, self.enabled, self.out = rounds, enabled, out
        self.round_seconds = {}  # round -> seconds of its decisions and tuning

    def _print(self, text):
        if self.enabled:
            print(text, file=self.out or sys.stdout, flush=True)

    def time_left(self, done_round):
        """Mean seconds per finished round times the rounds after `done_round`."""
        if not self.round_seconds:
            return float("nan")
        mean = sum(self.round_seconds.values()) / len(self.round_seconds)
        return mean * (self.rounds - done_round - 1)

    def tune_epoch(self, epoch, total, result, seconds, round_=None):
        if round_ is not None:
            self.round_seconds[round_] = self.round_seconds.get(round_, 0.0) + seconds
        acc = result.get("tune_acc", result.get("train_acc"))
        after = "" if round_ is None else f" (after round {round_ + 1}/{self.rounds})"
        self._print(f"tune {epoch + 1}/{total}{after}"
                    + (f"  train_acc {acc:.2f}" if acc is not None else "")
                    + f"  {duration(seconds)}")

    def decision(self, rec):
        r = rec["round"]
        self.round_seconds[r] = self.round_seconds.get(r, 0.0) + rec["seconds"]
        where = "edge" if rec["kind"] == "op" else "node"
        after = rec.get("valid_acc_after", float("nan"))
        self._print(f"select round {r + 1}/{self.rounds}  {rec['cell']} {where} {rec['where']}: "
                    f"{_what(rec)}" + (f"  valid_acc {after:.2f}" if math.isfinite(after)
                                       else "")
                    + f"  {duration(rec['seconds'])}  left ~{duration(self.time_left(r))}")
