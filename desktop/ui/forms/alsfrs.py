"""ALSFRS-R: who is answering, the feeding-tube question (selects 5a or 5b), twelve items one per
page with the five options 4→0 and their full anchors, a review page without any total."""

from __future__ import annotations

from shared.instruments import load_instrument

from desktop.services.entries import alsfrs_keys
from desktop.ui.forms.base import Opt, Step, WizardForm


class AlsfrsForm(WizardForm):
    kind = "alsfrs_r"

    def title(self) -> str:
        return self.tr("kind.alsfrs_r")

    def _w(self, obj: dict) -> str:
        return obj.get(self.ctx.lang) or obj.get("en", "")

    def set_gastrostomy(self, value: bool) -> None:
        old = self.a.get("gastrostomy")
        if old is not None and old != value:
            gone = "5a" if value else "5b"
            if gone in (self.a.get("items") or {}):
                del self.a["items"][gone]
                (self.a.get("item_respondent") or {}).pop(gone, None)
                self.a["_item5_cleared"] = True
        self.put("gastrostomy", value)

    def steps(self) -> list[Step]:
        content = load_instrument("alsfrs_r").content
        g = content["gastrostomy_question"]
        items = {i["id"]: i for i in content["items"]}
        steps = [self.respondent_step()]
        steps.append(Step("gastrostomy", "choice", self._w(g["text"]), self.tr("alsfrs.before_items"),
                          options=[Opt(True, self._w(g["yes"])), Opt(False, self._w(g["no"]))],
                          get=lambda: self.a.get("gastrostomy"), set=self.set_gastrostomy,
                          notice=self.tr("alsfrs.item5_cleared") if self.a.get("_item5_cleared") else ""))
        keys = alsfrs_keys(self.a.get("gastrostomy"))
        for n, key in enumerate(keys, start=1):
            item = items[key]
            title = self._w(item["title"])
            opts = [Opt(o["value"], self._w(o["text"]), str(o["value"])) for o in item["options"]]
            steps.append(Step(
                f"item:{key}", "choice", self._w(item["question"]),
                self.tr("alsfrs.progress", n=n, total=len(keys), title=title), (n, len(keys)),
                options=opts, get=lambda k=key: (self.a.get("items") or {}).get(k),
                set=lambda v, k=key: self.put_in("items", k, v), digits=True, who_item=key,
                review_label=f"{key}. {title}"))
        steps.append(Step("review", "review", ""))
        return steps

    def next(self) -> None:
        if self.step_id == "gastrostomy":
            self.a.pop("_item5_cleared", None)
        super().next()
