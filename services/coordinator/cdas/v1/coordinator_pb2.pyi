from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class IdList(_message.Message):
    __slots__ = ("ids",)
    IDS_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, ids: _Optional[_Iterable[str]] = ...) -> None: ...

class Prompts(_message.Message):
    __slots__ = ("count", "ids")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    count: int
    ids: IdList
    def __init__(self, count: _Optional[int] = ..., ids: _Optional[_Union[IdList, _Mapping]] = ...) -> None: ...

class PutRunRequest(_message.Message):
    __slots__ = ("run_id", "strategy", "params", "seed", "prompts", "labels")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    PROMPTS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    strategy: str
    params: _struct_pb2.Struct
    seed: int
    prompts: Prompts
    labels: _containers.ScalarMap[str, float]
    def __init__(self, run_id: _Optional[str] = ..., strategy: _Optional[str] = ..., params: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., seed: _Optional[int] = ..., prompts: _Optional[_Union[Prompts, _Mapping]] = ..., labels: _Optional[_Mapping[str, float]] = ...) -> None: ...

class PutRunResponse(_message.Message):
    __slots__ = ("run", "created")
    RUN_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    run: Run
    created: bool
    def __init__(self, run: _Optional[_Union[Run, _Mapping]] = ..., created: bool = ...) -> None: ...

class Counts(_message.Message):
    __slots__ = ("seen", "results", "duplicates", "rollouts", "batches")
    SEEN_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    ROLLOUTS_FIELD_NUMBER: _ClassVar[int]
    BATCHES_FIELD_NUMBER: _ClassVar[int]
    seen: int
    results: int
    duplicates: int
    rollouts: int
    batches: int
    def __init__(self, seen: _Optional[int] = ..., results: _Optional[int] = ..., duplicates: _Optional[int] = ..., rollouts: _Optional[int] = ..., batches: _Optional[int] = ...) -> None: ...

class Run(_message.Message):
    __slots__ = ("run_id", "strategy", "params", "seed", "size", "step", "competence", "counts")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    COMPETENCE_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    strategy: str
    params: _struct_pb2.Struct
    seed: int
    size: int
    step: int
    competence: float
    counts: Counts
    def __init__(self, run_id: _Optional[str] = ..., strategy: _Optional[str] = ..., params: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., seed: _Optional[int] = ..., size: _Optional[int] = ..., step: _Optional[int] = ..., competence: _Optional[float] = ..., counts: _Optional[_Union[Counts, _Mapping]] = ...) -> None: ...

class GetRunRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class ListRunsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListRunsResponse(_message.Message):
    __slots__ = ("runs",)
    RUNS_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[Run]
    def __init__(self, runs: _Optional[_Iterable[_Union[Run, _Mapping]]] = ...) -> None: ...

class DeleteRunRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class AddPromptsRequest(_message.Message):
    __slots__ = ("run_id", "prompts", "labels")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    PROMPTS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    prompts: Prompts
    labels: _containers.ScalarMap[str, float]
    def __init__(self, run_id: _Optional[str] = ..., prompts: _Optional[_Union[Prompts, _Mapping]] = ..., labels: _Optional[_Mapping[str, float]] = ...) -> None: ...

class AddPromptsResponse(_message.Message):
    __slots__ = ("size",)
    SIZE_FIELD_NUMBER: _ClassVar[int]
    size: int
    def __init__(self, size: _Optional[int] = ...) -> None: ...

class NextBatchRequest(_message.Message):
    __slots__ = ("run_id", "step", "size", "round")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    step: int
    size: int
    round: int
    def __init__(self, run_id: _Optional[str] = ..., step: _Optional[int] = ..., size: _Optional[int] = ..., round: _Optional[int] = ...) -> None: ...

class Batch(_message.Message):
    __slots__ = ("run_id", "step", "round", "prompt_ids", "competence")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    PROMPT_IDS_FIELD_NUMBER: _ClassVar[int]
    COMPETENCE_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    step: int
    round: int
    prompt_ids: _containers.RepeatedScalarFieldContainer[str]
    competence: float
    def __init__(self, run_id: _Optional[str] = ..., step: _Optional[int] = ..., round: _Optional[int] = ..., prompt_ids: _Optional[_Iterable[str]] = ..., competence: _Optional[float] = ...) -> None: ...

class Result(_message.Message):
    __slots__ = ("prompt_id", "correct", "total", "rewards", "pass_rate")
    PROMPT_ID_FIELD_NUMBER: _ClassVar[int]
    CORRECT_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    REWARDS_FIELD_NUMBER: _ClassVar[int]
    PASS_RATE_FIELD_NUMBER: _ClassVar[int]
    prompt_id: str
    correct: int
    total: int
    rewards: _containers.RepeatedScalarFieldContainer[float]
    pass_rate: float
    def __init__(self, prompt_id: _Optional[str] = ..., correct: _Optional[int] = ..., total: _Optional[int] = ..., rewards: _Optional[_Iterable[float]] = ..., pass_rate: _Optional[float] = ...) -> None: ...

class ReportResultsRequest(_message.Message):
    __slots__ = ("run_id", "step", "results", "columns")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    step: int
    results: _containers.RepeatedCompositeFieldContainer[Result]
    columns: ResultColumns
    def __init__(self, run_id: _Optional[str] = ..., step: _Optional[int] = ..., results: _Optional[_Iterable[_Union[Result, _Mapping]]] = ..., columns: _Optional[_Union[ResultColumns, _Mapping]] = ...) -> None: ...

class ResultColumns(_message.Message):
    __slots__ = ("prompt_ids", "correct", "total")
    PROMPT_IDS_FIELD_NUMBER: _ClassVar[int]
    CORRECT_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    prompt_ids: _containers.RepeatedScalarFieldContainer[str]
    correct: _containers.RepeatedScalarFieldContainer[int]
    total: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, prompt_ids: _Optional[_Iterable[str]] = ..., correct: _Optional[_Iterable[int]] = ..., total: _Optional[_Iterable[int]] = ...) -> None: ...

class ReportResultsResponse(_message.Message):
    __slots__ = ("applied", "duplicates", "competence")
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    COMPETENCE_FIELD_NUMBER: _ClassVar[int]
    applied: int
    duplicates: int
    competence: float
    def __init__(self, applied: _Optional[int] = ..., duplicates: _Optional[int] = ..., competence: _Optional[float] = ...) -> None: ...

class AdvanceRequest(_message.Message):
    __slots__ = ("run_id", "step", "results", "columns", "size")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    step: int
    results: _containers.RepeatedCompositeFieldContainer[Result]
    columns: ResultColumns
    size: int
    def __init__(self, run_id: _Optional[str] = ..., step: _Optional[int] = ..., results: _Optional[_Iterable[_Union[Result, _Mapping]]] = ..., columns: _Optional[_Union[ResultColumns, _Mapping]] = ..., size: _Optional[int] = ...) -> None: ...

class AdvanceResponse(_message.Message):
    __slots__ = ("report", "batch")
    REPORT_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    report: ReportResultsResponse
    batch: Batch
    def __init__(self, report: _Optional[_Union[ReportResultsResponse, _Mapping]] = ..., batch: _Optional[_Union[Batch, _Mapping]] = ...) -> None: ...

class GetPromptRequest(_message.Message):
    __slots__ = ("run_id", "prompt_id")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    PROMPT_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    prompt_id: str
    def __init__(self, run_id: _Optional[str] = ..., prompt_id: _Optional[str] = ...) -> None: ...

class Prompt(_message.Message):
    __slots__ = ("prompt_id", "difficulty", "updates", "last_pass_rate", "last_step", "label")
    PROMPT_ID_FIELD_NUMBER: _ClassVar[int]
    DIFFICULTY_FIELD_NUMBER: _ClassVar[int]
    UPDATES_FIELD_NUMBER: _ClassVar[int]
    LAST_PASS_RATE_FIELD_NUMBER: _ClassVar[int]
    LAST_STEP_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    prompt_id: str
    difficulty: float
    updates: int
    last_pass_rate: float
    last_step: int
    label: float
    def __init__(self, prompt_id: _Optional[str] = ..., difficulty: _Optional[float] = ..., updates: _Optional[int] = ..., last_pass_rate: _Optional[float] = ..., last_step: _Optional[int] = ..., label: _Optional[float] = ...) -> None: ...

class GetStateRequest(_message.Message):
    __slots__ = ("run_id", "frontier", "history_from")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    FRONTIER_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FROM_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    frontier: int
    history_from: int
    def __init__(self, run_id: _Optional[str] = ..., frontier: _Optional[int] = ..., history_from: _Optional[int] = ...) -> None: ...

class ExportPromptsRequest(_message.Message):
    __slots__ = ("run_id", "start", "page_size", "limit")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    start: int
    page_size: int
    limit: int
    def __init__(self, run_id: _Optional[str] = ..., start: _Optional[int] = ..., page_size: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class PromptColumns(_message.Message):
    __slots__ = ("prompt_id", "difficulty", "updates", "last_pass_rate", "last_step", "label")
    PROMPT_ID_FIELD_NUMBER: _ClassVar[int]
    DIFFICULTY_FIELD_NUMBER: _ClassVar[int]
    UPDATES_FIELD_NUMBER: _ClassVar[int]
    LAST_PASS_RATE_FIELD_NUMBER: _ClassVar[int]
    LAST_STEP_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    prompt_id: _containers.RepeatedScalarFieldContainer[str]
    difficulty: _containers.RepeatedScalarFieldContainer[float]
    updates: _containers.RepeatedScalarFieldContainer[int]
    last_pass_rate: _containers.RepeatedScalarFieldContainer[float]
    last_step: _containers.RepeatedScalarFieldContainer[int]
    label: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, prompt_id: _Optional[_Iterable[str]] = ..., difficulty: _Optional[_Iterable[float]] = ..., updates: _Optional[_Iterable[int]] = ..., last_pass_rate: _Optional[_Iterable[float]] = ..., last_step: _Optional[_Iterable[int]] = ..., label: _Optional[_Iterable[float]] = ...) -> None: ...

class PromptPage(_message.Message):
    __slots__ = ("run_id", "size", "start", "next", "columns")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    NEXT_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    size: int
    start: int
    next: int
    columns: PromptColumns
    def __init__(self, run_id: _Optional[str] = ..., size: _Optional[int] = ..., start: _Optional[int] = ..., next: _Optional[int] = ..., columns: _Optional[_Union[PromptColumns, _Mapping]] = ...) -> None: ...

class Histogram(_message.Message):
    __slots__ = ("edges", "counts")
    EDGES_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    edges: _containers.RepeatedScalarFieldContainer[float]
    counts: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, edges: _Optional[_Iterable[float]] = ..., counts: _Optional[_Iterable[int]] = ...) -> None: ...

class StepSummary(_message.Message):
    __slots__ = ("step", "competence", "mean_pass_rate", "zero_gradient_ratio", "batch_size", "results", "rollouts")
    STEP_FIELD_NUMBER: _ClassVar[int]
    COMPETENCE_FIELD_NUMBER: _ClassVar[int]
    MEAN_PASS_RATE_FIELD_NUMBER: _ClassVar[int]
    ZERO_GRADIENT_RATIO_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    ROLLOUTS_FIELD_NUMBER: _ClassVar[int]
    step: int
    competence: float
    mean_pass_rate: float
    zero_gradient_ratio: float
    batch_size: int
    results: int
    rollouts: int
    def __init__(self, step: _Optional[int] = ..., competence: _Optional[float] = ..., mean_pass_rate: _Optional[float] = ..., zero_gradient_ratio: _Optional[float] = ..., batch_size: _Optional[int] = ..., results: _Optional[int] = ..., rollouts: _Optional[int] = ...) -> None: ...

class RunState(_message.Message):
    __slots__ = ("run_id", "strategy", "step", "size", "seen", "competence", "histogram", "history", "frontier", "retired")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SEEN_FIELD_NUMBER: _ClassVar[int]
    COMPETENCE_FIELD_NUMBER: _ClassVar[int]
    HISTOGRAM_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    FRONTIER_FIELD_NUMBER: _ClassVar[int]
    RETIRED_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    strategy: str
    step: int
    size: int
    seen: int
    competence: float
    histogram: Histogram
    history: _containers.RepeatedCompositeFieldContainer[StepSummary]
    frontier: _containers.RepeatedCompositeFieldContainer[Prompt]
    retired: int
    def __init__(self, run_id: _Optional[str] = ..., strategy: _Optional[str] = ..., step: _Optional[int] = ..., size: _Optional[int] = ..., seen: _Optional[int] = ..., competence: _Optional[float] = ..., histogram: _Optional[_Union[Histogram, _Mapping]] = ..., history: _Optional[_Iterable[_Union[StepSummary, _Mapping]]] = ..., frontier: _Optional[_Iterable[_Union[Prompt, _Mapping]]] = ..., retired: _Optional[int] = ...) -> None: ...

class SnapshotRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class SnapshotChunk(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...

class RestoreChunk(_message.Message):
    __slots__ = ("run_id", "data")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    data: bytes
    def __init__(self, run_id: _Optional[str] = ..., data: _Optional[bytes] = ...) -> None: ...
