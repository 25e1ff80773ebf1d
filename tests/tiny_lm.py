"""A tiny causal language model built inside the tests, with no download.

The tests need a real tokenizer and a real ``transformers`` model (real generation, real sampling,
real chat templates) but nothing can be fetched from a hub. ``build_tiny_lm`` therefore:

1. trains a byte-level BPE tokenizer with the ``tokenizers`` library on the given corpus (byte
   level, so any text, including LaTeX and text never seen in the corpus, round-trips);
2. wraps it as a ``PreTrainedTokenizerFast`` with pad/eos tokens, left padding (what batched
   generation needs) and a small ChatML-like Jinja chat template, so
   ``apply_chat_template(messages, add_generation_prompt=True)`` works;
3. creates a 2-layer Qwen2 causal LM with a small hidden size (randomly initialised);
4. optionally fine-tunes it for a few hundred AdamW steps on CPU on (prompt, completion) pairs,
   with the loss on the completion tokens only, so that sampled answers to those prompts are
   right as often as the pairs say (duplicate a prompt with a right and a wrong completion and the
   model learns to answer it right about half the time: mixed pass rates from real sampling);
5. saves both with ``save_pretrained`` into ``directory``, loadable with
   ``AutoTokenizer.from_pretrained(directory)`` and ``AutoModelForCausalLM.from_pretrained``.

Everything is seeded; on 2 CPU cores building an untrained model takes about a second and a few
hundred training steps on a few dozen short prompts take some tens of seconds.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PAD = "<|pad|>"
EOS = "<|im_end|>"
START = "<|im_start|>"
END_OF_TEXT = "<|endoftext|>"
SPECIAL_TOKENS = [PAD, END_OF_TEXT, START, EOS]

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
"""ChatML-like: ``<|im_start|>role\\ncontent<|im_end|>\\n`` per message, then the assistant's
header when a generation prompt is asked for. The model ends its answer with ``<|im_end|>``
(its eos token), so generation stops at the end of the assistant's turn."""

Chat = list[dict[str, str]]
Prompt = str | Chat


def build_tokenizer(corpus: Sequence[str], vocab_size: int = 512) -> Any:
    """A byte-level BPE tokenizer trained on ``corpus``, as a ``PreTrainedTokenizerFast``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(list(corpus), trainer)
    tokenizer = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=core,
        pad_token=PAD,
        eos_token=EOS,
        bos_token=None,
        unk_token=None,
        padding_side="left",
        model_max_length=2048,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def prompt_text(tokenizer: Any, prompt: Prompt) -> str:
    """The text the model is conditioned on: a chat goes through the chat template with the
    generation prompt (as a rollout worker does it); plain text is used as is."""
    if isinstance(prompt, str):
        return prompt
    text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    assert isinstance(text, str)
    return text


def build_tiny_lm(
    directory: Path,
    corpus: Sequence[str],
    *,
    train: Sequence[tuple[Prompt, str]] = (),
    steps: int = 300,
    batch_size: int = 32,
    learning_rate: float = 3e-3,
    vocab_size: int = 512,
    hidden_size: int = 96,
    layers: int = 2,
    heads: int = 4,
    seed: int = 0,
) -> Path:
    """Write a tokenizer and a tiny Qwen2 causal LM into ``directory`` and return it.

    ``corpus`` trains the tokenizer (include the prompts and answers the model will see, so they
    tokenize into few tokens). ``train`` pairs (a chat or a text prompt, the completion) are
    learnt for ``steps`` AdamW steps on minibatches of ``batch_size``; the completion is followed
    by the eos token. With no pairs the model stays randomly initialised (its samples are noise,
    which is what a grader's garbage-input test wants).
    """
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    texts = list(corpus)
    tokenizer = build_tokenizer(texts + [c for _, c in train], vocab_size=vocab_size)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=max(1, heads // 2),
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    model = Qwen2ForCausalLM(config)  # type: ignore[no-untyped-call]
    if train:
        # one thread: a model this small gains little from two, and loses a lot when another
        # process competes for the cores (OpenMP threads spin-wait for each other)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            _fine_tune(model, tokenizer, train, steps, batch_size, learning_rate, seed)
        finally:
            torch.set_num_threads(threads)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = None
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def _fine_tune(
    model: Any,
    tokenizer: Any,
    pairs: Sequence[tuple[Prompt, str]],
    steps: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
) -> None:
    """Teacher-forced next-token loss on the completion tokens only (prompt and padding are
    masked with -100), AdamW with a linear decay to 0."""
    import torch

    examples: list[tuple[list[int], list[int]]] = []
    for prompt, completion in pairs:
        context = tokenizer(prompt_text(tokenizer, prompt), add_special_tokens=False)["input_ids"]
        answer = tokenizer(completion, add_special_tokens=False)["input_ids"]
        examples.append((context, [*answer, tokenizer.eos_token_id]))
    rng = random.Random(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0 - s / max(1, steps))
    model.train()
    order: list[int] = []
    for _ in range(steps):
        if len(order) < batch_size:
            more = list(range(len(examples)))
            rng.shuffle(more)
            order.extend(more)
        chosen = [examples[i] for i in order[:batch_size]]
        del order[:batch_size]
        width = max(len(c) + len(a) for c, a in chosen)
        ids = torch.full((len(chosen), width), tokenizer.pad_token_id, dtype=torch.long)
        labels = torch.full((len(chosen), width), -100, dtype=torch.long)
        mask = torch.zeros((len(chosen), width), dtype=torch.long)
        for row, (context, answer) in enumerate(chosen):
            sequence = context + answer
            ids[row, : len(sequence)] = torch.tensor(sequence)
            labels[row, len(context) : len(sequence)] = torch.tensor(answer)
            mask[row, : len(sequence)] = 1
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
    model.eval()


# ---------------------------------------------------------------------------------------------
# a tiny model that answers some math12k prompts (for the rollout worker's end-to-end tests)

MATH12K = Path(__file__).resolve().parents[1] / "data" / "math12k.parquet"
"""The repository's copy of the paper's training set (the same file as shared/data)."""


@dataclass(frozen=True)
class MathLM:
    """A tiny model taught a few math12k prompts, and those prompts as a prompt set."""

    model: Path
    data: Path
    """A parquet file in math12k's layout (no id column: ids are "0".."n-1")."""
    rows: list[int]
    """math12k row of each prompt of ``data``."""
    kinds: list[str]
    """What the model was taught for each prompt: "right", "mixed" (the right answer and a
    wrong one, equally often) or "wrong"."""


def math12k_subset(count: int = 24, source: Path = MATH12K) -> list[tuple[int, dict[str, Any]]]:
    """The first ``count`` math12k rows (file order) with a short integer ground truth and a
    short question: answers a tiny model can learn in seconds and math-verify grades exactly."""
    import pyarrow.parquet as pq

    chosen = []
    for index, row in enumerate(pq.read_table(source).to_pylist()):
        truth = row["reward_model"]["ground_truth"]
        if truth.isdigit() and len(truth) <= 3 and len(row["prompt"][0]["content"]) < 170:
            chosen.append((index, row))
            if len(chosen) == count:
                break
    return chosen


def build_math_lm(
    directory: Path, count: int = 24, steps: int = 300, source: Path = MATH12K
) -> MathLM:
    """Teach a tiny model ``count`` math12k prompts (cached: a finished ``directory`` is reused).

    Prompt i is taught kind ``("right", "mixed", "wrong")[i % 3]``: "The answer is
    \\boxed{truth}." / that and "The answer is \\boxed{truth + 7}." / only the wrong one. Sampled
    at temperature 1, the model's groups then come out all right, all wrong and in between
    (imperfectly learnt, as a real policy: the tests assert mixed pass rates, not exact ones).
    About 15 s on 2 CPU cores.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    directory = Path(directory)
    ready = directory / "ready.json"
    if ready.is_file():
        meta = json.loads(ready.read_text())
        return MathLM(
            directory / "model", directory / "prompts.parquet", meta["rows"], meta["kinds"]
        )
    subset = math12k_subset(count, source)
    kinds = [("right", "mixed", "wrong")[i % 3] for i in range(len(subset))]
    pairs: list[tuple[Prompt, str]] = []
    for (_, row), kind in zip(subset, kinds, strict=True):
        truth = row["reward_model"]["ground_truth"]
        right = f"The answer is \\boxed{{{truth}}}."
        wrong = f"The answer is \\boxed{{{int(truth) + 7}}}."
        chat: Chat = [dict(m) for m in row["prompt"]]
        pairs += {
            "right": [(chat, right)],
            "mixed": [(chat, right), (chat, wrong)],
            "wrong": [(chat, wrong)],
        }[kind]
    corpus = [m["content"] for _, row in subset for m in row["prompt"]]
    build_tiny_lm(directory / "model", corpus, train=pairs, steps=steps, batch_size=16)
    pq.write_table(pa.Table.from_pylist([row for _, row in subset]), directory / "prompts.parquet")
    rows = [index for index, _ in subset]
    ready.write_text(json.dumps({"rows": rows, "kinds": kinds}))
    return MathLM(directory / "model", directory / "prompts.parquet", rows, kinds)
