"""orchestrator.run_router.PerRun: each run's documents reach that run's callbacks, in order, as
they were emitted (no Filler repacking the pages), with runs interleaved as a campaign's are."""

from __future__ import annotations

from event_model import compose_run

from orchestrator.run_router import PerRun


def _run(name: str) -> list[tuple[str, dict]]:
    bundle = compose_run(metadata={"cell": name})
    desc = bundle.compose_descriptor(
        name="primary", data_keys={"voltage_V": {"source": "sim", "dtype": "number", "shape": []}}
    )
    pages = [
        desc.compose_event_page(data={"voltage_V": [3.0 + i, 3.5 + i]}, timestamps={"voltage_V": [1.0, 2.0]},
                                seq_num=[2 * i + 1, 2 * i + 2], validate=False)  # fmt: skip
        for i in range(2)
    ]
    return [("start", bundle.start_doc), ("descriptor", desc.descriptor_doc),
            *(("event_page", p) for p in pages), ("stop", bundle.compose_stop())]  # fmt: skip


def test_interleaved_runs_each_reach_their_own_callbacks_unchanged() -> None:
    runs = {"A": _run("A"), "B": _run("B")}
    received: dict[str, list[tuple[str, dict]]] = {}

    def factory(start: dict) -> list:
        got = received.setdefault(start["cell"], [])
        return [lambda name, doc: got.append((name, doc))]

    router = PerRun(factory)
    for a, b in zip(runs["A"], runs["B"], strict=True):  # one document of each in turn
        router(*a)
        router(*b)
    for cell, docs in runs.items():
        assert [name for name, _ in received[cell]] == [name for name, _ in docs]
        for (_, got), (_, sent) in zip(received[cell], docs, strict=True):
            assert got is sent  # handed on as emitted, not unpacked and repacked
    assert router._callbacks == {} and router._run_of == {}  # nothing kept once the runs stopped


def test_documents_of_a_run_started_before_subscribing_are_ignored() -> None:
    calls: list[str] = []
    router = PerRun(lambda start: [lambda name, doc: calls.append(name)])
    docs = _run("late")
    for name, doc in docs[1:]:  # its start was missed
        router(name, doc)
    assert calls == []
    for name, doc in _run("next"):
        router(name, doc)
    assert calls == ["start", "descriptor", "event_page", "event_page", "stop"]


def test_a_single_event_is_handed_on_as_a_page_of_one_and_its_point_is_read_back(tmp_path) -> None:
    """A plan's own `trigger_and_read` emits single events: they reach the journal as pages (as
    event_model's RunRouter hands them on), so the run's reader counts their points."""
    from orchestrator.run_frames import raw_frame
    from orchestrator.storage import Journal, journal_documents

    bundle = compose_run(metadata={"cell": "single"})
    desc = bundle.compose_descriptor(
        name="primary", data_keys={"voltage_V": {"source": "sim", "dtype": "number", "shape": []}}
    )
    events = [desc.compose_event(data={"voltage_V": v}, timestamps={"voltage_V": t}, seq_num=i + 1)
              for i, (v, t) in enumerate([(3.1, 1.0), (3.2, 2.0), (3.3, 3.0)])]  # fmt: skip
    router = PerRun(lambda start: [Journal(tmp_path)])
    for name, doc in [("start", bundle.start_doc), ("descriptor", desc.descriptor_doc),
                      *(("event", e) for e in events), ("stop", bundle.compose_stop())]:  # fmt: skip
        router(name, doc)
    docs = list(journal_documents(tmp_path / "journal" / f"{bundle.start_doc['uid']}.jsonl"))
    assert [name for name, _ in docs] == ["start", "descriptor", "event_page", "event_page", "event_page", "stop"]
    _, frame = raw_frame(iter(docs))
    assert frame["voltage_V"].tolist() == [3.1, 3.2, 3.3]
