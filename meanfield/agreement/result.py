"""`Comparison`: agreement rows with their Monte-Carlo floors and a verdict."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from .floors import excess

PASS, FAIL, FROZEN, NA, INFO = "PASS", "FAIL", "FROZEN", "n/a", "info"
FROZEN_SWITCH_FRACTION = 0.1     # fewer neurons than this fraction switched code: the sampler is frozen


def info_row(key, quantity, metric, value, **extra):
    """A descriptive row: a value, no floor and no verdict."""
    return dict(key=key, quantity=quantity, metric=metric, value=float(value), error=float(value), floor=None,
                factor=None, excess=None, status=INFO, passed=None, note="", **extra)


def verdict_row(key, quantity, metric, value, error, floor, factor, ok=True, note="", **extra):
    """A row judged against its floor: PASS iff ``error ≤ factor · floor`` (``ok``: the floor is reliable).

    Parameters
    ----------
    key : str
        Stable ASCII key (``"U"``, ``"kernel_1"``, …).
    quantity, metric : str
        Display label and the metric's name.
    value : float
        The row's headline metric (what :attr:`Comparison.metrics` returns).
    error, floor : float or None
        The judged error and its Monte-Carlo floor (same units); ``floor=None`` gives no verdict.
    factor : float
        Largest ``error / floor`` that passes.
    ok : bool
        ``False`` when the floor cannot be trusted (chain too short): no verdict.
    note : str
        Shown next to the row (why no verdict, which component is worst, …).
    """
    row = dict(key=key, quantity=quantity, metric=metric, value=float(value), error=float(error),
               floor=None if floor is None else float(floor), factor=None if factor is None else float(factor),
               excess=None, status=NA, passed=None, note=note, **extra)
    if floor is None or not ok or not math.isfinite(floor):
        return row
    row["excess"] = excess(error, floor)
    row["passed"] = bool(error <= factor * floor)
    row["status"] = PASS if row["passed"] else FAIL
    return row


def _num(x, fmt="{:10.3e}"):
    return f"{'—':>10s}" if x is None else fmt.format(x)


def _json_float(x):
    return x if x is None or math.isfinite(x) else None


@dataclass(frozen=True, repr=False)
class Comparison:
    """Agreement rows between a theory and posterior samples, each with its Monte-Carlo floor.

    Attributes
    ----------
    rows : list of dict
        Each row has ``key`` (stable ASCII: ``"U"``, ``"kernel_1"``, ``"mean_predictor"``,
        ``"field"``, ``"code_fractions"``, …), ``quantity`` (display label), ``metric``, ``value``
        (the headline metric), ``error`` and ``floor`` (the judged error and its Monte-Carlo floor,
        same units), ``factor`` (largest error/floor that passes), ``excess``
        (√max(error² − floor², 0)), ``status`` (``"PASS"``, ``"FAIL"``, ``"FROZEN"``, ``"n/a"`` — no
        floor, or ``"info"`` — descriptive row), ``passed`` (bool, ``None`` without a verdict),
        ``note`` and optionally ``theory`` / ``samples`` summaries.
    context : dict
        Run and solution parameters the rows refer to.
    frozen : bool
        The sampler was frozen: fewer than ``FROZEN_SWITCH_FRACTION`` of the neurons switched code
        during the stored samples (coded solutions only). Failing rows are then ``"FROZEN"``.
    switching : tuple or None
        ``(neurons that switched, N)`` for coded solutions.
    health_problems : tuple of str or None
        The sampler run's health problems (``Samples.health.problems``; empty for a healthy run,
        ``None`` if the samples carry no health record). A run with problems never passes.
    """

    rows: list
    context: dict = field(default_factory=dict)
    frozen: bool = False
    switching: tuple | None = None
    health_problems: tuple | None = None

    @property
    def metrics(self):
        """``{quantity: value}`` of every row."""
        return {r["quantity"]: r["value"] for r in self.rows}

    @property
    def passed(self):
        """``True`` iff the sampler run is healthy, no row FAILs or is FROZEN and at least one row
        has a verdict (PASS)."""
        st = [r["status"] for r in self.rows]
        return not self.health_problems and PASS in st and FAIL not in st and FROZEN not in st

    def row(self, name):
        """The row with key or display label ``name`` (dict)."""
        for r in self.rows:
            if name in (r["key"], r["quantity"]):
                return r
        raise KeyError(f"no row {name!r}; rows: {', '.join(r['key'] for r in self.rows)}")

    def __getitem__(self, name):
        """The headline ``value`` of the row with key or display label ``name``."""
        return self.row(name)["value"]

    def verdict(self):
        """One line: PASS / FAIL / FROZEN with the rows that decide it."""
        failed = [r["key"] for r in self.rows if r["status"] == FAIL]
        frozen = [r["key"] for r in self.rows if r["status"] == FROZEN]
        judged = [r for r in self.rows if r["status"] in (PASS, FAIL, FROZEN)]
        na = [r["key"] for r in self.rows if r["status"] == NA]
        tail = f"; no verdict for {', '.join(na)} (see notes)" if na else ""
        if self.health_problems:
            return ("VERDICT: NOT TRUSTED — the sampler run failed its health checks, so no row can pass: "
                    + "; ".join(self.health_problems))
        if self.frozen:
            k, N = self.switching
            head = (f"sampler frozen ({k} of {N} neurons switched): the disagreement reflects a frozen state, "
                    "not the theory")
            if frozen or failed:
                return f"VERDICT: FROZEN — {head} (rows {', '.join(frozen + failed)}){tail}"
            if self.passed:
                return (f"VERDICT: PASS (but {head.split(':')[0]}) — all {len(judged)} judged rows within their "
                        f"floors{tail}")
        if failed:
            hint = ""
            if self.context.get("theory_N") is None and self.context.get("N"):
                hint = f" (the theory is at N = ∞; the network has N = {self.context['N']})"
            return (f"VERDICT: FAIL — {', '.join(failed)} beyond their Monte-Carlo floors: "
                    f"theory and sampler disagree by more than noise{hint}{tail}")
        if not judged:
            return f"VERDICT: none — no row has a Monte-Carlo floor{tail}"
        return f"VERDICT: PASS — all {len(judged)} judged rows within their Monte-Carlo floors{tail}"

    def table(self):
        """Readable agreement table: error, floor, error/floor, PASS / FAIL per row, and the verdict."""
        c = self.context
        head = (f"Theory vs samples: {c.get('nonlinearity')}, L = {c.get('depth')}, N = {c.get('N')}, "
                f"P = {c.get('P')}, T = {c.get('T')}")
        w = max(len(r["quantity"]) for r in self.rows) if self.rows else 10
        lines = [head, f"  {'quantity':{w}s}  {'metric':24s} {'error':>10s} {'floor':>10s} {'err/floor':>9s} "
                       f"{'pass if ≤':>9s}  {'verdict':7s} theory | samples"]
        for r in self.rows:
            ratio = r["error"] / r["floor"] if r["floor"] else (math.inf if r["floor"] == 0 and r["error"] else None)
            if r["floor"] == 0 and r["error"] == 0:
                ratio = 0.0
            extra = f"{r['theory']} | {r['samples']}" if "theory" in r else ""
            note = f"  [{r['note']}]" if r["note"] else ""
            rfmt = "{:9.2f}" if ratio is None or ratio < 1e4 else "{:9.1e}"
            lines.append(f"  {r['quantity']:{w}s}  {r['metric']:24s} {r['error']:10.3e} {_num(r['floor'])} "
                         f"{_num(ratio, rfmt):>9s} {_num(r['factor'], '{:9.2f}'):>9s}  {r['status']:7s} "
                         f"{extra}{note}")
        lines.append("  " + self.verdict())
        return "\n".join(lines)

    def to_dict(self):
        """JSON-ready summary: rows (key, quantity, metric, value, error, floor, factor, excess, status,
        passed, note), ``metrics``, ``passed``, ``frozen``, ``verdict`` and ``context``."""
        keys = ("key", "quantity", "metric", "value", "error", "floor", "factor", "excess", "status", "passed", "note")
        rows = [{k: (_json_float(r[k]) if isinstance(r[k], float) else r[k]) for k in keys} for r in self.rows]
        return dict(rows=rows, metrics={k: _json_float(v) for k, v in self.metrics.items()}, passed=self.passed,
                    frozen=self.frozen, verdict=self.verdict(), context=self.context,
                    health_problems=None if self.health_problems is None else list(self.health_problems))

    def __repr__(self):
        return self.table()


def mark_frozen(rows):
    """In a frozen run, rows whose error exceeds ``factor · floor`` become FROZEN rather than FAIL.

    This includes rows without a reliable floor (``"n/a"``, e.g. a code that flickers between two
    samples makes τ long): a floor that assumes mixing does not hold in a frozen run either way.
    """
    for r in rows:
        over = r["status"] == NA and r["floor"] is not None and r["factor"] is not None \
            and r["error"] > r["factor"] * r["floor"]
        if r["status"] == FAIL or over:
            r["status"] = FROZEN
            r["note"] = (r["note"] + "; " if r["note"] else "") + "sampler frozen"
    return rows
