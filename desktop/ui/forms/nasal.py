"""Nose and sinus diary: "No symptoms today" in one step, or each symptom 0–3 with its anchors;
cough/choking at dosing only on dosing days; nosebleed help, medical care, optional notes; review."""

from __future__ import annotations

from datetime import date

from shared.instruments import load_instrument
from shared.vocab import NOTES_MAX

from desktop.services.fmt import long_date
from desktop.services.today import is_dosing_day, timeline_of
from desktop.ui.forms.base import Opt, ReviewRow, Step, WizardForm


class NasalForm(WizardForm):
    kind = "nasal_symptoms"

    def title(self) -> str:
        return self.tr("kind.nasal_symptoms")

    def prepare(self) -> None:
        c = self.draft.context
        if not c.get("date"):
            now = self.ctx.clock.now()
            tl = timeline_of(self.ctx.store)
            c["date"] = (tl.local_date(now) if tl else now.date()).isoformat()
        if "dosing_day" not in c:
            c["dosing_day"] = is_dosing_day(self.ctx.store, date.fromisoformat(c["date"]))

    def _w(self, obj: dict) -> str:
        return obj.get(self.ctx.lang) or obj.get("en", "")

    def header_lines(self) -> list[str]:
        return [self.tr("nasal.for_date", day=long_date(date.fromisoformat(self.draft.context["date"]),
                                                         self.ctx.lang))]

    def symptoms(self) -> list[dict]:
        dosing = bool(self.draft.context.get("dosing_day"))
        return [s for s in load_instrument("nasal_symptoms").content["symptoms"]
                if dosing or not s["dosing_day_only"]]

    def steps(self) -> list[Step]:
        content = load_instrument("nasal_symptoms").content
        qs = content["questions"]
        grades = content["grades"]
        steps = [self.respondent_step()]
        steps.append(Step("any", "choice", self.tr("nasal.any_question"), self.tr("form.start"),
                          options=[Opt(True, self._w(qs["no_symptoms"])), Opt(False, self.tr("nasal.yes_record"))],
                          get=lambda: self.a.get("none"), set=lambda v: self.put("none", v),
                          review_label=self.tr("nasal.any_question")))
        if self.a.get("none") is False:
            symptoms = self.symptoms()
            for n, s in enumerate(symptoms, start=1):
                name = s["name"]
                opts = [Opt(g["value"], f"{self._w(g['label'])} — {self._w(g['text'])}", str(g["value"]))
                        for g in grades]
                steps.append(Step(
                    f"symptom:{name}", "choice", self._w(s["title"]),
                    self.tr("nasal.progress", n=n, total=len(symptoms)), (n, len(symptoms)),
                    help=self._w(s["help"]), options=opts,
                    get=lambda k=name: (self.a.get("symptoms") or {}).get(k),
                    set=lambda v, k=name: self.put_in("symptoms", k, v), digits=True))
            if ((self.a.get("symptoms") or {}).get("epistaxis") or 0) >= 1 or self.a.get("epistaxis_needed_help"):
                steps.append(Step("epistaxis_help", "choice", self._w(qs["epistaxis_needed_help"]),
                                  options=self.yes_no(), get=lambda: self.a.get("epistaxis_needed_help"),
                                  set=lambda v: self.put("epistaxis_needed_help", v)))
            steps.append(Step("care", "choice", self._w(qs["sought_medical_care"]), options=self.yes_no(),
                              get=lambda: self.a.get("sought_medical_care"),
                              set=lambda v: self.put("sought_medical_care", v)))
            steps.append(Step("notes", "text", self._w(qs["notes"]), help=self.tr("form.optional_help"),
                              optional=True, multiline=True, max_length=NOTES_MAX,
                              get=lambda: self.a.get("notes"), set=lambda v: self.put("notes", v, save=False)))
        steps.append(Step("review", "review", ""))
        return steps

    def extra_review_rows(self) -> list[ReviewRow]:
        if not self.a.get("none"):
            return []
        grade0 = load_instrument("nasal_symptoms").content["grades"][0]
        words = f"0 {self._w(grade0['label'])} — {self._w(grade0['text'])}"
        return [ReviewRow(self._w(s["title"]), words, None, True) for s in self.symptoms()]
