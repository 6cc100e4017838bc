"""Every analyser test (test_analysis_*) runs twice: with the compiled pcap walker
(lab/analysis/_walk.pyx, built by make install) and with its Python twin, which it must
match in every request and count."""

import pytest

from lab.analysis import dissect


def pytest_generate_tests(metafunc):
    if metafunc.module.__name__.startswith("test_analysis_"):
        metafunc.parametrize("pcap_walker", ["compiled", "python"], indirect=True)


@pytest.fixture(autouse=True)
def pcap_walker(request, monkeypatch):
    kind = getattr(request, "param", None)
    if kind == "compiled":
        from lab.analysis import _walk  # ImportError: not built; make install builds it

        monkeypatch.setattr(dissect, "walk_block", _walk.walk_block)
    elif kind == "python":
        monkeypatch.setattr(dissect, "walk_block", dissect.walk_block_python)
    return kind
