"""Powder chemistry of a Li-rich DRX cathode: its state, per-material constants, LMCT relaxation.

The charge held by the Ni intermediate (``h_Ni``), by reversibly oxidised oxygen (``h_O``) and by
the first-charge activation (``q_act``); LMCT converts ``h_Ni`` into ``h_O`` and lost charge at
all times with the closed-form kinetics of :mod:`simulators.lmct` (docs/model.md). A
:class:`Sample` relaxes anywhere (in a cell, in an oven, on the bench) and splits into portions;
:class:`simulators.cell.Cell` puts one in a half cell.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from operator import attrgetter
from typing import Any

import numpy as np

from simulators.electrode import BranchSet
from simulators.lmct import R_J_MOL_K, advance_u, arrhenius_integral, rate_constant
from simulators.material import Material


@dataclass
class SampleState:
    """Chemistry state of a powder; plain data (see :meth:`to_dict`).

    Attributes
    ----------
    h_ni_mAh_g : float
        Charge held as Ni intermediate (Ni oxidation).
    h_o_mAh_g : float
        Reversibly oxidised oxygen.
    q_act_mAh_g : float
        First-charge activation consumed (irreversible, never reduced).
    q_irr_mAh_g : float
        Charge lost by LMCT (electrochemically irreversible).
    psi : float
        O-couple hysteresis state in [-1, 1].
    r_conv_mAh_g : float
        LMCT-converted charge still reflected in the lattice (Li/vacancy reordering).
    temperature_C : float
        Temperature the sample is at now.
    converted_total_mAh_g : float
        All charge ever converted by LMCT (bookkeeping).
    """

    h_ni_mAh_g: float = 0.0
    h_o_mAh_g: float = 0.0
    q_act_mAh_g: float = 0.0
    q_irr_mAh_g: float = 0.0
    psi: float = 0.0
    r_conv_mAh_g: float = 0.0
    temperature_C: float = 25.0
    converted_total_mAh_g: float = 0.0

    def to_dict(self) -> dict[str, float]:
        """Return the state as a JSON-able dict."""
        return {k: float(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SampleState:
        """Rebuild a state from :meth:`to_dict` output (unknown keys rejected)."""
        names = {f.name for f in fields(cls)}
        bad = set(d) - names
        if bad:
            raise ValueError(f"unknown sample state keys: {sorted(bad)}")
        return cls(**{k: float(v) for k, v in d.items()})


# chemistry tuple: (h_ni, h_o, q_act, q_irr, psi, r_conv, conv_total)
Chem = tuple[float, float, float, float, float, float, float]
CHEM_FIELDS = (
    "h_ni_mAh_g",
    "h_o_mAh_g",
    "q_act_mAh_g",
    "q_irr_mAh_g",
    "psi",
    "r_conv_mAh_g",
    "converted_total_mAh_g",
)
_chem_of = attrgetter(*CHEM_FIELDS)


class ModelConstants:
    """Per-material constants and branch tables (cached on the Material object id)."""

    _cache: dict[int, tuple[Material, ModelConstants]] = {}

    def __init__(self, m: Material) -> None:
        c, d = m.branches.charge, m.branches.discharge
        self.charge = BranchSet([(c.ni_V, c.ni_mAh_g), (c.o_V, c.o_mAh_g), (c.act_V, c.act_mAh_g)])
        self.discharge_unit = BranchSet([(d.ni_V, d.ni_fraction), (d.o_V, d.o_fraction)])
        self._scaled: dict[tuple[float, float], BranchSet] = {}
        lm, oc, kn = m.lmct, m.ocv, m.kinetics
        self.k413, self.ea, self.beta, self.phi, self.h_ref = (
            lm.k413_per_s,
            lm.Ea_kJ_mol,
            lm.beta,
            lm.phi,
            lm.H_ref_mAh_g,
        )
        self.o_max = lm.o_max_mAh_g
        self.e_eq, self.s_norm, self.m_psi = oc.E_eq_V, oc.s_V / oc.h_ni_norm_mAh_g, oc.M_V
        self.m_norm = oc.M_V / oc.h_ni_norm_mAh_g
        self.so_norm = oc.s_o_V / oc.h_o_norm_mAh_g
        self.tau_soc = kn.tau_soc_per_mAh_g
        self.q_psi = oc.psi_charge_mAh_g
        self.r_ohm, self.r_rc, self.a_fast = kn.r_ohm_V_per_mA_g, kn.r_rc_V_per_mA_g, kn.a_fast
        self.tau_f, self.tau_s, self.tau_on = kn.tau_fast_s, kn.tau_slow_s, kn.tau_on_s
        self.ea_pol = kn.Ea_polarisation_kJ_mol
        self._k: dict[float, float] = {}

    @classmethod
    def of(cls, m: Material) -> ModelConstants:
        hit = cls._cache.get(id(m))
        if hit is None or hit[0] is not m:
            hit = (m, cls(m))
            cls._cache[id(m)] = hit
        return hit[1]

    def discharge(self, ref: tuple[float, float]) -> BranchSet:
        """Discharge branches for processes that held ``ref`` (mAh/g) when the discharge began."""
        bs = self._scaled.get(ref)
        if bs is None:
            if len(self._scaled) > 64:
                self._scaled.clear()
            bs = self._scaled[ref] = self.discharge_unit.scaled(ref)
        return bs

    def e_rest(self, h_ni: float, h_o: float, psi: float) -> float:
        """Rest potential (material file ``[ocv]``)."""
        if psi >= 0.0:
            return self.e_eq + (self.s_norm + self.m_norm * psi) * h_ni
        return self.e_eq + self.s_norm * h_ni + psi * (self.m_psi - self.so_norm * h_o)

    def e_rest_np(self, h_ni: Any, h_o: Any, psi: Any) -> Any:
        """:meth:`e_rest` on arrays."""
        pp = np.maximum(psi, 0.0)
        pm = np.minimum(psi, 0.0)
        return self.e_eq + (self.s_norm + self.m_norm * pp) * h_ni + pm * (self.m_psi - self.so_norm * h_o)

    def de_rest_dh_ni(self, psi: float) -> float:
        """d E_rest / d h_Ni along LMCT (h_O gains (1 - phi) of what h_Ni loses)."""
        if psi >= 0.0:
            return self.s_norm + self.m_norm * psi
        return self.s_norm + psi * self.so_norm * (1.0 - self.phi)

    def tau_scale(self, c: Chem) -> float:
        """Rest time constants grow with the Li removed (h_Ni + h_O + q_act + q_irr, LMCT-invariant)."""
        return 1.0 + self.tau_soc * (c[0] + c[1] + c[2] + c[3])

    def k(self, temperature_C: float) -> float:
        v = self._k.get(temperature_C)
        if v is None:
            v = rate_constant(self.k413, self.ea, temperature_C)
            self._k[temperature_C] = v
        return v

    def f_pol(self, temperature_C: float) -> float:
        t = temperature_C + 273.15
        return math.exp(self.ea_pol * 1e3 / R_J_MOL_K * (1.0 / t - 1.0 / 298.15))


def lmct_relax(md: ModelConstants, c: Chem, ktau: float) -> Chem:
    h_ni = c[0]
    if h_ni <= 0.0 or ktau <= 0.0:
        return c
    u0 = h_ni / md.h_ref
    dh = (u0 - advance_u(u0, ktau, md.beta)) * md.h_ref
    room = md.o_max - (c[1] + c[2] + c[3])  # LMCT stops once the oxygen reservoir is used up
    if dh > room:
        dh = max(room, 0.0)
    return (
        h_ni - dh,
        c[1] + (1.0 - md.phi) * dh,
        c[2],
        c[3] + md.phi * dh,
        c[4],
        c[5] + dh,
        c[6] + dh,
    )


class Sample:
    """A cathode powder: chemistry state plus its material.

    Parameters
    ----------
    material : Material
        Validated parameter set.
    state : SampleState, optional
        Starting state; pristine by default.
    """

    def __init__(self, material: Material, state: SampleState | None = None) -> None:
        self.material = material
        self.state = state if state is not None else SampleState(psi=material.ocv.psi_pristine)
        self._md = ModelConstants.of(material)

    # -- plain data ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, float]:
        """Chemistry state as a JSON-able dict (same as ``self.state.to_dict()``)."""
        return self.state.to_dict()

    @classmethod
    def from_dict(cls, material: Material, d: dict[str, Any]) -> Sample:
        """Rebuild a sample from :meth:`to_dict` output."""
        return cls(material, SampleState.from_dict(d))

    def copy(self) -> Sample:
        """An independent portion with an identical state."""
        return Sample(self.material, SampleState.from_dict(self.state.to_dict()))

    def split(self, n: int) -> list[Sample]:
        """Split the powder into ``n`` portions (intensive state: each a copy)."""
        if n < 1:
            raise ValueError("n must be >= 1")
        return [self.copy() for _ in range(n)]

    # -- chemistry ----------------------------------------------------------------------------
    def chem(self) -> Chem:
        """The chemistry fields of the state as a :data:`Chem` tuple."""
        return _chem_of(self.state)  # type: ignore[no-any-return]

    def set_chem(self, c: Chem) -> None:
        """Set the chemistry fields of the state from a :data:`Chem` tuple."""
        self.state.__dict__.update(zip(CHEM_FIELDS, c, strict=True))

    def relax(self, duration_s: float, temperature_C: float) -> None:
        """Relax at open circuit / out of electrolyte at constant temperature.

        Parameters
        ----------
        duration_s : float
            Time (s, >= 0).
        temperature_C : float
            Temperature held during the relaxation; the sample stays at it afterwards.
        """
        if duration_s < 0:
            raise ValueError("duration_s must be >= 0")
        self.state.temperature_C = float(temperature_C)
        self.set_chem(lmct_relax(self._md, self.chem(), self._md.k(float(temperature_C)) * duration_s))

    def relax_history(self, times_s: Any, temperatures_C: Any) -> None:
        """Relax along a temperature history (ramps, holds, cooling).

        Parameters
        ----------
        times_s : sequence of float
            Increasing times (s); only differences matter.
        temperatures_C : sequence of float
            Temperature at each time; linear interpolation in between. The Arrhenius rate is
            integrated over the actual history.
        """
        t = [float(v) for v in times_s]
        c = [float(v) for v in temperatures_C]
        ktau = arrhenius_integral(self._md.k413, self._md.ea, t, c)
        self.set_chem(lmct_relax(self._md, self.chem(), ktau))
        self.state.temperature_C = c[-1]

    def lattice_A(self) -> float:
        """Cubic lattice parameter (Angstrom)."""
        la, s = self.material.lattice, self.state
        return la.a0_A + la.dA_per_ni_mAh_g * s.h_ni_mAh_g + la.dA_per_converted_mAh_g * s.r_conv_mAh_g

    def ni_fraction(self) -> float:
        """Ni intermediate relative to the in-cycling value after a 4.5 V charge (model value)."""
        return self.state.h_ni_mAh_g / self.material.ocv.h_ni_norm_mAh_g
