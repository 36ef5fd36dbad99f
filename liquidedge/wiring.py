"""Sparse LTC wirings as data: an object you can print, count and turn into a 0/1 mask.

A Neural Circuit Policy (Lechner et al., 2020) wires the hidden units in layers, loosely like
the C. elegans nervous system: sensory inputs -> inter -> command (recurrent) -> motor. Keeping
the pattern as a seeded object, rather than logic inside a cell, lets every target (torch, ONNX,
Lava) build exactly the same sparse network and lets a report say how many synapses it pays for.

Conventions (those of ``PerceptionGraph``): ``mask()[i, j] == 1`` means unit i feeds unit j
(``h @ w_rec``), and ``input_mask(F)[f, j] == 1`` means input feature f feeds unit j. Hidden
units are ordered ``[inter | command | motor]``. numpy only: the edge imports this too.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from liquidedge.errors import ConfigError

LAYERS = ("inter", "command", "motor")


def dense(h: int) -> np.ndarray:
    """The all-ones [h, h] mask of a fully connected (dense) LTC."""
    if int(h) < 1:
        raise ConfigError(f"dense wiring: expected at least one unit, got {h}")
    return np.ones((int(h), int(h)), np.float32)


@dataclass(frozen=True)
class NCPWiring:
    """NCP-style layered wiring of ``inter + command + motor`` hidden units.

    * each sensory input feeds ``sensory_fanout`` random inter units;
    * each inter unit feeds ``inter_fanout`` random command units;
    * ``recurrent_command`` random command -> command synapses (self-loops allowed);
    * each motor unit is fed by ``motor_fanin`` random command units.

    Units that would otherwise be cut off get one extra synapse (an inter unit with no input, a
    command unit with no inter input or no motor output), so every unit lies on a path from the
    inputs to the motor layer. The same seed always gives the same wiring.
    """

    inter: int
    command: int
    motor: int
    sensory_fanout: int
    inter_fanout: int
    recurrent_command: int
    motor_fanin: int
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("inter", "command", "motor"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"NCPWiring.{name}: expected >= 1 unit, got {getattr(self, name)}")
        checks = (("sensory_fanout", self.inter, "inter"), ("inter_fanout", self.command, "command"),
                  ("motor_fanin", self.command, "command"))
        for name, limit, layer in checks:
            value = int(getattr(self, name))
            if not 1 <= value <= limit:
                raise ConfigError(f"NCPWiring.{name}: expected 1..{limit} (the {layer} layer's size), "
                                  f"got {value}")
        if not 0 <= int(self.recurrent_command) <= self.command * self.command:
            raise ConfigError(f"NCPWiring.recurrent_command: expected 0..{self.command ** 2}, "
                              f"got {self.recurrent_command}")

    @property
    def units(self) -> int:
        """Hidden size H of the LTC this wiring shapes."""
        return self.inter + self.command + self.motor

    def indices(self, layer: str) -> np.ndarray:
        """Hidden-unit indices of one layer ('inter', 'command' or 'motor')."""
        if layer not in LAYERS:
            raise ConfigError(f"NCPWiring: unknown layer {layer!r} (expected one of {LAYERS})")
        start = {"inter": 0, "command": self.inter, "motor": self.inter + self.command}[layer]
        return np.arange(start, start + getattr(self, layer))

    def mask(self) -> np.ndarray:
        """The [H, H] 0/1 recurrent mask (``PerceptionGraph.wiring``)."""
        rng = np.random.default_rng([int(self.seed), 0])
        inter, command, motor = (self.indices(n) for n in LAYERS)
        m = np.zeros((self.units, self.units), np.float32)
        for src in inter:
            m[src, rng.choice(command, self.inter_fanout, replace=False)] = 1
        for dst in command[m[np.ix_(inter, command)].sum(axis=0) == 0]:
            m[rng.choice(inter), dst] = 1
        pairs = rng.choice(self.command * self.command, self.recurrent_command, replace=False)
        for p in pairs:
            m[command[p // self.command], command[p % self.command]] = 1
        for dst in motor:
            m[rng.choice(command, self.motor_fanin, replace=False), dst] = 1
        for src in command[m[np.ix_(command, motor)].sum(axis=1) == 0]:
            m[src, rng.choice(motor)] = 1
        return m

    def input_mask(self, n_inputs: int) -> np.ndarray:
        """The [F, H] 0/1 input mask: sensory inputs reach inter units only."""
        if int(n_inputs) < 1:
            raise ConfigError(f"NCPWiring.input_mask: expected >= 1 input, got {n_inputs}")
        rng = np.random.default_rng([int(self.seed), 1, int(n_inputs)])
        inter = self.indices("inter")
        m = np.zeros((int(n_inputs), self.units), np.float32)
        for f in range(int(n_inputs)):
            m[f, rng.choice(inter, self.sensory_fanout, replace=False)] = 1
        for dst in inter[m[:, inter].sum(axis=0) == 0]:
            m[rng.integers(n_inputs), dst] = 1
        return m

    def synapse_count(self, n_inputs: int | None = None) -> int:
        """Recurrent synapses, plus the sensory ones when ``n_inputs`` is given."""
        n = int(self.mask().sum())
        if n_inputs is not None:
            n += int(self.input_mask(n_inputs).sum())
        return n

    def describe(self, n_inputs: int | None = None) -> str:
        """A short human-readable summary: layer sizes and synapses between layers."""
        m = self.mask()
        parts = [f"NCPWiring: {self.units} units (inter {self.inter}, command {self.command}, "
                 f"motor {self.motor}), seed {self.seed}"]
        if n_inputs is not None:
            parts.append(f"  sensory({n_inputs}) -> inter:   {int(self.input_mask(n_inputs).sum())} synapses")
        for src, dst in (("inter", "command"), ("command", "command"), ("command", "motor")):
            n = int(m[np.ix_(self.indices(src), self.indices(dst))].sum())
            parts.append(f"  {src} -> {dst}:{' ' * (17 - len(src) - len(dst))}{n} synapses")
        parts.append(f"  recurrent total: {int(m.sum())} of {self.units ** 2} possible "
                     f"({100.0 * m.sum() / self.units ** 2:.1f}% dense)")
        return "\n".join(parts)

    def __str__(self) -> str:
        return self.describe()

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "ncp", **asdict(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "NCPWiring":
        if not isinstance(d, dict) or d.get("kind", "ncp") != "ncp":
            raise ConfigError(f"NCPWiring.from_dict: expected a dict with kind 'ncp', got {d!r}")
        fields = {k: v for k, v in d.items() if k != "kind"}
        try:
            return cls(**{k: int(v) for k, v in fields.items()})
        except TypeError as exc:
            raise ConfigError(f"NCPWiring.from_dict: {exc}") from None
        except ValueError as exc:
            raise ConfigError(f"NCPWiring.from_dict: non-integer setting ({exc})") from None

    @classmethod
    def small(cls, seed: int = 0) -> "NCPWiring":
        """The classic 19-unit NCP (12 inter, 6 command, 1 motor) of the lane-keeping paper."""
        return cls(inter=12, command=6, motor=1, sensory_fanout=4, inter_fanout=4,
                   recurrent_command=6, motor_fanin=4, seed=seed)
