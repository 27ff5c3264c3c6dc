"""The mode dispatch: one place picks the mode from the parsed settings, before any run opens;
run names say what a command changed."""
import pytest

from helpers import GIN_DIR
from runner.config import configurables  # noqa: F401  (parse_config needs them registered)
from runner.config import parse_config
from runner.lifecycle.experiment import Parts, run_name
from runner.lifecycle.modes import SINGLE, choose, file_default
from runner.lifecycle.settings import Call, RunSettings
from runner.selection.select import Selector

QUICKSTART = str(GIN_DIR / "quickstart.gin")
GENOTYPE = ("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('skip_connect', 0), "
            "('sep_conv_3x3', 1), ('skip_connect', 0), ('sep_conv_3x3', 1), ('skip_connect', 0), "
            "('skip_connect', 1)], normal_concat=range(2, 6), reduce=[('max_pool_3x3', 0), "
            "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
            "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], "
            "reduce_concat=range(2, 6))")


def mode_of(files, *bindings):
    files = parse_config(files, list(bindings))
    return choose(Call(files, list(bindings)))[0]


@pytest.mark.parametrize("bindings,mode", [
    ((), "select"),
    (("run.do_select = False",), "search_only"),
    (("source.run = '0123abcd'",), "select_from_run"),
    (("source.run = '0123abcd'", "source.epoch = 3"), "select_from_run"),
    ((f'run.genotype = "{GENOTYPE}"',), "retrain_given"),
    (("run.analysis = @SkipGap()",), "analysis"),
    (("run.seeds = (0, 1)",), "seeds_in_turn"),
    (("run.seeds = (0, 1)", "seeds.workers = 2"), "seeds_at_once"),
    (("run.seeds = (0, 1)", "seeds.storage = 'journal:/tmp/x.journal'"), "seeds_at_once"),
    (("trajectory.selectors = ('pt',)", "search.keep_every = 1"), "trajectory"),
    (("run.seeds = (0, 1)", "sweep.params = {'select.tune_epochs': ('int', 0, 2)}",
      "sweep.study_name = 's'"), "sweep"),
    (("pool.size = 3",), "pool"),
    (("pool.size = 3", "source.run = '0123abcd'"), "pool"),
])
def test_choose_picks_the_mode_from_the_settings(bindings, mode, clean_gin, tmp_path,
                                                  monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert mode_of([QUICKSTART], *bindings) == mode
    assert list(tmp_path.iterdir()) == []  # choosing opened no store, wrote no folder


def test_the_zero_cost_files_run_a_pool(clean_gin):
    for name in ("zc_pt_nb201_cifar10", "zc_pt_darts_cifar10"):
        assert mode_of([str(GIN_DIR / f"{name}.gin")]) == "pool"
    assert mode_of([QUICKSTART, str(GIN_DIR / "selectors" / "zc_pt.gin")]) == "pool"


def test_a_pool_with_seeds_is_a_one_line_error(clean_gin):
    with pytest.raises(ValueError, match="pool.size runs one pool per command"):
        mode_of([QUICKSTART], "pool.size = 2", "run.seeds = (0, 1)")


def test_every_single_mode_has_its_function():
    assert set(SINGLE) == {"select", "select_from_run", "search_only", "analysis",
                           "retrain_given"}


def test_the_sweep_file_runs_a_sweep(clean_gin):
    assert mode_of([str(GIN_DIR / "sweeps" / "pt_tune_epochs_s3.gin")]) == "sweep"


def name_for(files, *bindings):
    default = file_default(files, list(bindings))
    call = Call(parse_config(files, list(bindings)), list(bindings), file_default=default)
    settings = RunSettings()
    p = Parts(call, settings, None, None, None, None, None, None,
              method=settings.method(), selector=Selector())
    return run_name(settings, p, call)


def test_run_names_say_what_the_command_changed(clean_gin):
    tiny = str(GIN_DIR / "overrides" / "tiny.gin")
    assert name_for([QUICKSTART]) == "quickstart-seed2"
    assert name_for([QUICKSTART], "search.epochs = 1") == "quickstart-seed2"
    assert name_for([QUICKSTART, tiny]) == "quickstart-darts-pt-mag-seed2"  # it tunes: PT-Mag
    s2 = str(GIN_DIR / "s2_cifar10.gin")
    names = {name_for([s2, str(GIN_DIR / "selectors" / f"{s}.gin")])
             for s in ("magnitude", "pt", "pt_mag")}
    assert names == {"s2_cifar10-darts-magnitude-seed2", "s2_cifar10-seed2",
                     "s2_cifar10-darts-pt-mag-seed2"}
    assert name_for([QUICKSTART], "select.tune_epochs = 0",
                    "select.criterion = @Magnitude()") == "quickstart-seed2"  # as the file says
    assert name_for([QUICKSTART], "select.criterion = @Perturbation()") == \
        "quickstart-darts-pt-seed2"
    assert name_for([QUICKSTART, str(GIN_DIR / "methods" / "fix_alpha.gin")]) \
        .startswith("quickstart-fix_alpha-")
