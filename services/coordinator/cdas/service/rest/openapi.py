"""The REST door's OpenAPI document states every rule the service enforces on each input.

FastAPI derives the document from the routes and the strict models in ``models.py`` (types,
required and unknown fields). The rules themselves are the core's (``check_step``, ``RUN_ID``,
``MAX_ROLLOUTS``, each strategy's ``Param`` checkers, ...): ``state_rules`` writes them into the
document from the core's own constants, after FastAPI built it, so each rule is written once and
the service keeps the core's error messages (the models carry no bounds of their own).

What a JSON Schema cannot say (``correct <= total``, a label's prompt must be among the call's,
a prompt id's length in UTF-8 bytes, ...) is in the field's description, in the operation's
description, and in ``UNSTATED``: the 422s a schema-valid request may still get, which the
schemathesis tests read. ``links`` (PUT run -> batch -> results -> state, PUT run -> advance ->
advance -> ..., ...) let a client or a stateful tester chain the calls.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cdas.coordinator import DEFAULT_PAGE, MAX_BATCH, MAX_FRONTIER, MAX_PAGE
from cdas.core.config import MAX_PROMPTS, MAX_SEED
from cdas.core.results import MAX_ROLLOUTS
from cdas.core.strategies import REGISTRY
from cdas.core.strategies.base import DEFAULT_STRATEGY
from cdas.core.strategies.curriculum import MAX_LABELS
from cdas.core.validate import MAX_ID_BYTES, MAX_STEP, RUN_ID

SCHEMAS = "#/components/schemas/"


@dataclass(frozen=True, slots=True)
class Unstated:
    """A rule the service enforces that the document can only describe: a schema-valid request
    that breaks it gets a 422 whose message matches ``says``. ``state``: whether it depends on
    what the store holds (the run's prompts, size, strategy) rather than on the request alone."""

    rule: str
    operations: frozenset[str]
    says: re.Pattern[str]
    state: bool = False

    def explains(self, operation: str, message: str) -> bool:
        return operation in self.operations and self.says.search(message) is not None


_JSON_BODIES = frozenset({"put_run", "add_prompts", "next_batch", "report_results", "advance"})
_PROMPTS = frozenset({"put_run", "add_prompts"})
_RESULTS = frozenset({"report_results", "advance"})
"""The operations that take a step's results (``advance``: step n's, with step n + 1's batch)."""
_BATCHES = frozenset({"next_batch", "advance"})
"""The operations that issue a batch (``advance``: round 0 of step n + 1)."""

UNSTATED: tuple[Unstated, ...] = (
    Unstated(
        "an integer is a JSON integer: 2.0 is refused where an integer is due, though JSON "
        "Schema counts it as one",
        _JSON_BODIES,
        re.compile(r" is -?[0-9]+\.0; "),
    ),
    Unstated(
        f"a prompt id has at most {MAX_ID_BYTES} bytes of UTF-8 (maxLength counts characters)",
        _PROMPTS | _RESULTS | {"get_prompt"},
        re.compile(rf"bytes long; a prompt id has 1 to {MAX_ID_BYTES} bytes"),
    ),
    Unstated(
        "labels name prompts of the same call (with a count N, the ids '0'..'N-1')",
        _PROMPTS,
        re.compile(r"labels names .*, which is not among the prompts of this call"),
    ),
    Unstated(
        "the curriculum strategy needs a label for every prompt",
        _PROMPTS,
        re.compile(r"has no label; the curriculum strategy needs a label for every prompt"),
    ),
    Unstated(
        f"a curriculum run holds at most {MAX_LABELS} distinct labels",
        _PROMPTS,
        re.compile(r"distinct labels; the curriculum strategy takes at most"),
    ),
    Unstated(
        "a curriculum schedule's until_step increases from stage to stage, only its last stage "
        "may omit it, and a stage's min_label is at most its max_label",
        frozenset({"put_run"}),
        re.compile(
            r"only the last stage may run forever|stages must have increasing|admits no label"
        ),
    ),
    Unstated(
        "a result's correct is at most its total",
        _RESULTS,
        re.compile(r"\.correct is .*; it exceeds total"),
    ),
    Unstated(
        "a prompt id appears at most once in one request's results",
        _RESULTS,
        re.compile(r"appears twice in one request"),
    ),
    Unstated(
        f"a JSON page of the export holds at most {MAX_PAGE} prompts (limit; CSV streams more)",
        frozenset({"export_prompts"}),
        re.compile(rf"^limit is [0-9]+; it must be an integer in \[1, {MAX_PAGE}\]"),
    ),
    Unstated(
        "a snapshot body is what GET /v1/runs/{run_id}/snapshot answered",
        frozenset({"restore"}),
        re.compile(r"snapshot"),
    ),
    Unstated(
        "prompt ids added are not registered yet",
        frozenset({"add_prompts"}),
        re.compile(r"is already registered"),
        state=True,
    ),
    Unstated(
        "results name prompts of the run",
        _RESULTS,
        re.compile(r"unknown prompt id\(s\)"),
        state=True,
    ),
    Unstated(
        "a batch is at most the prompts the run holds and has not issued in the step's earlier "
        "rounds (curriculum: that its schedule admits at the step); a dynamic run's round is "
        "below its max_rounds",
        _BATCHES,
        re.compile(
            r"is larger than the run|prompts not yet issued in step|prompts the curriculum admits"
            r"|exceeds max_rounds"
        ),
        state=True,
    ),
)
"""Every 422 a request the document admits may still get, and why."""


def prompt_id_schema() -> dict[str, Any]:
    return {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_ID_BYTES,
        "description": f"1 to {MAX_ID_BYTES} bytes of UTF-8",
    }


def _integer(low: int, high: int, **more: Any) -> dict[str, Any]:
    return {"type": "integer", "minimum": low, "maximum": high, **more}


def _labels() -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": {"type": "number"},
        "description": "a finite number per prompt id, each a prompt of this call; the "
        "curriculum strategy needs one for every prompt (and at most "
        f"{MAX_LABELS} distinct values)",
    }


def _ids(max_prompts: int) -> dict[str, Any]:
    return {
        "type": "array",
        "items": prompt_id_schema(),
        "uniqueItems": True,
        "maxItems": max_prompts,
    }


def _update(node: dict[str, Any], **keywords: Any) -> None:
    """Add ``keywords`` to a generated schema node (a ``type`` replaces an ``anyOf``)."""
    if "type" in keywords:
        node.pop("anyOf", None)
    node.update(keywords)


def _bodies(schemas: dict[str, Any], max_prompts: int) -> None:
    put_run = schemas["PutRunBody"]
    fields = put_run["properties"]
    _update(fields["strategy"], type="string", enum=sorted(REGISTRY), default=DEFAULT_STRATEGY)
    _update(fields["seed"], **_integer(0, MAX_SEED, default=0))
    _update(
        fields["params"],
        description="the strategy's parameters (the oneOf says which each strategy takes); an "
        "omitted one takes its default",
    )
    fields["prompts"]["oneOf"] = fields["prompts"].pop("anyOf")
    _update(fields["labels"], **_labels())
    put_run["oneOf"] = []
    for name, cls in sorted(REGISTRY.items()):
        component = f"{name.capitalize()}Params"
        schemas[component] = {
            "title": component,
            "type": "object",
            "properties": {p.name: p.schema for p in cls.declared()},
            "additionalProperties": False,
            "description": f"The parameters of the {name} strategy.",
        }
        branch: dict[str, Any] = {
            "title": name,
            "properties": {"strategy": {"const": name}, "params": {"$ref": SCHEMAS + component}},
        }
        if name != DEFAULT_STRATEGY:
            branch["required"] = ["strategy"]
        put_run["oneOf"].append(branch)

    count = _integer(0, max_prompts, description=f"at most {max_prompts} prompts per run")
    schemas["CountPrompts"]["properties"]["count"].update(count)
    schemas["IdPrompts"]["properties"]["ids"].update(_ids(max_prompts))

    add = schemas["AddPromptsBody"]
    add["properties"]["ids"].update(_ids(max_prompts))
    add["properties"]["count"].update(count)
    _update(add["properties"]["labels"], **_labels())
    add["oneOf"] = [
        {"title": "ids", "required": ["ids"]},
        {"title": "count", "required": ["count"]},
    ]
    add["description"] = (
        f"{add.get('description', '')} Exactly one of ids and count; the run may not grow past "
        f"{max_prompts} prompts (413)."
    ).strip()

    size = _integer(1, MAX_BATCH, description="at most the run's size")
    results = "each prompt id at most once, each a prompt of the run"

    batch = schemas["NextBatchBody"]["properties"]
    batch["step"].update(_integer(0, MAX_STEP))
    batch["size"].update(size)
    batch["round"].update(_integer(0, MAX_STEP, default=0))

    report = schemas["ReportBody"]["properties"]
    report["step"].update(_integer(0, MAX_STEP))
    report["results"]["description"] = results

    advance = schemas["AdvanceBody"]["properties"]
    advance["step"].update(
        _integer(0, MAX_STEP - 1, description="the results' step; the batch is of step + 1")
    )
    advance["results"]["description"] = results
    advance["size"].update(size, description="the size of step + 1's batch, at most the run's size")

    result = schemas["ResultBody"]
    fields = result["properties"]
    fields["prompt_id"].update(prompt_id_schema())
    fields["correct"].update(_integer(0, MAX_ROLLOUTS, description="at most total"))
    fields["total"].update(_integer(1, MAX_ROLLOUTS))
    fields["rewards"].update(
        minItems=1,
        maxItems=MAX_ROLLOUTS,
        description="per-rollout rewards, finite; a rollout above the run's threshold is correct",
    )
    fields["pass_rate"].update(minimum=0, maximum=1)
    forms = {
        "correct": ("correct", "total"),
        "rewards": ("rewards",),
        "pass_rate": ("pass_rate", "total"),
    }
    result["oneOf"] = [
        {
            "title": name,
            "properties": {key: fields[key] for key in ("prompt_id", *keys)},
            "required": ["prompt_id", *keys],
            "additionalProperties": False,
        }
        for name, keys in forms.items()
    ]


_QUERY: dict[tuple[str, str], dict[str, Any]] = {
    ("get_state", "frontier"): _integer(
        0, MAX_FRONTIER, default=0, description="the prompts nearest the competence to list"
    ),
    ("get_state", "history_from"): _integer(
        0, MAX_STEP, default=0, description="the first step of the history"
    ),
    ("export_prompts", "start"): _integer(0, MAX_PROMPTS, default=0),
    ("export_prompts", "limit"): _integer(
        1,
        MAX_PROMPTS,
        description=f"at most {MAX_PAGE} for a JSON page (default {DEFAULT_PAGE}); CSV streams "
        "up to the whole run",
    ),
    ("export_prompts", "format"): {"type": "string", "enum": ["json", "csv"]},
}


def _parameters(operation: str, parameters: Iterable[dict[str, Any]]) -> None:
    for parameter in parameters:
        name = parameter["name"]
        title = parameter.get("schema", {}).get("title")
        if parameter["in"] == "path" and name == "run_id":
            schema: dict[str, Any] = {"type": "string", "pattern": f"^(?:{RUN_ID.pattern})$"}
        elif parameter["in"] == "path" and name == "prompt_id":
            schema = prompt_id_schema()
        elif (operation, name) in _QUERY:
            schema = dict(_QUERY[operation, name])
        else:
            continue
        parameter["schema"] = {"title": title, **schema} if title else schema


_RUN = {"path.run_id": "$response.body#/run_id"}
_SAME_RUN = {"path.run_id": "$request.path.run_id"}
_FIRST_RUN = {"path.run_id": "$response.body#/runs/0/run_id"}
_SAME_CONFIG = {
    "strategy": "$response.body#/strategy",
    "params": "$response.body#/params",
    "seed": "$response.body#/seed",
    "prompts": {"count": "$response.body#/size"},
}
"""A run's answer as the ``PUT`` that creates it again (a run made with a count)."""

_FIRST_BATCH = {"round": 0, "size": 1}
"""A batch any run with a prompt serves (the step and its other rounds aside)."""

_FIRST_ADVANCE = {"step": 0, "results": [], "size": 1}
"""An advance any run with a prompt serves (no results for step 0, step 1's batch)."""

_RESULT_OF = {"correct": 1, "total": 2}
"""A valid result of the correct/total form, for the links' result bodies."""


def _report(batch: str) -> dict[str, Any]:
    """A report of one result for the batch answered at JSON pointer ``batch`` (``""``: the
    whole answer is the batch)."""
    return {
        "step": f"$response.body#{batch}/step",
        "results": [{"prompt_id": f"$response.body#{batch}/prompt_ids/0", **_RESULT_OF}],
    }


_FROM_A_RUN: dict[str, tuple[str, Mapping[str, str], Any]] = {
    "NextBatch": ("next_batch", _RUN, _FIRST_BATCH),
    "Advance": ("advance", _RUN, _FIRST_ADVANCE),
    "AddPrompts": ("add_prompts", _RUN, None),
    "GetRun": ("get_run", _RUN, None),
    "GetState": ("get_state", _RUN, None),
    "ExportPrompts": ("export_prompts", _RUN, None),
    "Snapshot": ("snapshot", _RUN, None),
    "DeleteRun": ("delete_run", _RUN, None),
}

_LINKS: dict[str, dict[str, tuple[str, Mapping[str, str], Any]]] = {
    "put_run": _FROM_A_RUN,
    "restore": _FROM_A_RUN,
    "list_runs": {
        name: (target, _FIRST_RUN, body)
        for name, (target, _, body) in _FROM_A_RUN.items()
        if name != "DeleteRun"
    },
    "get_run": {"PutRunAgain": ("put_run", _RUN, _SAME_CONFIG)},
    "delete_run": {"PutRunAgain": ("put_run", _RUN, _SAME_CONFIG)},
    "next_batch": {
        "ReportResults": ("report_results", _RUN, _report("")),
        "Advance": ("advance", _RUN, {**_report(""), "size": 1}),
        "GetPrompt": (
            "get_prompt",
            {**_RUN, "path.prompt_id": "$response.body#/prompt_ids/0"},
            None,
        ),
    },
    "report_results": {"GetState": ("get_state", _SAME_RUN, None)},
    "advance": {
        "ReportResults": ("report_results", _SAME_RUN, _report("/batch")),
        "Advance": ("advance", _SAME_RUN, {**_report("/batch"), "size": 1}),
        "GetPrompt": (
            "get_prompt",
            {**_SAME_RUN, "path.prompt_id": "$response.body#/batch/prompt_ids/0"},
            None,
        ),
        "GetState": ("get_state", _SAME_RUN, None),
    },
    "add_prompts": {
        "NextBatch": ("next_batch", _SAME_RUN, _FIRST_BATCH),
        "GetPrompt": ("get_prompt", {**_SAME_RUN, "path.prompt_id": "$request.body#/ids/0"}, None),
    },
    "snapshot": {"Restore": ("restore", _SAME_RUN, "$response.body")},
}
"""Per source operation: link name -> (target operation, parameters, request body)."""


def _links(operations: Mapping[str, dict[str, Any]]) -> None:
    for source, links in _LINKS.items():
        if source not in operations:
            continue
        responses = operations[source]["responses"]
        made: dict[str, Any] = {}
        for name, (target, parameters, body) in links.items():
            if target not in operations:
                continue
            link: dict[str, Any] = {
                "operationId": operations[target]["operationId"],
                "parameters": dict(parameters),
            }
            if body is not None:
                link["requestBody"] = body
            made[name] = link
        for status, response in responses.items():
            if status.startswith("2"):
                response["links"] = made


def _unstated(operations: Mapping[str, dict[str, Any]]) -> None:
    for name, operation in operations.items():
        rules = [u.rule for u in UNSTATED if name in u.operations]
        if rules:
            said = operation.get("description", "")
            operation["description"] = (
                f"{said}\n\nRefused with 422 though the schema admits it: " + "; ".join(rules) + "."
            ).strip()


def operation_name(path: str, method: str, operation: Mapping[str, Any]) -> str:
    """The route's name (``put_run``) from FastAPI's operation id, ``name`` + path + method with
    every non-word character an underscore; a custom operation id is its own name."""
    operation_id = str(operation.get("operationId", ""))
    return operation_id.removesuffix(re.sub(r"\W", "_", path) + "_" + method)


def operations_of(schema: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Every operation of the document by its route's name."""
    return {
        operation_name(path, method, operation): operation
        for path, item in schema["paths"].items()
        for method, operation in item.items()
    }


def state_rules(schema: dict[str, Any], max_prompts: int, max_body_bytes: int) -> None:
    """Write the core's input rules, the links and ``UNSTATED`` into FastAPI's ``schema`` (in
    place); ``max_prompts`` and ``max_body_bytes`` are the service's configured limits."""
    operations = operations_of(schema)
    _bodies(schema["components"]["schemas"], max_prompts)
    for name, operation in operations.items():
        _parameters(name, operation.get("parameters", ()))
        body = operation.get("requestBody")
        if body is not None:
            body["description"] = (
                f"at most {max_body_bytes} bytes (413 beyond)"
                if "application/json" in body["content"]
                else f"the bytes GET .../snapshot answered; at most {max_body_bytes} bytes (413 "
                "beyond)"
            )
    _links(operations)
    _unstated(operations)
