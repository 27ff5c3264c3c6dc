"""Terminal output: a line per decision and tuning epoch with what was decided, bars only on a
terminal, and `runner --list`."""
import io
import math

from runner.training import progress

OP = {"kind": "op", "cell": "normal", "where": 4, "round": 0, "seconds": 12.0,
      "candidates": ["skip_connect", "sep_conv_3x3"], "chosen": "sep_conv_3x3",
      "scores": [{"acc": 80.5, "loss": 0.7}, {"acc": 61.25, "loss": 1.3}],
      "valid_acc_after": 83.5}
TOPOLOGY = {"kind": "topology", "cell": "reduce", "where": 3, "round": 1, "seconds": 3.0,
            "candidates": [2, 3, 5], "chosen": [2, 5], "scores": [], "valid_acc_after": math.nan}


class Tty(io.StringIO):
    def isatty(self):
        return True


def test_an_op_decision_says_what_was_chosen_its_score_and_the_time_left():
    out = io.StringIO()
    report = progress.Decisions(rounds=5, out=out)
    report.tune_epoch(0, 25, {"tune_acc": 70.0, "tune_loss": 0.9}, 48.0, round_=0)
    report.decision(OP)
    tune, line = out.getvalue().splitlines()
    assert tune == "tune 1/25 (after round 1/5)  train_acc 70.00  48.0s"
    assert line.startswith("select round 1/5  normal edge 4: op sep_conv_3x3 (acc 61.25, loss 1.3)")
    assert "valid_acc 83.50" in line and "12.0s" in line
    assert line.endswith("left ~4m00s")  # (48 + 12) s a round, 4 rounds to go


def test_a_topology_decision_names_the_kept_inputs_and_leaves_out_a_nan_accuracy():
    out = io.StringIO()
    report = progress.Decisions(rounds=2, out=out)
    report.decision(TOPOLOGY)
    line = out.getvalue().strip()
    assert line.startswith("select round 2/2  reduce node 3: inputs [2, 5]")
    assert "valid_acc" not in line and line.endswith("left ~0.0s")


def test_a_silent_report_prints_nothing():
    out = io.StringIO()
    progress.Decisions(rounds=2, enabled=False, out=out).decision(OP)
    assert out.getvalue() == ""


def test_durations():
    assert progress.duration(4.24) == "4.2s"
    assert progress.duration(75) == "1m15s"
    assert progress.duration(3700) == "1h01m"
    assert progress.duration(math.nan) == "?"


def test_bars_only_on_a_terminal(monkeypatch):
    monkeypatch.delenv("RUNNER_PROGRESS", raising=False)
    redirected, tty = io.StringIO(), Tty()
    for stream in (redirected, tty):
        with progress.bar(10, "search 1/50", stream=stream) as b:
            for _ in range(10):
                b.update(1)
    assert redirected.getvalue() == ""
    drawn = tty.getvalue()  # drawn, then cleared (leave=False): the log keeps no bar
    assert "search 1/50" in drawn and "0/10" in drawn and drawn.endswith("\r")
    off = Tty()
    with progress.bar(3, "x", enabled=False, stream=off) as b:
        b.update(3)
    monkeypatch.setenv("RUNNER_PROGRESS", "0")
    with progress.bar(3, "x", stream=off) as b:
        b.update(3)
    assert off.getvalue() == ""


def test_list_shows_each_experiment_once_with_a_whole_sentence_in_aligned_columns(capsys):
    from helpers import GIN_DIR
    from runner.cli import list_experiments

    list_experiments(str(GIN_DIR))
    lines = capsys.readouterr().out.splitlines()
    files = sorted(p.name for p in GIN_DIR.glob("*.gin"))
    assert [line.split()[0] for line in lines] == [f"gin/{f}" for f in files]
    starts = {len(line) - len(line.split(None, 1)[1]) for line in lines}
    assert len(starts) == 1  # every description starts in the same column
    for line in lines:
        assert line.endswith((".", ")")), line  # no sentence cut at the header's line end
    fix_alpha = [line for line in lines if "nb201_fix_alpha" in line]
    assert len(fix_alpha) == 3 and all("alpha still frozen" in line for line in fix_alpha)
