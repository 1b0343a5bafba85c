"""Optimise tab: search Pareto-optimal programs for the store's patient, pick and compare them.

The search is :func:`emsim.optimise.optimise` over :meth:`DesignSpace.from_template
<emsim.optimise.DesignSpace.from_template>` of the shipped lumbar template, run on a worker
thread: its progress callback moves the progress bar and returns ``True`` once the user pressed
Cancel (the search then stops after the batch in flight and returns what it has). Robust mode
adds a virtual cohort (:func:`emsim.body.cohort`) to the patient and reduces every outcome
over it with the chosen statistic.

A picked program's traces come from the problem's own evaluator (``Problem.predict`` with
traces), so what the page draws is what the optimiser scored. "Use this program" keeps the
program here (:attr:`OptimiseView.chosen`) for the Simulate tab and hands it to the store
(:meth:`WorkbenchStore.apply_program <apps.store.WorkbenchStore.apply_program>`), so the Design
tab shows it, predicts it and the Export tab exports it.
"""

from __future__ import annotations

import threading

import holoviews as hv
import holoviews.plotting.bokeh  # noqa: F401  (registers the backend the plot options need)
import panel as pn
import param

from apps.program_text import decimate, program_table
from apps.store import PREVIEW_CHOICES_S, WorkbenchStore
from emsim.body import cohort
from emsim.errors import EmsimError, OptimiseError
from emsim.optimise import (DEFAULT_OBJECTIVES, METHODS, OBJECTIVES, DesignSpace, Problem, lumbar_template,
                            optimise)
from emsim.program.device_profile import device_ids

__all__ = ["OptimiseView", "STATISTICS", "MAX_COMPARE", "NO_PICK", "candidate_label"]

#: Cohort reductions offered in robust mode (see emsim.optimise._objectives.aggregate).
STATISTICS = {"mean over the cohort": "mean", "worst patient": "worst", "worst-served 10 %": 10.0}
MAX_COMPARE = 3
#: The pick selector's only entry before a search (Panel's Select misbehaves without options).
NO_PICK = "(no search yet)"
_COLOURS = ("#1f77b4", "#d62728", "#2ca02c")


def candidate_label(rank: int, candidate) -> str:
    """Short name of a Pareto member in selectors and tables (rank on the first objective)."""
    return f"#{rank + 1} (trial {candidate.trial_number})"


class OptimiseView(pn.viewable.Viewer):
    """Objectives, constraints and budget; a background search; the Pareto front to explore."""

    store = param.ClassSelector(class_=WorkbenchStore)

    objectives = param.ListSelector(default=list(DEFAULT_OBJECTIVES), objects=list(OBJECTIVES),
                                    doc="outcomes to trade off")
    limit_discomfort = param.Boolean(default=False, doc="constrain the peak discomfort")
    max_discomfort_nrs = param.Number(default=6.0, bounds=(0.0, 10.0), step=0.5, doc="NRS 0-10")
    limit_session = param.Boolean(default=False, doc="constrain the session length")
    max_session_min = param.Number(default=20.0, bounds=(1.0, 120.0), step=1.0, doc="min")
    length = param.Selector(default="quick preview (60 s)", objects=list(PREVIEW_CHOICES_S),
                            doc="length of the main phase every candidate is evaluated for")
    device = param.Selector(default="rehastim2", objects=list(device_ids()))
    method = param.Selector(default="nsga2", objects=list(METHODS))
    budget = param.Integer(default=32, bounds=(1, 100_000), softbounds=(4, 400), doc="evaluations")
    batch_size = param.Integer(default=8, bounds=(1, 256), softbounds=(2, 64))
    seed = param.Integer(default=1, bounds=(0, None))
    robust = param.Boolean(default=False, doc="optimise over the patient plus a virtual cohort")
    cohort_size = param.Integer(default=8, bounds=(1, 1000), softbounds=(2, 50), doc="virtual patients")
    statistic = param.Selector(default="mean over the cohort", objects=list(STATISTICS))

    run = param.Event(label="Run optimisation")
    cancel = param.Event(label="Cancel")
    use = param.Event(label="Use this program")

    running = param.Boolean(default=False)
    n_done = param.Integer(default=0)
    n_total = param.Integer(default=1)
    status = param.String(default="Not run yet.")
    result = param.Parameter(default=None, doc="emsim.optimise.Result of the last search")
    pick = param.Selector(default=NO_PICK, objects=[NO_PICK], doc="the Pareto member shown")
    compare = param.ListSelector(default=[], objects=[], doc=f"up to {MAX_COMPARE} members side by side")
    traces_version = param.Integer(default=0, doc="bumped whenever a picked member's traces land")
    chosen = param.Parameter(default=None, doc="program chosen with 'Use this program' (Simulate plays it)")
    chosen_label = param.String(default="")

    def __init__(self, **params):
        if params.get("store") is not None:
            params.setdefault("device", params["store"].device)  # the Design tab's device unless told
        super().__init__(**params)
        self._cancel = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._traces: dict[str, object] = {}
        self._trace_lock = threading.Lock()
        self._by_label: dict[str, object] = {}
        self._trace_threads: list[threading.Thread] = []
        self._tap = None

    # ------------------------------------------------------------------ the problem

    def build_problem(self) -> Problem:
        """The :class:`~emsim.optimise.Problem` the controls describe.

        Raises
        ------
        EmsimError
            No patient (outside robust mode), no objective, contradictory limits.
        """
        patient = self.store.patient if self.store is not None else None
        if patient is None and not self.robust:
            raise OptimiseError("choose a patient first (Patient & placement tab), or use robust mode",
                                path="patient", value=None, allowed="a patient file")
        duration = PREVIEW_CHOICES_S[self.length]
        patients = [patient] if patient is not None else []
        if self.robust:
            patients += cohort(int(self.cohort_size), seed=int(self.seed))
            # virtual patients have no measured thresholds: robust searches use absolute currents
            template = lumbar_template(None, duration_s=duration)
        else:
            template = lumbar_template(patient, duration_s=duration)
        space = DesignSpace.from_template(template, device=self.device)
        return Problem(patients, space, objectives=list(self.objectives), device=self.device,
                       session=int(self.store.session) if self.store is not None else 1,
                       max_discomfort_nrs=self.max_discomfort_nrs if self.limit_discomfort else None,
                       max_session_min=self.max_session_min if self.limit_session else None,
                       statistic=STATISTICS[self.statistic] if self.robust else "mean")

    # ------------------------------------------------------------------ the search

    @param.depends("run", watch=True)
    def start(self) -> bool:
        """Start a search on a worker thread; False (and a status saying why) if it cannot start."""
        if self.running:
            return False
        try:
            problem = self.build_problem()
        except EmsimError as exc:
            self.status = f"**Cannot optimise:** {exc}"
            return False
        self._cancel.clear()
        self._idle.clear()
        with self._trace_lock:
            self._traces.clear()
        self._by_label = {}
        self.param.update(running=True, n_done=0, n_total=int(self.budget), result=None, compare=[],
                          status=f"Optimising: 0 of {self.budget} evaluations…")
        self.param.pick.objects = [NO_PICK]
        self.pick = NO_PICK
        self.param.compare.objects = []
        args = (problem, self.method, int(self.budget), int(self.seed), int(self.batch_size))
        threading.Thread(target=self._work, args=args, daemon=True, name="emsim-optimise").start()
        return True

    @param.depends("cancel", watch=True)
    def _cancel_pressed(self) -> None:
        if self.running:
            self._cancel.set()
            self.status = "Cancelling after the batch in flight…"

    def _progress(self, p) -> bool:
        if not self._cancel.is_set():
            self.param.update(n_done=min(p.n_complete, p.budget),
                              status=f"Optimising: {p.n_complete} of {p.budget} evaluations "
                                     f"({p.n_feasible_batch}/{p.n_batch} feasible in the last batch, "
                                     f"{p.elapsed_s:.0f} s)…")
        return self._cancel.is_set()

    def _work(self, problem, method, budget, seed, batch_size) -> None:
        try:
            res = optimise(problem, method, budget=budget, seed=seed, batch_size=batch_size,
                           callback=self._progress)
        except EmsimError as exc:
            self.param.update(running=False, status=f"**Optimisation failed:** {exc}")
            self._idle.set()
            return
        labels = [candidate_label(i, c) for i, c in enumerate(res.pareto)]
        self._by_label = dict(zip(labels, res.pareto))
        how = "cancelled: " if self._cancel.is_set() else ""
        self.param.pick.objects = labels or [NO_PICK]
        self.param.compare.objects = labels
        self.param.update(result=res, n_done=res.n_complete, running=False,
                          status=f"Done ({how}{len(res.pareto)} Pareto-optimal programs from {res.n_complete} "
                                 f"evaluations, {res.n_feasible} feasible, {res.elapsed_s:.1f} s). "
                                 f"Evidence: {_evidence(res)}.")
        self.pick = labels[0] if labels else NO_PICK
        self._idle.set()

    def wait(self, timeout: float = 120.0) -> bool:
        """Block until no search runs and no traces are being computed (tests); False on timeout."""
        if not self._idle.wait(timeout):
            return False
        for t in list(self._trace_threads):
            t.join(timeout)
        return not any(t.is_alive() for t in self._trace_threads)

    # ------------------------------------------------------------------ picking and comparing

    def candidate(self, label: str | None):
        return self._by_label.get(label) if label else None

    def select_index(self, index: int) -> None:
        """Pick the Pareto member at ``index`` of the front (what a tap on the plot does)."""
        labels = list(self._by_label)
        if 0 <= index < len(labels):
            self.pick = labels[index]

    @param.depends("compare", watch=True)
    def _limit_compare(self) -> None:
        if len(self.compare) > MAX_COMPARE:
            self.compare = list(self.compare)[-MAX_COMPARE:]

    @param.depends("pick", "compare", watch=True)
    def _want_traces(self) -> None:
        wanted = [x for x in [self.pick, *self.compare] if self.candidate(x) and x not in self._traces]
        if wanted:
            t = threading.Thread(target=self._compute_traces, args=(self.result, wanted), daemon=True,
                                 name="emsim-pareto-traces")
            self._trace_threads = [x for x in self._trace_threads if x.is_alive()] + [t]
            t.start()

    def traces(self, label: str):
        """The trace prediction of a member for the first patient (computed on first request)."""
        with self._trace_lock:
            if label in self._traces:
                return self._traces[label]
        cand = self.candidate(label)
        if cand is None or self.result is None:
            return None
        pred = self.result.problem.predict([cand.program], trace=True)[0][0]
        with self._trace_lock:
            self._traces[label] = pred
        return pred

    def _compute_traces(self, result, labels) -> None:
        for label in labels:
            if result is not self.result:
                return  # a new search started: these traces belong to the old front
            try:
                self.traces(label)
            except EmsimError:
                continue
        self.traces_version += 1

    @param.depends("use", watch=True)
    def _use(self) -> None:
        cand = self.candidate(self.pick)
        if cand is None:
            self.status = "Pick a Pareto member first."
            return
        self.param.update(chosen=cand.program, chosen_label=f"{self.pick} of the last search")
        play = "play it on the Simulate tab (choose 'chosen Pareto program')"
        if self.store is not None and self.store.apply_program(cand.program):
            self.status = (f"{self.pick} is the chosen program and now the Design tab's channels (the session's "
                           f"phase lengths stay as set there): see its prediction there, export it, or {play}.")
        else:
            why = self.store.program_error if self.store is not None else "no design to take it"
            self.status = f"{self.pick} is the chosen program: {play}. **Not taken into the design:** {why}"

    # ------------------------------------------------------------------ views

    def _front_frame(self):
        res = self.result
        names = list(res.problem.objective_names)
        rows = {"member": list(self._by_label)}
        for n in names:
            rows[n] = [c.values[n] for c in res.pareto]
        return rows, names

    @param.depends("result", "pick", "compare")
    def _front_plot(self):
        res = self.result
        if res is None or not res.pareto:
            return pn.pane.Markdown("The Pareto front appears here after a search.")
        rows, names = self._front_frame()
        x = names[0]
        y = names[1] if len(names) > 1 else None
        if y is None:  # one objective: plot the members in rank order
            rows["rank"] = list(range(1, len(rows["member"]) + 1))
            x, y = "rank", names[0]
        vdims = [y, "member"] + [n for n in names if n not in (x, y)]
        colour = names[2] if len(names) > 2 else None
        opts = dict(size=11, tools=["tap", "hover"], width=620, height=380, title="Pareto front (tap a point)",
                    xlabel=OBJECTIVES[x].label if x in OBJECTIVES else x,
                    ylabel=OBJECTIVES[y].label if y in OBJECTIVES else y, nonselection_alpha=0.5)
        if colour:
            opts.update(color=colour, cmap="viridis", colorbar=True, clabel=OBJECTIVES[colour].label)
        scatter = hv.Scatter(rows, kdims=[x], vdims=vdims).opts(**opts)
        self._tap = hv.streams.Selection1D(source=scatter)
        self._tap.add_subscriber(lambda index: self.select_index(index[0]) if index else None)
        marks = []
        for k, label in enumerate([self.pick, *[c for c in self.compare if c != self.pick]]):
            if label in self._by_label:
                i = list(self._by_label).index(label)
                marks.append(hv.Scatter(([rows[x][i]], [rows[y][i]])).opts(
                    size=22, fill_alpha=0, line_width=3, line_color=_COLOURS[k % len(_COLOURS)]))
        return pn.pane.HoloViews(hv.Overlay([scatter, *marks]).opts(show_legend=False))

    @param.depends("result")
    def _front_table(self):
        if self.result is None or not self.result.pareto:
            return pn.pane.Markdown("")
        import pandas as pd

        rows, _ = self._front_frame()
        return pn.pane.DataFrame(pd.DataFrame(rows).round(3), index=False, width=620)

    def member_summary(self, label: str) -> str:
        """Markdown: a member's objective values and its program's settings."""
        cand = self.candidate(label)
        if cand is None:
            return ""
        values = ", ".join(f"{OBJECTIVES[k].label} **{v:.3g}**" for k, v in cand.values.items())
        return f"**{label}** — {values}\n\n{program_table(cand.program)}"

    def _member_column(self, label: str, colour: str):
        pred = self._traces.get(label)
        parts = [pn.pane.Markdown(self.member_summary(label), css_classes=["emsim-member"])]
        if pred is None:
            parts.append(pn.pane.Markdown("Computing the traces…"))
        else:
            t_min = pred.t_s / 60.0
            curves = [hv.Curve(decimate(t_min, pred.mvc_pct[i]), "time (min)", "force (%MVC)", label=cid)
                      for i, cid in enumerate(pred.channel_ids)]
            parts.append(pn.pane.HoloViews(hv.Overlay(curves).opts(title="Force", width=420, height=220)))
            if pred.discomfort_nrs is not None:
                parts.append(pn.pane.HoloViews(
                    hv.Curve(decimate(t_min, pred.discomfort_nrs), "time (min)", "discomfort (NRS 0-10)")
                    .opts(title="Discomfort", width=420, height=180, ylim=(0, 10), color=colour)))
        return pn.Column(*parts, width=440)

    @param.depends("pick", "compare", "traces_version")
    def _members(self):
        shown = [x for x in [self.pick, *self.compare] if self.candidate(x)]
        shown = list(dict.fromkeys(shown))[:MAX_COMPARE]
        if not shown:
            return pn.pane.Markdown("")
        return pn.Row(*[self._member_column(lab, _COLOURS[k]) for k, lab in enumerate(shown)])

    @param.depends("status", "chosen_label")
    def _status(self):
        chosen = f" Chosen program: {self.chosen_label}." if self.chosen_label else ""
        return pn.pane.Markdown(self.status + chosen, css_classes=["emsim-optimise-status"],
                                sizing_mode="stretch_width")

    def __panel__(self):
        p = self.param
        objectives = pn.widgets.MultiChoice.from_param(
            p.objectives, name="Objectives", options={o.label: n for n, o in OBJECTIVES.items()}, width=420)
        constraints = pn.Column(
            "#### Constraints",
            pn.Row(pn.widgets.Checkbox.from_param(p.limit_discomfort, name="Max discomfort"),
                   pn.widgets.FloatInput.from_param(p.max_discomfort_nrs, name="NRS", width=90)),
            pn.Row(pn.widgets.Checkbox.from_param(p.limit_session, name="Max session length"),
                   pn.widgets.FloatInput.from_param(p.max_session_min, name="min", width=90)),
            pn.widgets.Select.from_param(p.device, name="Device", width=150),
            pn.widgets.Select.from_param(p.length, name="Evaluated length", width=220))
        search = pn.Column(
            "#### Search",
            pn.widgets.Select.from_param(p.method, name="Method", width=120),
            pn.widgets.IntInput.from_param(p.budget, name="Budget (evaluations)", width=150,
                                           css_classes=["emsim-budget"]),
            pn.widgets.IntInput.from_param(p.batch_size, name="Batch size", width=120),
            pn.widgets.IntInput.from_param(p.seed, name="Seed", width=120))
        robust = pn.Column(
            "#### Robust mode",
            pn.widgets.Checkbox.from_param(p.robust, name="Over a virtual cohort"),
            pn.widgets.IntInput.from_param(p.cohort_size, name="Cohort size", width=120),
            pn.widgets.Select.from_param(p.statistic, name="Statistic", width=200))
        run = pn.widgets.Button.from_param(p.run, color="primary", disabled=p.running)
        cancel = pn.widgets.Button.from_param(p.cancel, color="warning",
                                              disabled=p.running.rx.not_())
        bar = pn.indicators.Progress(value=p.n_done, max=p.n_total, width=420, bar_color="primary")
        pick = pn.widgets.Select.from_param(p.pick, name="Pareto member", width=200, css_classes=["emsim-pick"])
        compare = pn.widgets.MultiChoice.from_param(p.compare, name=f"Compare (up to {MAX_COMPARE})",
                                                    max_items=MAX_COMPARE, width=420)
        use = pn.widgets.Button.from_param(p.use, color="success")
        return pn.Column(
            pn.Row(pn.Column("#### Objectives", objectives), constraints, search, robust),
            pn.Row(run, cancel, bar), self._status,
            pn.Row(pn.Column(self._front_plot, self._front_table), pn.Column(pick, compare, use)),
            self._members, name="Optimise", sizing_mode="stretch_width")


def _evidence(res) -> str:
    levels = {getattr(c.prediction, "evidence", "?") for c in res.pareto if c.predictions}
    return ", ".join(sorted(levels)) or "n/a"
