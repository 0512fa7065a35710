"""The quantization methods the evaluation compares (docs/ALGORITHMS.md section 5).

A method is a key, a label, a report group and the knobs that build it: either a
``golden.dit.QuantConfig`` (formats of the ``golden.FORMATS`` registry, AD, SeDA) or a literature
baseline of ``golden.dit.baselines`` (SVDQuant-style low-rank + 4-bit residual, ViDiT-Q-style INT4).
The lists below are data: adding a registry format as a method is one line of ``FORMAT_METHODS``.
Ablations vary one knob at a time and name the method they vary (``against``), so the report pairs
each with the right default.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

from golden.formats import Selection, get_format


class Group(enum.Enum):
    """Where a method appears in the report."""

    #: An established 4-bit format the proposal is compared against.
    BASELINE = "baseline"
    #: A quantizer from the video-DiT quantization literature (SVDQuant-, ViDiT-Q-style).
    LITERATURE = "literature"
    #: FB32, FB32 + AD, FB32 + AD + SeDA (and FB32 with the low-rank branch).
    PROPOSED = "proposed"
    #: A one-knob variation, run only with ``--ablations``.
    ABLATION = "ablation"


#: The groups every proposed method is compared against.
REFERENCE_GROUPS = (Group.BASELINE, Group.LITERATURE)


@dataclass(frozen=True, kw_only=True)
class Method:
    """One evaluated configuration.

    ``format`` is a ``golden.FORMATS`` name (for a baseline: its 4-bit residual format, or
    ``"int4"``). ``baseline`` is None for ``golden.dit.quantize_`` methods, else ``"svdquant"`` or
    ``"vidit-q"`` with ``rank`` (low-rank branch) and ``alpha`` (smoothing). ``against``: the key of
    the method an ablation varies.
    """

    key: str
    label: str
    group: Group
    format: str
    activation_select: Selection | None = None
    rho: float | None = None
    profile_every: int | None = None
    saliency: str = "attention"
    requantize: bool = True
    seda: bool = False
    seda_window: tuple[int, int, int] | None = None
    k_c: int | None = None
    regroup_every: int | None = None
    baseline: str | None = None
    rank: int = 0
    alpha: float = 0.5
    against: str | None = None

    def quant_config(self, *, retain_float_weights: bool = True):
        """The ``golden.dit.QuantConfig`` of a non-baseline method (float weights kept for output SQNR)."""
        from golden.dit import DecompositionConfig, QuantConfig, SedaConfig

        if self.baseline is not None:
            raise ValueError(f"method {self.key!r} is a baseline quantizer, not a QuantConfig")
        decomposition = None
        if self.rho is not None:
            defaults = DecompositionConfig()
            decomposition = DecompositionConfig(
                rho=self.rho, profile_every=self.profile_every or defaults.profile_every,
                saliency=self.saliency, requantize=self.requantize,
            )  # fmt: skip
        seda = None
        if self.seda:
            defaults = SedaConfig()
            seda = SedaConfig(
                window=self.seda_window or defaults.window,
                k_c=self.k_c or defaults.k_c,
                regroup_every=self.regroup_every or defaults.regroup_every,
            )
        return QuantConfig(
            format=self.format,
            activation_select=self.activation_select,
            decomposition=decomposition,
            seda=seda,
            retain_float_weights=retain_float_weights,
        )

    def baseline_config(self):
        from golden.dit.baselines import BaselineConfig

        return BaselineConfig(kind=self.baseline, residual=self.format, rank=self.rank, alpha=self.alpha)

    def config_json(self) -> dict:
        if self.baseline is None:
            return self.quant_config().to_json()
        return self.baseline_config().to_json()

    def bits_per_element(self) -> float:
        """Nominal storage bits per element of the 4-bit format at its default block size (codes +
        scales/ids; ViDiT-Q's per-channel and per-token INT4: the 4 code bits, its scales depend on
        the layer width). The bits every method actually moves, scales, AD's second quantization
        and low-rank branches included, are counted from the run (``runner.method_entry``)."""
        from golden.dit.baselines import INT4_GROUP, INT4_GROUP_SIZE, SCALE_BITS

        if self.format == INT4_GROUP:
            return 4.0 if self.baseline == "vidit-q" else 4.0 + SCALE_BITS / INT4_GROUP_SIZE
        return get_format(self.format).bits_per_element()


def _default_rho() -> float:
    from golden.dit import DecompositionConfig

    return DecompositionConfig().rho


#: The established formats, one line each: (key, label, golden.FORMATS name, activation selection).
FORMAT_METHODS = (
    ("mxfp4", "MXFP4", "mxfp4", None),
    ("nvfp4", "NVFP4", "nvfp4", None),
    ("nvfp4-46", "NVFP4-4/6", "nvfp4-46", None),
    ("dialectfp4-16", "DialectFP4-16", "dialectfp4", Selection.TWO_STAGE),
)
#: Rank of the low-rank branch of the headline SVDQuant runs. SVDQuant uses 32 on 3072-wide layers
#: (about 1 % of the width); the embedded model is 128 wide, so rank 4 (3 %) already costs about
#: one extra bit per weight element. The rank ablation sweeps it.
SVDQUANT_RANK = 4
#: SVDQuant-style residual formats, one line each: (golden.FORMATS name or "int4", label).
SVDQUANT_RESIDUALS = (
    ("nvfp4", "NVFP4"),
    ("mxfp4", "MXFP4"),
    ("int4", "INT4"),
)


def headline_methods() -> tuple[Method, ...]:
    """The methods of every report: formats, literature baselines, then the proposed methods."""
    rho = _default_rho()
    out = [Method(key=k, label=label, group=Group.BASELINE, format=f, activation_select=s) for k, label, f, s in FORMAT_METHODS]
    for residual, label in SVDQUANT_RESIDUALS:
        out.append(Method(key=f"svdquant-{residual}-r{SVDQUANT_RANK}", label=f"SVDQuant {label} r={SVDQUANT_RANK}",
                          group=Group.LITERATURE, format=residual, baseline="svdquant", rank=SVDQUANT_RANK))  # fmt: skip
    out.append(Method(key="vidit-q-int4", label="ViDiT-Q INT4", group=Group.LITERATURE, format="int4", baseline="vidit-q"))
    out += [
        Method(key="fb32", label="FB32", group=Group.PROPOSED, format="fb32", activation_select=Selection.LUT),
        Method(key="fb32+ad", label="FB32+AD", group=Group.PROPOSED, format="fb32",
               activation_select=Selection.LUT, rho=rho),
        Method(key="fb32+ad+seda", label="FB32+AD+SeDA", group=Group.PROPOSED, format="fb32",
               activation_select=Selection.LUT, rho=rho, seda=True),
        Method(key=f"fb32+lowrank-r{SVDQUANT_RANK}", label=f"FB32+low-rank r={SVDQUANT_RANK}", group=Group.PROPOSED,
               format="fb32", baseline="svdquant", rank=SVDQUANT_RANK),
    ]  # fmt: skip
    return tuple(out)


#: The fitted formatbooks of the embedded model (golden/assets/formatbooks; fitted on clips and a
#: noise seed the demo never evaluates, docs/ALGORITHMS.md section 6), run by ``sdialect demo`` (its
#: default and --full presets; ``--formatbooks`` / ``--no-formatbooks`` override).
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
    """One knob at a time, each naming the default it varies (``against``)."""
    from golden.dit import DecompositionConfig, SedaConfig

    rho = _default_rho()
    seda_defaults, dec_defaults = SedaConfig(), DecompositionConfig()
    full = Method(key="fb32+ad+seda", label="FB32+AD+SeDA", group=Group.ABLATION, format="fb32",
                  activation_select=Selection.LUT, rho=rho, seda=True)  # fmt: skip
    ad = replace(full, key="fb32+ad", seda=False)

    def vary(base: Method, key: str, label: str, **knobs) -> Method:
        return replace(base, key=key, label=label, against=base.key, **knobs)

    fb32 = Method(key="fb32", label="FB32", group=Group.ABLATION, format="fb32", activation_select=Selection.LUT)
    dfp = Method(key="dialectfp4-16", label="DialectFP4-16", group=Group.ABLATION, format="dialectfp4",
                 activation_select=Selection.TWO_STAGE)  # fmt: skip
    out = [
        vary(dfp, "dialectfp4-16-lut", "DialectFP4-16 LUT", activation_select=Selection.LUT),
        vary(dfp, "dialectfp4-16-mse", "DialectFP4-16 MSE", activation_select=Selection.MSE),
        vary(fb32, "fb32-mse", "FB32 MSE", activation_select=Selection.MSE),
    ]
    out += [vary(ad, f"fb32+ad-rho{r:g}", f"FB32+AD rho={r:g}", rho=r) for r in (0.0, 0.02, 0.1) if r != rho]
    out += [vary(ad, f"fb32+ad-ks{k}", f"FB32+AD K_s={k}", profile_every=k) for k in (1, 2) if k != dec_defaults.profile_every]
    out += [vary(full, f"fb32+ad+seda-saliency-{s}", f"AD+SeDA, {s} salient tokens", saliency=s) for s in ("random", "norm")]
    out.append(vary(full, "fb32+seda-no-ad", "SeDA without AD", requantize=False))
    for w in ((0, 1, 1), (2, 8, 8)):
        if w != seda_defaults.window:
            out.append(vary(full, f"fb32+ad+seda-win{'x'.join(map(str, w))}", f"SeDA window {w}", seda_window=w))
    out += [vary(full, f"fb32+ad+seda-kc{k}", f"SeDA k_c={k}", k_c=k) for k in (2, 32) if k != seda_defaults.k_c]
    out += [vary(full, f"fb32+ad+seda-kg{k}", f"SeDA K_g={k}", regroup_every=k) for k in (1, 4) if k != seda_defaults.regroup_every]
    svd = Method(key=f"svdquant-nvfp4-r{SVDQUANT_RANK}", label=f"SVDQuant NVFP4 r={SVDQUANT_RANK}", group=Group.ABLATION,
                 format="nvfp4", baseline="svdquant", rank=SVDQUANT_RANK)  # fmt: skip
    out += [vary(svd, f"svdquant-nvfp4-r{r}", f"SVDQuant NVFP4 r={r}", rank=r) for r in (0, 1, 16) if r != SVDQUANT_RANK]
    out.append(vary(svd, f"svdquant-nvfp4-r{SVDQUANT_RANK}-nosmooth", f"SVDQuant NVFP4 r={SVDQUANT_RANK}, no smoothing", alpha=0.0))
    return tuple(out)
