"""``--runner=DaskRunner``: Beam's DaskRunner with the translation this job needs (an override).

Beam 2.77's ``apache_beam.runners.dask.dask_runner.DaskRunner`` translates a pipeline into Dask
bags, but five gaps make it fail or hang on this job; :class:`DaskRunner` here subclasses it
(same options, ``--dask_client_address`` and the rest) and replaces the translation:

1. **Tagged outputs.** Beam's translation puts every output of a multi-output ``ParDo`` into one
   bag, so the dead-letter branch receives documents. Here each output PCollection is its own bag
   (the producer's ``(tag, value)`` pairs filtered by tag).
2. **finish_bundle outputs.** Beam's bundle function takes the results *before*
   ``finish_bundle``, so ``BatchElements`` (RunInference, the label stage) loses its last batch.
   Here a bundle's outputs are taken after ``finish_bundle``.
3. **Side inputs.** Beam's translation computes a side input inside the consuming worker task
   (a nested ``compute`` that re-runs the upstream stages and fails with "cannot schedule new
   futures after interpreter shutdown"). Here a side input is a Dask ``Item``: a dependency of
   the consuming tasks, computed once by the scheduler.
4. **Sinks.** Beam computes only the last transform's bag; here every leaf is computed.
5. **Dead workers.** Beam's ``wait_until_finish`` waits forever when the workers are gone. Here
   it raises a ``RuntimeError`` naming the task when a worker died running it (Dask's
   ``KilledWorker``, after ``distributed.scheduler.allowed-failures`` retries), or when the
   cluster has had no worker for ``--dask_no_worker_timeout`` seconds.

DoFns travel as Beam's pickler writes them (as on every other runner) and are unpickled afresh
for each bag partition (one Beam bundle). Only global windows are supported (the job uses no
other); a transform the translation does not know fails at submission, naming it. Beam metrics
(counters) are not collected on Dask; the job's counts travel in the data (``summary.json``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import pickle
import time
import uuid
import typing as t

import apache_beam as beam
from apache_beam.internal import pickler
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.pipeline import AppliedPTransform, PipelineVisitor, PTransformOverride
from apache_beam.runners.common import DoFnContext, DoFnInvoker, DoFnSignature, Receiver
from apache_beam.runners.common import _OutputHandler
from apache_beam.runners.dask import dask_runner as beam_dask
from apache_beam.runners.dask.overrides import _Create, _Flatten, _GroupByKeyOnly, _Reshuffle
from apache_beam.runners.runner import PipelineResult, PipelineState
from apache_beam.transforms.sideinputs import SideInputMap
from apache_beam.transforms.window import GlobalWindow, GlobalWindows

if t.TYPE_CHECKING:
    import distributed

POLL_SECONDS = 1.0

_LOGGER = logging.getLogger(__name__)


class EpoxyDaskOptions(PipelineOptions):
    """Options of this override (Beam's ``DaskOptions`` are passed to ``distributed.Client``)."""

    @classmethod
    def _add_argparse_args(cls, parser) -> None:
        parser.add_argument(
            "--dask_no_worker_timeout",
            type=float,
            default=60.0,
            help="Fail the run when the Dask cluster has had no worker for this many seconds.",
        )


def _leaf_override(beam_class: type, make: t.Callable[[t.Any], beam.PTransform]) -> PTransformOverride:
    class _Override(PTransformOverride):
        def matches(self, applied: AppliedPTransform) -> bool:
            return applied.transform.__class__ == beam_class

        def get_replacement_transform_for_applied_ptransform(self, applied):
            return make(applied.transform)

    return _Override()


def dask_overrides() -> list[PTransformOverride]:
    """Create, Reshuffle, Flatten and GroupByKey become leaves the translation knows."""
    return [
        _leaf_override(beam.Create, lambda transform: _Create(transform.values)),
        _leaf_override(beam.Reshuffle, lambda transform: _Reshuffle()),
        _leaf_override(beam.Flatten, lambda transform: _Flatten()),
        _leaf_override(beam.GroupByKey, lambda transform: _GroupByKeyOnly()),
    ]


class _ListReceiver(Receiver):
    """Collects a bundle's outputs as ``(tag, value)``; rejects non-global windows."""

    def __init__(self, tag: str | None, outputs: list, label: str):
        self._tag, self._outputs, self._label = tag, outputs, label

    def receive(self, windowed_value) -> None:
        if any(not isinstance(window, GlobalWindow) for window in windowed_value.windows):
            raise NotImplementedError(
                f"stage {self._label!r} output into window {windowed_value.windows}: the Dask "
                "translation supports only the global window; use another runner"
            )
        self._outputs.append((self._tag, windowed_value.value))


class _TaggedReceivers(dict):
    def __init__(self, outputs: list, label: str):
        super().__init__()
        self._outputs, self._label = outputs, label

    def __missing__(self, tag):
        self[tag] = _ListReceiver(tag, self._outputs, self._label)
        return self[tag]


def run_bundle(items: list, payload: bytes, *side_values: list) -> list:
    """Runs one Beam bundle (a graph partition) through a DoFn; returns ``(tag, value)`` pairs.

    Args:
        items: The partition's elements.
        payload: Beam's pickle of ``(label, fn, args, kwargs, side_views)``.
        *side_values: Each side input's elements, in ``side_views`` order.
    """
    label, fn, args, kwargs, side_views = pickler.loads(payload)
    outputs: list = []
    receivers = _TaggedReceivers(outputs, label)
    side_inputs = [
        SideInputMap(view_class, options, [GlobalWindows.windowed_value(v) for v in values])
        for (view_class, options), values in zip(side_views, side_values)
    ]
    invoker = DoFnInvoker.create_invoker(
        DoFnSignature(fn),
        _OutputHandler(GlobalWindows(), receivers[None], receivers, None, None, False, False),
        context=DoFnContext(label, state=None),
        side_inputs=side_inputs,
        input_args=list(args),
        input_kwargs=dict(kwargs),
        user_state_context=None,
        bundle_finalizer_param=beam.DoFn.BundleFinalizerParam(),
    )
    invoker.invoke_setup()
    invoker.invoke_start_bundle()
    for item in items:
        invoker.invoke_process(GlobalWindows.windowed_value(item))
    invoker.invoke_finish_bundle()
    invoker.invoke_teardown()
    return outputs


def _literal(payload: bytes) -> t.Any:
    return pickler.loads(payload)


def _select_tag(pairs: list, tag_payload: bytes) -> list:
    tag = pickler.loads(tag_payload)
    return [value for output_tag, value in pairs if output_tag == tag]


def _key_hash(key: t.Any) -> int:
    """A hash of a grouping key that is the same in every worker process."""
    encoded = repr(key).encode() if isinstance(key, (str, bytes, int)) else pickle.dumps(key, 4)
    return int.from_bytes(hashlib.blake2b(encoded, digest_size=8).digest(), "little")


def _split_by_key(items: list, num_parts: int) -> list[list]:
    parts: list[list] = [[] for _ in range(num_parts)]
    for key, value in items:
        parts[_key_hash(key) % num_parts].append((key, value))
    return parts


def _group_part(splits: list[list[list]], part: int) -> list:
    groups: dict = {}
    for split in splits:
        for key, value in split[part]:
            groups.setdefault(key, []).append(value)
    return list(groups.items())


def _concat(lists: list[list]) -> list:
    return [value for values in lists for value in values]


def _count(lists: list[list]) -> int:
    return sum(len(values) for values in lists)


@dataclasses.dataclass
class _Translator(PipelineVisitor):
    """Turns each leaf transform into tasks of a Dask graph: one task per partition.

    Literal data (Create's values, DoFn payloads, tags) enters the graph only as bytes, so no
    value is ever mistaken for a task or a key; keys are ``(name, index)`` tuples.
    """

    num_partitions: int
    graph: dict = dataclasses.field(default_factory=dict)
    partitions: dict = dataclasses.field(default_factory=dict)
    consumed: set = dataclasses.field(default_factory=set)

    def visit_transform(self, node: AppliedPTransform) -> None:
        transform = node.transform
        main_inputs = [v for v in node.main_inputs.values() if isinstance(v, beam.PCollection)]
        inputs = [self.partitions[pcoll] for pcoll in main_inputs]
        self.consumed.update(main_inputs)
        self.consumed.update(si.pvalue for si in node.side_inputs)
        name = f"{node.full_label}-{uuid.uuid4().hex[:8]}"
        if isinstance(transform, _Create):
            keys = self._create(name, list(transform.values))
        elif isinstance(transform, _Flatten):
            keys = [key for part in inputs for key in part] or self._create(name, [])
        elif isinstance(transform, _Reshuffle):
            keys = inputs[0]
        elif isinstance(transform, _GroupByKeyOnly):
            keys = self._group_by_key(name, inputs[0])
        elif isinstance(transform, beam.ParDo):
            self._pardo(name, node, inputs[0])
            return
        else:
            raise NotImplementedError(
                f"stage {node.full_label!r} ({type(transform).__name__}) has no Dask translation "
                "in pipelines.dask_runner: run it on another runner or add a translation there"
            )
        for pcoll in node.outputs.values():
            self.partitions[pcoll] = keys

    def _create(self, name: str, values: list) -> list:
        count = max(1, min(len(values), self.num_partitions))
        keys = [(name, i) for i in range(count)]
        for i, key in enumerate(keys):
            self.graph[key] = (_literal, pickler.dumps(values[i::count]))
        return keys

    def _group_by_key(self, name: str, inputs: list) -> list:
        splits = [(f"{name}-split", i) for i in range(len(inputs))]
        for split, key in zip(splits, inputs):
            self.graph[split] = (_split_by_key, key, self.num_partitions)
        keys = [(name, j) for j in range(self.num_partitions)]
        for j, key in enumerate(keys):
            self.graph[key] = (_group_part, list(splits), j)
        return keys

    def _pardo(self, name: str, node: AppliedPTransform, inputs: list) -> None:
        transform = node.transform
        side_views = [(type(si), si._view_options()) for si in node.side_inputs]
        side_keys = []
        for index, si in enumerate(node.side_inputs):
            side_keys.append((f"{name}-side", index))
            self.graph[side_keys[-1]] = (_concat, list(self.partitions[si.pvalue]))
        payload = pickler.dumps(
            (node.full_label, transform.fn, transform.args, transform.kwargs, side_views)
        )
        pairs = [(f"{name}-pairs", i) for i in range(len(inputs))]
        for pair, key in zip(pairs, inputs):
            self.graph[pair] = (run_bundle, key, payload, *side_keys)
        for tag_index, pcoll in enumerate(node.outputs.values()):
            tag = pickler.dumps(pcoll.tag)
            keys = [(f"{name}-out{tag_index}", i) for i in range(len(pairs))]
            for key, pair in zip(keys, pairs):
                self.graph[key] = (_select_tag, pair, tag)
            self.partitions[pcoll] = keys

    def sinks(self) -> list:
        """One counting task per PCollection nothing consumes (the side-effect stages' ends)."""
        keys = []
        for index, (pcoll, parts) in enumerate(self.partitions.items()):
            if pcoll not in self.consumed:
                keys.append(("sink", index))
                self.graph[keys[-1]] = (_count, list(parts))
        return keys


@dataclasses.dataclass
class DaskPipelineResult(PipelineResult):
    """Waits on the computed sinks with bounded failure (see the module docstring, item 5)."""

    client: "distributed.Client"
    futures: list
    no_worker_timeout: float

    def __post_init__(self) -> None:
        super().__init__(PipelineState.RUNNING)

    def wait_until_finish(self, duration: float | None = None) -> str:
        """Waits for every sink; ``duration`` in milliseconds as in Beam."""
        deadline = None if duration is None else time.monotonic() + duration / 1000
        try:
            self._wait(deadline)
        except BaseException:
            self._state = PipelineState.FAILED
            self.client.cancel(self.futures)
            raise
        finally:
            if self._state != PipelineState.RUNNING:
                self.client.close()
        return self._state

    def _wait(self, deadline: float | None) -> None:
        from distributed import wait
        from distributed.scheduler import KilledWorker

        pending, workerless_since = set(self.futures), None
        while pending:
            try:
                done, pending = wait(pending, timeout=POLL_SECONDS, return_when="FIRST_COMPLETED")
            except TimeoutError:
                done = set()
            for future in done:
                error = future.exception() if future.status == "error" else None
                if isinstance(error, KilledWorker):
                    raise RuntimeError(
                        f"a Dask worker died while running task {error.task!r} (Dask gave up "
                        f"after distributed.scheduler.allowed-failures retries: {error}); see "
                        "the worker logs (memory limit? a crash in user code?) and run again"
                    ) from error
                if error is not None:
                    raise error
            workerless_since = self._check_workers(workerless_since)
            if deadline is not None and time.monotonic() > deadline:
                return
        self._state = PipelineState.DONE

    def _check_workers(self, workerless_since: float | None) -> float | None:
        workers = self.client.scheduler_info().get("workers", {})
        if workers:
            return None
        now = time.monotonic()
        since = workerless_since or now
        if now - since > self.no_worker_timeout:
            raise RuntimeError(
                f"the Dask cluster at {self.client.scheduler.address} has had no worker for "
                f"{now - since:.0f} s (--dask_no_worker_timeout={self.no_worker_timeout:g}); "
                "start workers or point --dask_client_address at a running cluster"
            )
        return since

    def cancel(self) -> str:
        self.client.cancel(self.futures)
        self._state = PipelineState.CANCELLED
        return self._state

    def metrics(self):
        raise NotImplementedError(
            "Beam metrics are not collected on Dask: read the run's counts in summary.json"
        )


class DaskRunner(beam_dask.DaskRunner):
    """Beam's DaskRunner with the translation of :mod:`pipelines.dask_runner`."""

    def run_pipeline(self, pipeline, options) -> DaskPipelineResult:
        import distributed

        dask_options = options.view_as(beam_dask.DaskOptions).get_all_options(
            drop_default=True, current_only=True
        )
        bag_kwargs = beam_dask.DaskOptions._extract_bag_kwargs(dask_options)
        client = distributed.Client(**dask_options)
        threads = sum(client.nthreads().values()) or 1
        pipeline.replace_all(dask_overrides())
        translator = _Translator(num_partitions=bag_kwargs.get("npartitions") or 2 * threads)
        pipeline.visit(translator)
        sinks = translator.sinks()
        futures = client.get(translator.graph, sinks, sync=False)
        timeout = options.view_as(EpoxyDaskOptions).dask_no_worker_timeout
        return DaskPipelineResult(client, futures, timeout)
