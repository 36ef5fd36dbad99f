"""What the Loihi-2 LTC network is made of: three custom Lava processes (ports and state only).

How they run is in ``models.py`` (``floating_pt`` and ``fixed_pt`` models per process). The
network, wired by ``liquidedge.targets.lava``::

    host --pipe--> WindowPlayer --s_out--> Dense(W_in) --\\
                        |                                 +--> LTCNeuron --s_out--> Dense(W_rec) --+
                        +--ctrl_out (dt controls)-------> |         ^                              |
                        |                                 |         +------------------------------+
                        +--stats_out--> EmbeddingReader <-h_out-----+  --pipe--> host

One window is one *frame* of ``1 + steps * unfolds * stages`` time steps (``stages`` is 4 for
rk4, else 1): step 0 resets the state (and swallows what the Dense delay still carries from the
previous window); each later step is one neuron update; the reader emits the final state at the
frame's last step. Lava's Dense delivers at step t what it received at t-1, so the player sends
the input one step ahead of the update that uses it, and the recurrent input at step t is
W_rec h(t-1), exactly the previous sub-step's state.
"""
from __future__ import annotations

import numpy as np

from liquidedge.lava_compat import ensure_lava

ensure_lava()

from lava.magma.core.process.ports.ports import InPort, OutPort  # noqa: E402
from lava.magma.core.process.process import AbstractProcess  # noqa: E402
from lava.magma.core.process.variable import Var  # noqa: E402

# The control vector the player sends to the neuron at every time step.
CTRL_FIELDS = ("d", "p", "q", "reset", "last", "stage")
CTRL = {name: i for i, name in enumerate(CTRL_FIELDS)}
# Per-window counters each process reports at the frame's last step.
PLAYER_STATS = ("spikes_in", "synops_in", "spikes_ctrl", "synops_ctrl")
NEURON_STATS = ("neuron_updates", "active_neuron_updates", "spikes_rec", "synops_rec")
COUNT_NAMES = ("time_steps",) + NEURON_STATS + PLAYER_STATS + ("synops_readout",)


def frame_length(steps: int, unfolds: int, stages: int) -> int:
    """Time steps one window takes: one reset step plus one per neuron update."""
    return 1 + int(steps) * int(unfolds) * int(stages)


class WindowPlayer(AbstractProcess):
    """Receives whole windows from the host and plays them step by step as graded spikes.

    Host message per window: ``[steps, n_inputs + 2]`` = x | dt | mask. Sends x to Dense(W_in),
    the per-step controls (d or p/q, reset, last, rk4 stage) to the neuron, and its spike counts
    to the reader. ``params`` holds what the chosen model needs (fan-outs, input format).
    """

    def __init__(self, *, steps: int, n_inputs: int, hidden: int, unfolds: int, stages: int,
                 in_fanout: np.ndarray, params: dict, buffer: int = 8, name: str = "player"):
        super().__init__(steps=steps, n_inputs=n_inputs, hidden=hidden, unfolds=unfolds,
                         stages=stages, in_fanout=np.asarray(in_fanout), params=params, name=name)
        self.window_in = InPort(shape=(steps, n_inputs + 2))
        self.window_in.flag_external_pipe(buffer_size=buffer)
        self.s_out = OutPort(shape=(n_inputs,))
        self.ctrl_out = OutPort(shape=(len(CTRL_FIELDS),))
        self.stats_out = OutPort(shape=(len(PLAYER_STATS),))


class LTCNeuron(AbstractProcess):
    """H liquid time-constant neurons: the state h, the gate and the solver step.

    ``a_in`` receives x W_in + h W_rec (summed over both Dense inputs) and ``ctrl_in`` the
    player's controls; ``s_out`` sends h (as a graded-spike payload) to Dense(W_rec) every step,
    ``h_out`` the final state to the reader at the frame's last step. ``params`` carries bias,
    tau and A (float) or their fixed-point forms and tables, plus the recurrent fan-outs.
    """

    def __init__(self, *, hidden: int, params: dict, name: str = "ltc"):
        super().__init__(hidden=hidden, params=params, name=name)
        self.a_in = InPort(shape=(hidden,))
        self.ctrl_in = InPort(shape=(len(CTRL_FIELDS),))
        self.s_out = OutPort(shape=(hidden,))
        self.h_out = OutPort(shape=(hidden,))
        self.stats_out = OutPort(shape=(len(NEURON_STATS),))
        self.h = Var(shape=(hidden,), init=0)


class EmbeddingReader(AbstractProcess):
    """Reads the final state at each frame's end, applies the readout, sends it to the host.

    Host message per window: ``[embedding_dim + len(COUNT_NAMES)]`` = embedding | op counts.
    """

    def __init__(self, *, hidden: int, embedding_dim: int, frame: int, params: dict,
                 buffer: int = 8, name: str = "reader"):
        super().__init__(hidden=hidden, embedding_dim=embedding_dim, frame=frame, params=params,
                         name=name)
        self.h_in = InPort(shape=(hidden,))
        self.player_stats_in = InPort(shape=(len(PLAYER_STATS),))
        self.neuron_stats_in = InPort(shape=(len(NEURON_STATS),))
        self.out = OutPort(shape=(embedding_dim + len(COUNT_NAMES),))
        self.out.flag_external_pipe(buffer_size=buffer)
