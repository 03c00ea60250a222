"""The scan order without Qt: groups, looping, leaving a group, where a scan starts, press counts."""

from desktop.services.scan_order import GROUP, ITEM, LEAVE, ScanModel, group_targets, same_value, start_value
from desktop.store.settings import AccessPrefs

PAGE = [("back", "nav"), ("pause", "nav"), ("o4", "opts"), ("o3", "opts"), ("o2", "opts"),
        ("o1", "opts"), ("o0", "opts"), ("who", None), ("next", None), ("send", "status")]


def test_consecutive_targets_of_one_key_form_a_group_and_a_keyless_target_stands_alone():
    assert group_targets(PAGE) == [["back", "pause"], ["o4", "o3", "o2", "o1", "o0"], ["who"], ["next"], ["send"]]
    assert group_targets([("a", None), ("b", None)]) == [["a"], ["b"]]


def test_group_level_loops_without_end_and_never_selects_by_itself():
    m = ScanModel.from_stops(PAGE)
    seen = [m.current()]
    for _ in range(50):
        seen.append(m.advance())
    kinds = {h.kind for h in seen}
    assert kinds == {GROUP, ITEM}                      # moving never activates anything
    assert seen[0] == seen[5] == seen[50]              # five groups, round and round
    assert seen[0].keys == ("back", "pause")


def test_a_press_enters_a_group_then_items_then_leave_returns_to_the_same_group():
    m = ScanModel.from_stops(PAGE)
    m.advance()                                       # the answers
    assert m.current().kind == GROUP
    assert m.select().kind == "enter"
    assert m.current().keys == ("o4",)
    for _ in range(5):
        m.advance()
    assert m.current().kind == LEAVE
    assert m.select().kind == "leave"
    assert m.current().kind == GROUP and m.current().keys[0] == "o4"
    m.advance()
    assert m.current().keys == ("who",) and m.select().key == "who"


def test_a_scan_starts_inside_the_group_of_the_start_target():
    m = ScanModel.from_stops(PAGE, start="o2")
    assert m.current().keys == ("o2",) and m.current().kind == ITEM
    assert m.route("o2") == (0, 1)
    assert m.route("o0") == (2, 1)
    assert m.route("o4") == (4, 1)                    # o1, o0, leave, o4: the leave stop is passed, not pressed
    assert m.route("next") == (5, 2)                  # to leave, press, then who, next
    m = ScanModel.from_stops(PAGE, start="next")
    assert m.route("next") == (0, 1)


def test_the_previous_answer_of_the_same_type_is_where_answers_start():
    assert start_value([None, "caregiver", False, 3, 2], [4, 3, 2, 1, 0]) == 2
    assert start_value(["caregiver", False], [4, 3, 2, 1, 0]) is None   # False is not the score 0
    assert start_value([True], [True, False]) is True
    assert not same_value(0, False) and same_value(1, 1)


def test_access_prefs_are_clamped_and_dwell_is_off_by_default():
    p = AccessPrefs()
    assert p.scan_mode == "off" and p.dwell_ms == 0 and p.scan_interval_ms == 1500
    q = AccessPrefs.from_dict({"scan_mode": "sideways", "scan_interval_ms": 99, "dwell_ms": 9000,
                               "move_keys": [13], "step_select_keys": [13], "junk": 1})
    assert q.scan_mode == "off" and q.scan_interval_ms == 500 and q.dwell_ms == 3000
    assert q.move_keys != q.step_select_keys


def test_access_prefs_survive_a_restart(tmp_path):
    from desktop.store import Store
    store = Store(tmp_path)
    store.settings.save_access(AccessPrefs(scan_mode="two", scan_interval_ms=2500, dwell_ms=800,
                                           move_keys=[0x31], step_select_keys=[0x32], speak_highlight=True))
    store.close()
    again = Store(tmp_path)
    p = again.settings.access()
    again.close()
    assert (p.scan_mode, p.scan_interval_ms, p.dwell_ms, p.move_keys, p.step_select_keys, p.speak_highlight) \
        == ("two", 2500, 800, [0x31], [0x32], True)
