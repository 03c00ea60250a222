"""Dose confirmation: the planned dose and date with the protocol's neutral product wording; given
or not; the time (defaulting to now, to be accepted or changed); who gave it; nostrils; full or part;
retained or lost and how; a reason when a nostril was not given; kit number; notes; review."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from shared.instruments import load_instrument
from shared.schemas.records import ADMINISTERED_AFTER_ENTRY_TOLERANCE
from shared.vocab import LOSS_REASONS, MISSED_REASONS, NOTES_MAX, NOSTRILS

from desktop.clock import local_iso
from desktop.services.entries import nostrils_given
from desktop.services.fmt import hhmm, long_date, long_datetime, short_date
from desktop.services.today import planned_doses, protocol_of
from desktop.ui.forms.base import Opt, Step, WizardForm
from desktop.ui.qt import QLineEdit


class DoseForm(WizardForm):
    kind = "dose_confirmation"

    def title(self) -> str:
        return self.tr("kind.dose_confirmation")

    @property
    def c(self) -> dict:
        return load_instrument("dose_confirmation").content

    def _w(self, obj: dict | None) -> str:
        return (obj or {}).get(self.ctx.lang) or (obj or {}).get("en", "")

    def f(self, key: str) -> str:
        return self._w(self.c["fields"][key])

    def header_lines(self) -> list[str]:
        ctx = self.draft.context
        if not ctx.get("dose_number"):
            return []
        protocol = protocol_of(self.ctx.store)
        wording = self._w(protocol.data.get("product", {}).get("wording")) if protocol else ""
        wording = wording or self._w(self.c["product_wording"])
        planned = ctx.get("planned_date")
        when = long_date(date.fromisoformat(planned), self.ctx.lang) if planned else self.tr("dose.no_date")
        return [self.tr("dose.header", n=ctx["dose_number"], when=when, product=wording)]

    # --- which dose -------------------------------------------------------------------------------
    def _pick_dose(self, n: int) -> None:
        now = self.ctx.clock.now()
        planned = next((d["planned_date"] for d in planned_doses(self.ctx.store, now) if d["dose_number"] == n), None)
        self.draft.context["dose_number"] = n
        self.draft.context["planned_date"] = (planned or now.date()).isoformat()
        self.save()

    def _dose_options(self) -> list[Opt]:
        now = self.ctx.clock.now()
        out = []
        for d in planned_doses(self.ctx.store, now):
            text = self.tr("kind.dose_n", n=d["dose_number"])
            if d["planned_date"]:
                text += " · " + self.tr("dose.planned_on", day=short_date(d["planned_date"], self.ctx.lang))
            if d["status"] == "done":
                text += " · " + self.tr("chip.done")
            out.append(Opt(d["dose_number"], text, str(d["dose_number"])))
        return out

    # --- the time page ----------------------------------------------------------------------------
    def proposed_time(self) -> datetime:
        raw = self.a.get("administered_at") or self.a.get("_proposed_at")
        if raw:
            return datetime.fromisoformat(raw)
        now = self.ctx.clock.now().replace(second=0, microsecond=0)
        self.a["_proposed_at"] = local_iso(now)
        return now

    def _propose(self, moment: datetime) -> None:
        self.a["_proposed_at"] = local_iso(moment)
        self.a["administered_at"] = None
        self.save()
        self.refresh()
        self.focus_named("timeOk")

    def _accept_time(self) -> None:
        moment = self.proposed_time()
        latest = self.ctx.clock.now() + ADMINISTERED_AFTER_ENTRY_TOLERANCE
        if moment > latest:
            self.errors = [self.tr("dose.time_future", latest=hhmm(self.ctx.clock.now()))]
            self.refresh()
            return
        self.a["administered_at"] = local_iso(moment)
        self.save()
        self.refresh()
        self.focus_first(prefer_next=True)

    def _typed_time(self) -> None:
        day_text, time_text = self.day_field.text().strip(), self.time_field.text().strip()
        try:
            day = date.fromisoformat(day_text)
            hh, mm = (int(x) for x in time_text.split(":"))
            moment = self.ctx.clock.now().replace(year=day.year, month=day.month, day=day.day, hour=hh,
                                                  minute=mm, second=0, microsecond=0)
        except (ValueError, TypeError):
            self.errors = [self.tr("dose.time_invalid")]
            self.refresh()
            return
        self.errors = []
        self._propose(moment)

    def render_custom(self, step: Step) -> None:
        moment = self.proposed_time()
        now = self.ctx.clock.now()
        if moment.date() == now.date():
            shown = self.tr("dose.given_at_today", time=hhmm(moment))
        else:
            shown = self.tr("dose.given_at", when=long_datetime(moment, self.ctx.lang))
        confirmed = self.a.get("administered_at") is not None
        self.text(("✓ " if confirmed else "") + shown, "heading")
        ok = self.button(self.tr("dose.time_ok"), self._accept_time, big=True, name="timeOk")
        ok.setProperty("selected", confirmed)
        row = self.row()
        self.button(self.tr("dose.time_now"), lambda: self._propose(now.replace(second=0, microsecond=0)),
                    layout=row, name="timeNow")
        self.button(self.tr("dose.time_minus15"), lambda: self._propose(moment - timedelta(minutes=15)),
                    layout=row, name="timeMinus15")
        self.text(self.tr("dose.change_time"))
        row2 = self.row()
        self.day_field = QLineEdit(moment.date().isoformat())
        self.day_field.setObjectName("dayField")
        self.day_field.setInputMask("9999-99-99")
        self.day_field.setAccessibleName(self.tr("dose.day_field"))
        self.time_field = QLineEdit(hhmm(moment))
        self.time_field.setObjectName("timeField")
        self.time_field.setInputMask("99:99")
        self.time_field.setAccessibleName(self.tr("dose.time_field"))
        self.time_field.returnPressed.connect(self._typed_time)
        row2.addWidget(self.day_field, 2)
        row2.addWidget(self.time_field, 1)
        self.button(self.tr("dose.use_time"), self._typed_time, layout=row2, name="useTime")
        self._first_field = ok

    def custom_answer_text(self, step: Step) -> str:
        at = self.a.get("administered_at")
        return long_datetime(datetime.fromisoformat(at), self.ctx.lang) if at else self.tr("answer.missing")

    # --- steps ------------------------------------------------------------------------------------
    def toggle_loss(self, values: list) -> None:
        self.put("loss", values)

    def steps(self) -> list[Step]:
        ctx = self.draft.context
        if not ctx.get("dose_number"):
            return [Step("which", "choice", self.tr("dose.which"), options=self._dose_options(),
                         get=lambda: None, set=self._pick_dose, digits=True),
                    Step("review", "review", "")]
        c = self.c
        steps = [self.respondent_step()]
        steps.append(Step("given", "choice", self.f("given"),
                          options=[Opt(True, self.f("given_yes")), Opt(False, self.f("given_no"))],
                          get=lambda: self.a.get("given"), set=lambda v: self.put("given", v)))
        given = self.a.get("given")
        sides = nostrils_given(self.a)
        if given:
            steps.append(Step("time", "custom", self.f("administered_at"),
                              get=lambda: self.a.get("administered_at")))
            steps.append(Step("by", "choice", self.f("administered_by"),
                              options=[Opt(v, self._w(c["administered_by"][v]))
                                       for v in ("participant", "caregiver", "site_staff")],
                              get=lambda: self.a.get("administered_by"), set=lambda v: self.put("administered_by", v)))
            steps.append(Step("nostrils", "choice", self.f("nostrils"),
                              options=[Opt("both", self.tr("dose.both")), Opt("left", self.tr("dose.left_only")),
                                       Opt("right", self.tr("dose.right_only"))],
                              get=lambda: self.a.get("nostrils"), set=lambda v: self.put("nostrils", v)))
            for side in (s for s in NOSTRILS if s in sides):
                steps.append(Step(f"volume:{side}", "choice", f"{self.f(side)}: {self.f('volume')}",
                                  options=[Opt("full", self.f("volume_full")), Opt("partial", self.f("volume_partial"))],
                                  get=lambda s=side: (self.a.get("volume") or {}).get(s),
                                  set=lambda v, s=side: self.put_in("volume", s, v)))
            for side in (s for s in NOSTRILS if s in sides):
                steps.append(Step(f"retained:{side}", "choice", f"{self.f(side)}: {self.f('retained')}",
                                  options=[Opt(True, self.f("retained_yes")), Opt(False, self.f("retained_no"))],
                                  get=lambda s=side: (self.a.get("retained") or {}).get(s),
                                  set=lambda v, s=side: self.put_in("retained", s, v)))
            if any((self.a.get("retained") or {}).get(s) is False for s in sides):
                steps.append(Step("loss", "multi", self.f("loss"), help=self.tr("dose.loss_help"),
                                  options=[Opt(v, self._w(c["loss"][v])) for v in LOSS_REASONS],
                                  get=lambda: self.a.get("loss") or [], set=self.toggle_loss))
        if given is False or (given and sides and len(sides) < len(NOSTRILS)):
            steps.append(Step("reason", "choice", self.f("missed_reason"),
                              options=[Opt(v, self._w(c["missed_reasons"][v])) for v in MISSED_REASONS],
                              get=lambda: self.a.get("missed_reason"), set=lambda v: self.put("missed_reason", v)))
            if self.a.get("missed_reason") == "other":
                steps.append(Step("reason_text", "text", self.f("missed_reason_text"),
                                  get=lambda: self.a.get("missed_reason_text"),
                                  set=lambda v: self.put("missed_reason_text", v, save=False)))
        if given is not None:
            steps.append(Step("kit", "text", self.f("kit_number"), help=self.tr("dose.kit_help"),
                              optional=True, max_length=64, get=lambda: self.a.get("kit_number"),
                              set=lambda v: self.put("kit_number", v, save=False)))
            steps.append(Step("other", "text", self.f("concomitant_nasal_products"),
                              help=self.tr("form.optional_help"), optional=True, max_length=500,
                              get=lambda: self.a.get("concomitant_nasal_products"),
                              set=lambda v: self.put("concomitant_nasal_products", v, save=False)))
            steps.append(Step("notes", "text", self.f("notes"), help=self.tr("form.optional_help"),
                              optional=True, multiline=True, max_length=NOTES_MAX,
                              get=lambda: self.a.get("notes"), set=lambda v: self.put("notes", v, save=False)))
        steps.append(Step("review", "review", ""))
        total = len([s for s in steps if s.kind != "review"])
        for n, s in enumerate(steps, start=1):
            if s.kind != "review":
                s.progress = self.tr("dose.progress", n=n, total=total)
        return steps

    def next(self) -> None:
        if self.step_id == "which":
            return
        super().next()

    def pick(self, step, button) -> None:
        if step.id == "which":
            step.set(button.value)
            self.step_id = ""
            self.refresh()
            self.focus_first()
            return
        super().pick(step, button)
