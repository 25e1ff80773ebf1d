"""Generation backends: given B prompt texts and G, return G sampled completions per prompt.

- ``TransformersBackend``: ``transformers`` ``generate`` with ``num_return_sequences=G`` on any
  device torch has, a CPU included (``pip install cdas-rollout[transformers]``). What the tests run,
  with a tiny model built in the test.
- ``OpenAIBackend``: any OpenAI-compatible completions server (``vllm serve``, SGLang, TGI, ...):
  ``POST {url}/v1/completions`` with the prompts as a list and ``n=G``, over ``httpx``.
- ``VLLMBackend``: vLLM's offline engine, ``vllm.LLM(model).generate(prompts, SamplingParams(n=G))``
  (``pip install cdas-rollout[vllm]``; vllm is imported when the backend is made, never at import
  time, so the worker runs where vllm is not installed).

All three take the same ``SamplingSettings``; ``*_kwargs`` functions map them to each API's names
(kept separate so the mapping can be read and checked without the engine). Completions are the new
text only (not the prompt), special tokens removed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx

BACKENDS = ("transformers", "vllm", "openai")


class BackendError(RuntimeError):
    """Generation failed (the server answered an error, or answered the wrong number of texts)."""


@dataclass(frozen=True)
class SamplingSettings:
    """How to sample. ``temperature`` 0 is greedy (all G answers then agree); ``top_p`` 1 and
    ``top_k`` 0 turn those filters off (``transformers`` would otherwise apply its default
    ``top_k=50``, which vLLM does not: the backends must sample the same distribution)."""

    max_new_tokens: int = 512
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None
    """Seeds the engine once (torch's RNG, vLLM's engine seed); not sent with each request, which
    would make every step's samples of a prompt the same."""

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if not self.temperature >= 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0 (0: off), got {self.top_k}")


class Backend(Protocol):
    """What the worker needs from a generation engine."""

    tokenizer: Any
    """The model's tokenizer (for its chat template), or None when the backend has none."""

    def generate(self, prompts: list[str], n: int) -> list[list[str]]:
        """``n`` sampled completions for each prompt, in prompt order."""
        ...


def check_shape(prompts: Sequence[str], n: int, completions: list[list[str]]) -> list[list[str]]:
    """A backend's answer must be one list of ``n`` texts per prompt: anything else would
    attach rewards to the wrong prompt."""
    if len(completions) != len(prompts) or any(len(group) != n for group in completions):
        sizes = [len(group) for group in completions]
        raise BackendError(
            f"the backend returned groups of sizes {sizes} for {len(prompts)} prompts x {n}"
        )
    return completions


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


# ---------------------------------------------------------------------------------------------
# transformers


def transformers_generate_kwargs(sampling: SamplingSettings, n: int) -> dict[str, Any]:
    """``model.generate`` arguments: sampling ``n`` sequences per prompt when temperature > 0;
    else greedy, one sequence (transformers refuses ``num_return_sequences`` > 1 without
    sampling; the n greedy answers are all the same, so the backend repeats it)."""
    if sampling.temperature > 0:
        return {
            "max_new_tokens": sampling.max_new_tokens,
            "num_return_sequences": n,
            "do_sample": True,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "top_k": sampling.top_k,
        }
    return {
        "max_new_tokens": sampling.max_new_tokens,
        "num_return_sequences": 1,
        "do_sample": False,
    }


class TransformersBackend:
    """``AutoModelForCausalLM.generate`` on left-padded batches of at most ``max_batch_prompts``
    prompts (``num_return_sequences=n``: the output rows are prompt-major, G per prompt)."""

    def __init__(
        self,
        model: str | Path,
        sampling: SamplingSettings,
        *,
        device: str | None = None,
        max_batch_prompts: int = 16,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if max_batch_prompts < 1:
            raise ValueError(f"max_batch_prompts must be >= 1, got {max_batch_prompts}")
        self.sampling = sampling
        self.max_batch_prompts = max_batch_prompts
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = AutoTokenizer.from_pretrained(str(model))
        self.tokenizer.padding_side = "left"  # generation continues from the right end
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        loaded: Any = AutoModelForCausalLM.from_pretrained(str(model))
        self.model = loaded.to(self.device).eval()
        if sampling.seed is not None:
            torch.manual_seed(sampling.seed)

    def generate(self, prompts: list[str], n: int) -> list[list[str]]:
        import torch

        out: list[list[str]] = []
        kwargs = transformers_generate_kwargs(self.sampling, n)
        for chunk in _chunks(prompts, self.max_batch_prompts):
            bos = self.tokenizer.bos_token
            # a chat template writes the special tokens itself; plain text gets the BOS (if any)
            special = bool(bos) and not all(p.startswith(bos) for p in chunk)
            encoded = self.tokenizer(
                chunk, return_tensors="pt", padding=True, add_special_tokens=special
            ).to(self.device)
            with torch.inference_mode():
                rows = self.model.generate(
                    **encoded, pad_token_id=self.tokenizer.pad_token_id, **kwargs
                )
            new = rows[:, encoded["input_ids"].shape[1] :]
            texts = self.tokenizer.batch_decode(new, skip_special_tokens=True)
            per = kwargs["num_return_sequences"]  # n, or 1 when greedy
            out.extend(texts[i * per : (i + 1) * per] * (n // per) for i in range(len(chunk)))
        return check_shape(prompts, n, out)


# ---------------------------------------------------------------------------------------------
# OpenAI-compatible servers


def openai_request_body(
    model: str, prompts: list[str], sampling: SamplingSettings, n: int
) -> dict[str, Any]:
    """The ``/v1/completions`` body: all prompts in one request, ``n`` choices each. ``top_k``
    is not an OpenAI parameter; it is sent only when set (vLLM and SGLang accept it)."""
    body: dict[str, Any] = {
        "model": model,
        "prompt": prompts,
        "n": n,
        "max_tokens": sampling.max_new_tokens,
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
    }
    if sampling.top_k > 0:
        body["top_k"] = sampling.top_k
    return body


def group_choices(answer: Any, prompts: int, n: int) -> list[list[str]]:
    """The choices of a completions answer, grouped by prompt: choice ``index`` is
    ``prompt_index * n + j`` (OpenAI's and vLLM's convention for a list prompt with ``n``)."""
    try:
        choices = answer["choices"]
        groups: list[list[tuple[int, str]]] = [[] for _ in range(prompts)]
        for choice in choices:
            index = int(choice["index"])
            if not 0 <= index < prompts * n:
                raise BackendError(f"choice index {index} out of range for {prompts} x {n}")
            groups[index // n].append((index, str(choice["text"])))
    except (KeyError, TypeError, ValueError) as exc:
        raise BackendError(f"not a completions answer: {exc!r}") from None
    return [[text for _, text in sorted(group)] for group in groups]


class OpenAIBackend:
    """Completions from an OpenAI-compatible server at ``url`` (``http://host:8000`` or
    ``http://host:8000/v1``). A server that is down or answers 502/503/504 is retried for
    ``retry_for`` seconds (generation has no side effect, so a retry is always safe)."""

    def __init__(
        self,
        url: str,
        model: str,
        sampling: SamplingSettings,
        *,
        api_key: str | None = None,
        tokenizer: Any = None,
        timeout: float = 600.0,
        retry_for: float = 60.0,
        max_batch_prompts: int = 64,
        client: httpx.Client | None = None,
    ) -> None:
        if max_batch_prompts < 1:
            raise ValueError(f"max_batch_prompts must be >= 1, got {max_batch_prompts}")
        base = url.rstrip("/")
        base = base.removesuffix("/v1")
        if not base.startswith(("http://", "https://")):
            raise ValueError(f"the OpenAI server URL must be http(s)://..., got {url!r}")
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self.model = model
        self.sampling = sampling
        self.tokenizer = tokenizer
        self.retry_for = retry_for
        self.max_batch_prompts = max_batch_prompts
        self._http = client or httpx.Client(base_url=base, timeout=timeout, headers=headers)

    def close(self) -> None:
        self._http.close()

    def _post(self, body: dict[str, Any]) -> Any:
        started, delay = time.monotonic(), 0.2
        while True:
            try:
                response = self._http.post("/v1/completions", json=body)
            except httpx.TransportError as exc:
                problem = f"server unreachable: {exc!r}"
            else:
                if response.status_code == 200:
                    return response.json()
                problem = f"HTTP {response.status_code}: {response.text[:300]}"
                if response.status_code not in (502, 503, 504):
                    raise BackendError(f"completions request failed: {problem}")
            if time.monotonic() - started >= self.retry_for:
                raise BackendError(f"completions request failed: {problem}")
            time.sleep(delay)
            delay = min(5.0, delay * 2)

    def generate(self, prompts: list[str], n: int) -> list[list[str]]:
        out: list[list[str]] = []
        for chunk in _chunks(prompts, self.max_batch_prompts):
            answer = self._post(openai_request_body(self.model, chunk, self.sampling, n))
            out.extend(group_choices(answer, len(chunk), n))
        return check_shape(prompts, n, out)


# ---------------------------------------------------------------------------------------------
# vLLM offline engine


def vllm_sampling_kwargs(sampling: SamplingSettings, n: int) -> dict[str, Any]:
    """``vllm.SamplingParams`` arguments (vLLM's top_k -1 means off)."""
    return {
        "n": n,
        "max_tokens": sampling.max_new_tokens,
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "top_k": sampling.top_k if sampling.top_k > 0 else -1,
    }


class VLLMBackend:
    """vLLM's offline engine; ``engine_args`` go to ``vllm.LLM`` (``tensor_parallel_size``,
    ``gpu_memory_utilization``, ``max_model_len``, ...)."""

    def __init__(self, model: str | Path, sampling: SamplingSettings, **engine_args: Any) -> None:
        try:
            import vllm
        except ImportError as exc:
            raise BackendError(
                "the vllm backend needs vllm: pip install 'cdas-rollout[vllm]'"
            ) from exc
        self.sampling = sampling
        self._vllm = vllm
        seed = sampling.seed if sampling.seed is not None else 0
        self.llm = vllm.LLM(model=str(model), seed=seed, **engine_args)
        self.tokenizer = self.llm.get_tokenizer()

    def generate(self, prompts: list[str], n: int) -> list[list[str]]:
        params = self._vllm.SamplingParams(**vllm_sampling_kwargs(self.sampling, n))
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        return check_shape(prompts, n, [[o.text for o in out.outputs] for out in outputs])


def make_backend(
    name: str,
    model: str,
    sampling: SamplingSettings,
    *,
    url: str | None = None,
    api_key: str | None = None,
    tokenizer: str | None = None,
    device: str | None = None,
    retry_for: float = 60.0,
    load_tokenizer: Callable[[str], Any] | None = None,
) -> Backend:
    """The backend called ``name`` (one of ``BACKENDS``); an unknown name is an error naming it.

    ``openai`` needs ``url``; its chat template comes from ``tokenizer`` (a path or hub name,
    loaded with ``transformers.AutoTokenizer``) when given.
    """
    if name == "transformers":
        return TransformersBackend(model, sampling, device=device)
    if name == "vllm":
        return VLLMBackend(model, sampling)
    if name == "openai":
        if not url:
            raise ValueError("the openai backend needs --openai-url (the server's base URL)")
        loaded = None
        if tokenizer:
            loaded = (load_tokenizer or _auto_tokenizer)(tokenizer)
        return OpenAIBackend(
            url, model, sampling, api_key=api_key, tokenizer=loaded, retry_for=retry_for
        )
    raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")


def _auto_tokenizer(name: str) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(name)
