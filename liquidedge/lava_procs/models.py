"""How the LTC processes run: a ``floating_pt`` and a ``fixed_pt`` Python model for each.

``floating_pt`` follows ``liquidedge.reference`` line by line in float64 (fused, euler and rk4;
rk4 spends four time steps per sub-step so each stage's state can go round Dense(W_rec)).
``fixed_pt`` is integer-only neuron arithmetic from ``fixed_point`` (fused solver), with inputs
and controls quantised by the player as a host-side encoder would. Every model counts what it
sends (graded spikes with a non-zero payload, and the synaptic operations their fan-out costs)
and reports it at the end of each window.
"""
from __future__ import annotations

import numpy as np

from liquidedge.lava_compat import ensure_lava

ensure_lava()

from lava.magma.core.decorator import implements, requires, tag  # noqa: E402
from lava.magma.core.model.py.model import PyLoihiProcessModel  # noqa: E402
from lava.magma.core.model.py.ports import PyInPort, PyOutPort  # noqa: E402
from lava.magma.core.model.py.type import LavaPyType  # noqa: E402
from lava.magma.core.resources import CPU  # noqa: E402
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol  # noqa: E402

from liquidedge.lava_procs import fixed_point as fxp  # noqa: E402
from liquidedge.lava_procs.process import (CTRL, CTRL_FIELDS, NEURON_STATS, PLAYER_STATS,  # noqa: E402
                                           EmbeddingReader, LTCNeuron, WindowPlayer, frame_length)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # the reference's overflow-free form


# ----------------------------------------------------------------------------- player

class _PlayerBase(PyLoihiProcessModel):
    """Frame schedule shared by both precisions; subclasses say how x and controls are encoded."""

    def __init__(self, proc_params):
        super().__init__(proc_params)
        p = self.proc_params
        self.steps, self.n_inputs, self.hidden = p["steps"], p["n_inputs"], p["hidden"]
        self.unfolds, self.stages = p["unfolds"], p["stages"]
        self.frame = frame_length(self.steps, self.unfolds, self.stages)
        self.in_fanout = np.asarray(p["in_fanout"], np.int64)
        self.params = p["params"]
        self._x = np.zeros((self.steps, self.n_inputs))
        self._ctrl = np.zeros((self.steps, len(CTRL_FIELDS)))
        self._stats = np.zeros(len(PLAYER_STATS))

    def _encode(self, x, dt, mask):  # -> (payloads [T,F], controls [T, CTRL])
        raise NotImplementedError

    def _ctrl_spikes(self, ctrl_row) -> int:
        raise NotImplementedError

    def run_spk(self):
        j = (self.time_step - 1) % self.frame
        if j == 0:
            win = self.window_in.recv()
            x, dt, mask = win[:, :self.n_inputs], win[:, self.n_inputs], win[:, self.n_inputs + 1]
            self._x, self._ctrl = self._encode(x * mask[:, None], dt, mask)
            self._stats[:] = 0
        # Input for the update at step j+1 (Dense delays it by one step).
        if j < self.frame - 1:
            payload = self._x[(j // self.stages) // self.unfolds]
        else:
            payload = np.zeros_like(self._x[0])
        nz = payload != 0
        self._stats[0] += nz.sum()
        self._stats[1] += self.in_fanout[nz].sum()
        self.s_out.send(payload)
        ctrl = np.zeros(len(CTRL_FIELDS), self._ctrl.dtype)
        if j == 0:
            ctrl[CTRL["reset"]] = 1
        else:
            ctrl[:] = self._ctrl[((j - 1) // self.stages) // self.unfolds]
            ctrl[CTRL["stage"]] = (j - 1) % self.stages
            ctrl[CTRL["last"]] = int(j == self.frame - 1)
            spikes = self._ctrl_spikes(ctrl)
            self._stats[2] += spikes
            self._stats[3] += spikes * self.hidden
        self.ctrl_out.send(ctrl)
        if j == self.frame - 1:
            self.stats_out.send(self._stats.copy())


@implements(proc=WindowPlayer, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyWindowPlayerFloat(_PlayerBase):
    """x and dt in float64; the neuron gets d = dt/unfolds (one control payload per step)."""

    window_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    ctrl_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    stats_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)

    def _encode(self, x, dt, mask):
        d, p, q = fxp.step_controls(dt, mask, self.unfolds)
        ctrl = np.zeros((self.steps, len(CTRL_FIELDS)))
        ctrl[:, CTRL["d"]], ctrl[:, CTRL["p"]], ctrl[:, CTRL["q"]] = d, p, q
        return x.astype(np.float64), ctrl

    def _ctrl_spikes(self, ctrl_row) -> int:
        return int(ctrl_row[CTRL["d"]] != 0)


@implements(proc=WindowPlayer, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyWindowPlayerFixed(_PlayerBase):
    """Host-side encoder: x -> Q``q_x`` payloads; p, q -> Q22 (two control payloads per step)."""

    window_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    ctrl_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    stats_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)

    def _encode(self, x, dt, mask):
        fmt = fxp.FixedFormats.from_dict(self.params["formats"])
        _, p, q = fxp.step_controls(dt, mask, self.unfolds)
        p_q, q_q = fxp.quantise_controls(p, q)
        ctrl = np.zeros((self.steps, len(CTRL_FIELDS)), np.int64)
        ctrl[:, CTRL["p"]], ctrl[:, CTRL["q"]] = p_q, q_q
        return fxp.encode_inputs(x, fmt), ctrl

    def _ctrl_spikes(self, ctrl_row) -> int:
        return int(ctrl_row[CTRL["p"]] != 0) + int(ctrl_row[CTRL["q"]] != 0)


# ----------------------------------------------------------------------------- neuron

class _NeuronBase(PyLoihiProcessModel):
    """Reset / update / send, and the counting; subclasses implement ``_update``."""

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.hidden = self.proc_params["hidden"]
        self.params = self.proc_params["params"]
        self.rec_fanout = np.asarray(self.params["rec_fanout"], np.int64)
        self._stats = np.zeros(len(NEURON_STATS))

    def _update(self, a_in, ctrl):  # -> payload to send on s_out
        raise NotImplementedError

    def _payload(self):
        raise NotImplementedError

    def run_spk(self):
        a_in = self.a_in.recv()
        ctrl = self.ctrl_in.recv()
        self._stats[0] += self.hidden
        if ctrl[CTRL["reset"]]:
            self._stats[:] = 0
            self._stats[0] = self.hidden
            self.h[:] = 0
            payload = self._payload()
        else:
            self._stats[1] += self.hidden
            payload = self._update(a_in, ctrl)
        nz = payload != 0
        self._stats[2] += nz.sum()
        self._stats[3] += self.rec_fanout[nz].sum()
        self.s_out.send(payload)
        if ctrl[CTRL["last"]]:
            self.h_out.send(self.h.copy())
            self.stats_out.send(self._stats.copy())


@implements(proc=LTCNeuron, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyLTCNeuronFloat(_NeuronBase):
    """float64 LTC update exactly as ``reference.ltc_step`` (fused, euler or rk4)."""

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    ctrl_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    h_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    stats_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    h: np.ndarray = LavaPyType(np.ndarray, float)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.bias = np.asarray(self.params["bias"], np.float64)
        self.inv_tau = 1.0 / np.asarray(self.params["tau"], np.float64)
        self.a = np.asarray(self.params["a"], np.float64)
        self.solver = self.params["solver"]
        self._sent = np.zeros(self.hidden)    # the state whose W_rec image arrives next step
        self._h0 = np.zeros(self.hidden)      # rk4: state at the start of the sub-step
        self._acc = np.zeros(self.hidden)     # rk4: k1 + 2 k2 + 2 k3 so far

    def _payload(self):
        self._sent = self.h.copy()
        return self._sent

    def _deriv(self, state, f):
        return -(self.inv_tau + f) * state + f * self.a

    def _update(self, a_in, ctrl):
        d = ctrl[CTRL["d"]]
        f = _sigmoid(a_in + self.bias)  # gate at the state that was sent last step
        if self.solver == "fused":
            self.h[:] = (self.h + d * f * self.a) / (1.0 + d * (self.inv_tau + f))
            return self._payload()
        if self.solver == "euler":
            self.h[:] = self.h + d * self._deriv(self.h, f)
            return self._payload()
        stage = int(ctrl[CTRL["stage"]])
        k = self._deriv(self._sent, f)
        if stage == 0:
            self._h0 = self.h.copy()
            self._acc = k.copy()
            self._sent = self._h0 + 0.5 * d * k
        elif stage == 1:
            self._acc += 2.0 * k
            self._sent = self._h0 + 0.5 * d * k
        elif stage == 2:
            self._acc += 2.0 * k
            self._sent = self._h0 + d * k
        else:
            self.h[:] = self._h0 + d / 6.0 * (self._acc + k)
            self._sent = self.h.copy()
        return self._sent


@implements(proc=LTCNeuron, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyLTCNeuronFixed(_NeuronBase):
    """Integer-only fused update (``fixed_point.ltc_step_q``): 24-bit state, two small tables."""

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    ctrl_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    h_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    stats_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    h: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        prm = self.params
        self.fmt = fxp.FixedFormats.from_dict(prm["formats"])
        self.bias_q = np.asarray(prm["bias_q"], np.int64)
        self.a_q = np.asarray(prm["a_q"], np.int64)
        self.inv_tau_q = np.asarray(prm["inv_tau_q"], np.int64)
        self.sig = np.asarray(prm["sigmoid_lut"], np.int64)
        self.rec = np.asarray(prm["recip_lut"], np.int64)

    def _payload(self):
        return fxp.state_payload(self.h, self.fmt).astype(np.int32)

    def _update(self, a_in, ctrl):
        z = np.asarray(a_in, np.int64) + self.bias_q
        new = fxp.ltc_step_q(self.h, z, int(ctrl[CTRL["p"]]), int(ctrl[CTRL["q"]]), self.a_q,
                             self.inv_tau_q, self.fmt.q_d, self.sig, self.rec)
        self.h[:] = new.astype(np.int32)
        return self._payload()


# ----------------------------------------------------------------------------- reader

class _ReaderBase(PyLoihiProcessModel):
    """At each frame's last step: embedding + counts to the host pipe."""

    def __init__(self, proc_params):
        super().__init__(proc_params)
        p = self.proc_params
        self.frame, self.hidden, self.embedding_dim = p["frame"], p["hidden"], p["embedding_dim"]
        self.params = p["params"]

    def _read(self, h):  # -> (embedding float64 [E], readout payloads sent)
        raise NotImplementedError

    def run_spk(self):
        if (self.time_step - 1) % self.frame != self.frame - 1:
            return
        h = self.h_in.recv()
        player = self.player_stats_in.recv()
        neuron = self.neuron_stats_in.recv()
        emb, readout_spikes = self._read(h)
        counts = np.concatenate(([self.frame], neuron, player,
                                 [readout_spikes * self.embedding_dim]))
        self.out.send(np.concatenate((emb, counts)))


@implements(proc=EmbeddingReader, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyEmbeddingReaderFloat(_ReaderBase):
    h_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    player_stats_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    neuron_stats_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)

    def _read(self, h):
        h = np.asarray(h, np.float64)
        if "w_out" not in self.params:
            return h, 0
        w, b = np.asarray(self.params["w_out"], np.float64), np.asarray(self.params["b_out"], np.float64)
        return h @ w + b, int(np.count_nonzero(h))


@implements(proc=EmbeddingReader, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyEmbeddingReaderFixed(_ReaderBase):
    h_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    player_stats_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    neuron_stats_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.fmt = fxp.FixedFormats.from_dict(self.params["formats"])

    def _read(self, h):
        h = np.asarray(h, np.int64)
        emb = fxp.embedding_from_state(h, self.fmt, self.params)
        spikes = int(np.count_nonzero(fxp.state_payload(h, self.fmt))) if "w_out_mant" in self.params else 0
        return emb, spikes
