import pytest

from desktop.services.entries import EntryService
from desktop.store import Store

from tests.desktop.helpers import clock as make_clock, pair


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "data")
    yield s
    s.close()


@pytest.fixture
def clock():
    return make_clock()


@pytest.fixture
def paired(store):
    pair(store)
    return store


@pytest.fixture
def entries(paired, clock):
    return EntryService(paired, clock)
