"""The policy: a small decoder-only transformer built in the run (no download, no tokenizer file).

Pre-norm GPT blocks (causal self-attention through ``scaled_dot_product_attention``, a GELU MLP),
learned token embeddings, the output layer tied to the token embedding. Positions are the digit's
place within its number (1 for the first digit written, 2 for the next, ...; 0 for every other
token), as in "Abacus" embeddings (McLeish et al., 2024): digit i of the answer shares its
position with digit i of every operand, so a small model finds the digits it must add at once
instead of after a long plateau; the order of the operands and of the answer's digits comes from
causal attention itself. Batches are left-padded: a pad token is never attended to, so a prompt
gets the same logits whatever it is batched with.

Cost: a forward pass over n sequences of T tokens is O(n T d (T + d) L); generation of M tokens
keeps a key/value cache, so it costs one pass over the prompts and M passes over one token each.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from cdas_grpo.task import DIGIT0, EOS, PAD, VOCAB


@dataclass(frozen=True)
class ModelConfig:
    """The policy's shape; every field is part of the benchmark's fixed settings."""

    layers: int = 4
    width: int = 128
    heads: int = 4
    places: int = 8
    """digit places the position embedding covers (the longest number's digits + 1)"""

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


class Block(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.heads = config.heads
        self.norm1 = nn.LayerNorm(config.width)
        self.qkv = nn.Linear(config.width, 3 * config.width)
        self.proj = nn.Linear(config.width, config.width)
        self.norm2 = nn.LayerNorm(config.width)
        self.mlp = nn.Sequential(
            nn.Linear(config.width, 4 * config.width),
            nn.GELU(),
            nn.Linear(4 * config.width, config.width),
        )

    def forward(
        self, x: Tensor, mask: Tensor, cache: list[Tensor] | None = None
    ) -> tuple[Tensor, list[Tensor]]:
        """``mask`` (n, 1, Tq, Tk) says which keys each query sees; ``cache`` holds the keys and
        values of earlier tokens (generation) and comes back extended."""
        n, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).split(d, dim=2)
        q, k, v = (z.view(n, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
        if cache is not None:
            k = torch.cat([cache[0], k], dim=2)
            v = torch.cat([cache[1], v], dim=2)
        y = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = x + self.proj(y.transpose(1, 2).reshape(n, t, d))
        x = x + self.mlp(self.norm2(x))
        return x, [k, v]


class Policy(nn.Module):
    """The language model: tokens (n, T) with ``PAD`` on the left -> next-token logits."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(VOCAB, config.width)
        self.position = nn.Embedding(config.places + 1, config.width)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.layers))
        self.norm = nn.LayerNorm(config.width)
        self.apply(self._init)

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, tokens: Tensor) -> Tensor:
        """Logits (n, T, V) for every position of left-padded ``tokens``."""
        x, _, _ = self._run(tokens)
        return self._logits(x)

    def _run(self, tokens: Tensor) -> tuple[Tensor, list[list[Tensor]], Tensor]:
        """One pass over left-padded ``tokens``: the last block's output, each block's keys and
        values (a generation's cache), and the tokens' digit places."""
        real = tokens != PAD
        positions = digit_places(tokens).clamp(max=self.config.places)
        t = tokens.shape[1]
        causal = torch.ones(t, t, dtype=torch.bool, device=tokens.device).tril()
        # a query sees earlier real keys; a pad query sees itself only (no row is all masked)
        mask = (causal & real[:, None, :]) | torch.eye(t, dtype=torch.bool, device=tokens.device)
        x = self.embed(tokens) + self.position(positions)
        caches: list[list[Tensor]] = []
        for block in self.blocks:
            x, kv = block(x, mask[:, None])
            caches.append(kv)
        return x, caches, positions

    def _logits(self, x: Tensor) -> Tensor:
        out: Tensor = self.norm(x) @ self.embed.weight.T
        return out

    @torch.no_grad()
    def generate(
        self, prompts: Tensor, max_new: int, generator: torch.Generator, temperature: float = 1.0
    ) -> Tensor:
        """Sample ``max_new`` tokens after each left-padded prompt row; (n, max_new). A row
        that has produced ``<eos>`` goes on producing ``<pad>``."""
        n = prompts.shape[0]
        x, caches, positions = self._run(prompts)
        keys = prompts != PAD
        position = positions[:, -1]
        out = torch.full((n, max_new), PAD, dtype=torch.long, device=prompts.device)
        done = torch.zeros(n, dtype=torch.bool, device=prompts.device)
        logits = self._logits(x[:, -1])
        for i in range(max_new):
            probs = torch.softmax(logits.float() / temperature, dim=-1)
            token = torch.multinomial(probs, 1, generator=generator).squeeze(1)
            token = torch.where(done, torch.full_like(token, PAD), token)
            out[:, i] = token
            done |= token == EOS
            if bool(done.all()) or i == max_new - 1:
                break
            position = torch.where(is_digit(token), position + 1, torch.zeros_like(position))
            position = position.clamp(max=self.config.places)
            keys = torch.cat([keys, torch.ones(n, 1, dtype=torch.bool, device=keys.device)], 1)
            x = self.embed(token)[:, None] + self.position(position)[:, None]
            for j, block in enumerate(self.blocks):
                x, caches[j] = block(x, keys[:, None, None, :], caches[j])
            logits = self._logits(x[:, -1])
        return out


def is_digit(tokens: Tensor) -> Tensor:
    return (tokens >= DIGIT0) & (tokens < DIGIT0 + 10)


def digit_places(tokens: Tensor) -> Tensor:
    """(n, T): each digit's place within its number, counted from 1; 0 for other tokens.
    O(n T): the count of digits so far minus that count at the last non-digit."""
    digit = is_digit(tokens).long()
    count = digit.cumsum(dim=1)
    at_break = torch.where(digit == 0, count, torch.zeros_like(count)).cummax(dim=1).values
    return (count - at_break) * digit


def parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def token_log_probs(model: Policy, tokens: Tensor, start: int) -> tuple[Tensor, Tensor]:
    """Log-probabilities of ``tokens[:, start:]`` given what precedes them, and the policy's
    entropy at each of those positions (nats); both (n, T - start)."""
    logits = model(tokens[:, :-1])[:, start - 1 :].float()
    logp = torch.log_softmax(logits, dim=-1)
    chosen = logp.gather(2, tokens[:, start:, None]).squeeze(2)
    entropy = -(logp.exp() * logp).sum(dim=-1)
    return chosen, entropy


def answer_mask(completions: Tensor) -> Tensor:
    """1 for every generated token up to and including the first ``<eos>`` (the tokens the
    rollout really produced), 0 after it."""
    is_eos = completions == EOS
    after = (is_eos.cumsum(dim=1) - is_eos.long()) > 0
    return (~after).float()
