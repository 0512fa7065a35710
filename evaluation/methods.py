"""The quantization methods the evaluation compares (ALGORITHMS.md section 5).

A method is a name plus a ``golden.dit.QuantConfig``; the headline set is fixed by the spec, the
ablations vary one knob at a time around FB32 + AD + SeDA (or around the selection rule).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from golden.formats import Selection, get_format


class Group(enum.Enum):
    """Where a method appears in the report."""

    #: An established 4-bit format the proposal is compared against.
    BASELINE = "baseline"
    #: FB32, FB32 + AD, FB32 + AD + SeDA.
    PROPOSED = "proposed"
    #: A one-knob variation, run only with ``--ablations``.
    ABLATION = "ablation"


@dataclass(frozen=True, kw_only=True)
class Method:
    """One evaluated configuration: ``key`` (metrics.json key), ``label`` (plots and tables), the
    ``golden.dit.QuantConfig`` keyword arguments that build it, and its report ``group``."""

    key: str
    label: str
    group: Group
    format: str
    activation_select: Selection | None = None
    rho: float | None = None
    seda_window: tuple[int, int, int] | None = None
    regroup_every: int | None = None
    seda: bool = False

    def quant_config(self, *, retain_float_weights: bool = True):
        """The ``QuantConfig`` of this method (float weights retained for output SQNR)."""
        from golden.dit import DecompositionConfig, QuantConfig, SedaConfig

        decomposition = None if self.rho is None else DecompositionConfig(rho=self.rho)
        seda = None
        if self.seda:
            defaults = SedaConfig()
            seda = SedaConfig(
                window=self.seda_window or defaults.window,
                regroup_every=self.regroup_every or defaults.regroup_every,
            )
        return QuantConfig(
            format=self.format,
            activation_select=self.activation_select,
            decomposition=decomposition,
            seda=seda,
            retain_float_weights=retain_float_weights,
        )

    def bits_per_element(self) -> float:
        """Storage bits per element of the format at its default block size (codes + scales/ids)."""
        return get_format(self.format).bits_per_element()


def _default_rho() -> float:
    from golden.dit import DecompositionConfig

    return DecompositionConfig().rho


def headline_methods() -> tuple[Method, ...]:
    """The methods of every report: four baselines, then FB32, FB32 + AD, FB32 + AD + SeDA."""
    rho = _default_rho()
    return (
        Method(key="mxfp4", label="MXFP4", group=Group.BASELINE, format="mxfp4"),
        Method(key="nvfp4", label="NVFP4", group=Group.BASELINE, format="nvfp4"),
        Method(key="nvfp4-46", label="NVFP4-4/6", group=Group.BASELINE, format="nvfp4-46"),
        Method(key="dialectfp4-16", label="DialectFP4-16", group=Group.BASELINE, format="dialectfp4",
               activation_select=Selection.TWO_STAGE),
        Method(key="fb32", label="FB32", group=Group.PROPOSED, format="fb32", activation_select=Selection.LUT),
        Method(key="fb32+ad", label="FB32+AD", group=Group.PROPOSED, format="fb32",
               activation_select=Selection.LUT, rho=rho),
        Method(key="fb32+ad+seda", label="FB32+AD+SeDA", group=Group.PROPOSED, format="fb32",
               activation_select=Selection.LUT, rho=rho, seda=True),
    )  # fmt: skip


#: The fitted formatbooks of the embedded model (golden/assets/formatbooks; fitted on clips and a
#: noise seed the demo never evaluates, docs/ALGORITHMS.md section 6), run by ``--formatbooks``.
FORMATBOOK_FORMATS = (
    ("tdit-h-e8m0", "Fitted-32 (half, E8M0)"),
    ("tdit-q-e4m3", "Fitted-32 (quarter, E4M3)"),
    ("tdit64-q-e4m3", "Fitted-64 (quarter, E4M3)"),
)


def formatbook_methods() -> tuple[Method, ...]:
    """Each fitted book alone (LUT selection), and the extended variants with AD and AD + SeDA."""
    rho = _default_rho()
    out = []
    for fmt, label in FORMATBOOK_FORMATS:
        out.append(Method(key=fmt, label=label, group=Group.PROPOSED, format=fmt, activation_select=Selection.LUT))
        if fmt != "tdit-h-e8m0":
            out.append(Method(key=f"{fmt}+ad", label=f"{label}+AD", group=Group.PROPOSED, format=fmt,
                              activation_select=Selection.LUT, rho=rho))  # fmt: skip
            out.append(Method(key=f"{fmt}+ad+seda", label=f"{label}+AD+SeDA", group=Group.PROPOSED, format=fmt,
                              activation_select=Selection.LUT, rho=rho, seda=True))  # fmt: skip
    return tuple(out)


def ablation_methods() -> tuple[Method, ...]:
    """One knob at a time: selection rule, ``rho``, the SeDA window and ``K_g``."""
    from golden.dit import SedaConfig

    rho = _default_rho()
    window = SedaConfig().window
    k_g = SedaConfig().regroup_every
    out = [
        Method(key="dialectfp4-16-lut", label="DialectFP4-16 LUT", group=Group.ABLATION, format="dialectfp4",
               activation_select=Selection.LUT),
        Method(key="dialectfp4-16-mse", label="DialectFP4-16 MSE", group=Group.ABLATION, format="dialectfp4",
               activation_select=Selection.MSE),
        Method(key="fb32-mse", label="FB32 MSE", group=Group.ABLATION, format="fb32", activation_select=Selection.MSE),
    ]  # fmt: skip
    for r in (rho / 2, rho * 2, rho * 4):
        out.append(Method(key=f"fb32+ad-rho{r:g}", label=f"FB32+AD rho={r:g}", group=Group.ABLATION,
                          format="fb32", activation_select=Selection.LUT, rho=r))  # fmt: skip
    small = tuple(max(0, w // 4) for w in window)
    for w in (small, tuple(2 * w for w in window)):
        out.append(Method(key=f"fb32+ad+seda-win{'x'.join(map(str, w))}", label=f"SeDA window {w}",
                          group=Group.ABLATION, format="fb32", activation_select=Selection.LUT, rho=rho, seda=True,
                          seda_window=w))  # fmt: skip
    for k in (1, max(1, k_g // 2), 2 * k_g):
        out.append(Method(key=f"fb32+ad+seda-kg{k}", label=f"SeDA K_g={k}", group=Group.ABLATION, format="fb32",
                          activation_select=Selection.LUT, rho=rho, seda=True, regroup_every=k))  # fmt: skip
    return tuple(out)
