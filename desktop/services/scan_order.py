"""Switch-scanning order in plain Python (no Qt): groups of targets, a highlight that moves group by
group then item by item, and what one press means where the highlight is (issue 14).

The page is a list of targets in focus order, each with an optional group key; consecutive targets
with the same key form one group, a target without a key is a group of its own. At group level the
highlight visits each group; a press on a group of several targets enters it, a press on a one-target
group selects that target. Inside a group the highlight visits each target and then a "leave" stop
(the whole group again); a press there returns to group level, so nothing traps the user. The scan
loops without end and never selects by itself: only :meth:`ScanModel.select` selects.

Where a scan starts matters more than anything for the number of presses: it starts on the target
the page focuses (the selected answer, else Next), inside that target's group, and on a question
whose answer is not chosen yet it starts at the answer given on the previous page when that answer
is one of this page's answers (ALSFRS-R items share 4…0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Hashable, Iterable, Sequence

GROUP, ITEM, LEAVE = "group", "item", "leave"


@dataclass(frozen=True)
class Highlight:
    kind: str                     # GROUP (a whole group), ITEM (one target) or LEAVE (back to groups)
    keys: tuple[Hashable, ...]    # the targets highlighted (one for ITEM, the group's for GROUP/LEAVE)


@dataclass(frozen=True)
class Action:
    kind: str                     # "activate" a target, "enter" a group, "leave" a group
    key: Hashable | None = None


def group_targets(stops: Iterable[tuple[Hashable, str | None]]) -> list[list[Hashable]]:
    """Consecutive targets that share a group key form one group; a key of None stands alone."""
    groups: list[list[Hashable]] = []
    last: str | None = None
    for key, group in stops:
        if group is not None and group == last and groups:
            groups[-1].append(key)
        else:
            groups.append([key])
        last = group
    return groups


def same_value(a: Any, b: Any) -> bool:
    """Equal and of the same type: an answer False (no feeding tube) is not the score 0."""
    return type(a) is type(b) and a == b


def start_value(previous: Sequence[Any], options: Sequence[Any]) -> Any:
    """The most recent earlier answer that is one of ``options`` (None if there is none)."""
    for value in reversed(previous):
        if value is not None and any(same_value(value, o) for o in options):
            return value
    return None


class ScanModel:
    """Where the highlight is, and what ticks (auto-scan), moves (step-scan) and presses do."""

    def __init__(self, groups: list[list[Hashable]], start: Hashable | None = None) -> None:
        self.groups = [g for g in groups if g]
        self.gi = 0
        self.ii: int | None = None      # None: at group level; else index in the group (len = leave)
        if start is not None:
            self.place(start)

    @classmethod
    def from_stops(cls, stops: Iterable[tuple[Hashable, str | None]], start: Hashable | None = None) -> "ScanModel":
        return cls(group_targets(stops), start)

    def place(self, key: Hashable) -> bool:
        """Put the highlight on ``key``: inside its group when the group has several targets."""
        for gi, group in enumerate(self.groups):
            if key in group:
                self.gi = gi
                self.ii = group.index(key) if len(group) > 1 else None
                return True
        return False

    @property
    def empty(self) -> bool:
        return not self.groups

    def current(self) -> Highlight | None:
        if self.empty:
            return None
        group = self.groups[self.gi]
        if self.ii is None:
            if len(group) == 1:
                return Highlight(ITEM, (group[0],))
            return Highlight(GROUP, tuple(group))
        if self.ii >= len(group):
            return Highlight(LEAVE, tuple(group))
        return Highlight(ITEM, (group[self.ii],))

    def advance(self) -> Highlight | None:
        """One tick of auto-scan or one press of the "move" switch: the next stop, looping."""
        if self.empty:
            return None
        if self.ii is None:
            self.gi = (self.gi + 1) % len(self.groups)
        else:
            self.ii = (self.ii + 1) % (len(self.groups[self.gi]) + 1)
        return self.current()

    def select(self) -> Action | None:
        """A press of the (select) switch where the highlight is."""
        h = self.current()
        if h is None:
            return None
        if h.kind == ITEM:
            return Action("activate", h.keys[0])
        if h.kind == GROUP:
            self.ii = 0
            return Action("enter")
        self.ii = None       # leave: back to group level, still on this group
        return Action("leave")

    def route(self, target: Hashable, limit: int = 10_000) -> tuple[int, int]:
        """(advances, presses) from here until ``target`` is activated, taking the first way round
        (the model is not changed). Raises LookupError if the target is not on the page."""
        probe = ScanModel(self.groups)
        probe.gi, probe.ii = self.gi, self.ii
        advances = presses = 0
        for _ in range(limit):
            h = probe.current()
            if h is None:
                break
            wanted = target in h.keys
            if h.kind == ITEM and wanted:
                return advances, presses + 1
            if h.kind == GROUP and wanted:
                probe.select()
                presses += 1
                continue
            if h.kind == LEAVE and not wanted:
                probe.select()
                presses += 1
                continue
            probe.advance()
            advances += 1
        raise LookupError(f"{target!r} cannot be reached")

    def next_action(self, target: Hashable) -> str:
        """What a user aiming at ``target`` does now: "press" or "wait" (let the scan move on)."""
        h = self.current()
        if h is None:
            raise LookupError("nothing to scan")
        wanted = target in h.keys
        if (h.kind in (ITEM, GROUP) and wanted) or (h.kind == LEAVE and not wanted):
            return "press"
        return "wait"
