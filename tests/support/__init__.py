"""Helpers shared by every test area: a real server process (:mod:`tests.support.live_server`) and
valid record envelopes (:mod:`tests.support.records`)."""
