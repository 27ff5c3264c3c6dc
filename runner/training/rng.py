"""Capture and restore every random stream a phase uses, so a resumed run replays exactly."""
import numpy as np
import torch


def capture(gen, np_rng=None):
    """Global torch (CPU and CUDA), the data generator and the edge-order generator, as tensors."""
    state = {"torch": torch.get_rng_state(), "gen": gen.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if np_rng is not None:
        kind, keys, pos, has_gauss, cached = np_rng.get_state()
        state["np"] = {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": pos,
                       "has_gauss": has_gauss, "cached": cached}
    return state


def restore(state, gen, np_rng=None):
    torch.set_rng_state(state["torch"])
    gen.set_state(state["gen"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if np_rng is not None and "np" in state:
        s = state["np"]
        np_rng.set_state(("MT19937", s["keys"].numpy().astype(np.uint32), s["pos"],
                          s["has_gauss"], s["cached"]))
