"""The demo's cast and plot: models with their latency profiles, prompts with their versions, users, features —
and the planted story (summarize_ticket 2.0.0 is slower and costlier than 1.0.0; an error burst on one model).

Everything random comes from one seeded ``random.Random`` in the dispatcher (the call plan) and from per-request
generators keyed by the fake provider's request number (usage), so a seed gives the same mix of calls.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from promptpulse.testing import Latency, RequestInfo, Scenario, Usage, fake_tokens

SERVICE = "demo-support-bot"
ENVIRONMENT = "demo"


# --- models -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelProfile:
    name: str
    provider: str  # openai | anthropic
    response_model: str  # what the API answers with (dated snapshot)
    latency: Latency  # non-stream: time before the answer, on top of generation time
    ttft: Latency  # stream: time to the first event
    seconds_per_output_token: float  # generation speed
    embedding: bool = False


# Lognormal "network + queue + prefill" times plus a per-token generation time, compressed a little from production
# (real generation is 50-150 tokens/s) so a one-minute demo shows several hundred calls, not a few dozen.
MODELS: dict[str, ModelProfile] = {m.name: m for m in (
    ModelProfile("gpt-4o-mini", "openai", "gpt-4o-mini-2024-07-18", Latency.lognormal(0.22, 0.35, max=6),
                 Latency.lognormal(0.20, 0.35, max=4), 0.0035),
    ModelProfile("gpt-4o", "openai", "gpt-4o-2024-08-06", Latency.lognormal(0.35, 0.4, max=8),
                 Latency.lognormal(0.30, 0.4, max=5), 0.0045),
    ModelProfile("claude-haiku-4-5", "anthropic", "claude-haiku-4-5-20251001", Latency.lognormal(0.30, 0.35, max=6),
                 Latency.lognormal(0.25, 0.35, max=4), 0.0032),
    ModelProfile("claude-sonnet-4-5", "anthropic", "claude-sonnet-4-5-20250929", Latency.lognormal(0.40, 0.4, max=8),
                 Latency.lognormal(0.35, 0.4, max=5), 0.0040),
    ModelProfile("text-embedding-3-small", "openai", "text-embedding-3-small", Latency.lognormal(0.06, 0.3, max=2),
                 Latency.lognormal(0.06, 0.3, max=2), 0.0, embedding=True),
)}

# Share of prompt tokens served from the provider's prompt cache on a warm prefix (OpenAI: 128-token steps past 1024).
CACHE_HIT_RATE = 0.55


def _usage_for(seed: int) -> object:
    """Usage decided by the request itself: input = the fake tokenizer over the real prompt text; output = a lognormal
    share of the request's max_tokens (capped by it, so a few answers end with finish reason 'length')."""

    def usage(req: RequestInfo) -> Usage:
        rng = random.Random(seed * 1_000_003 + req.seq)
        inp = req.prompt_tokens if req.prompt_tokens is not None else fake_tokens(req.prompt_text)
        if req.operation == "embeddings":
            return Usage(input_tokens=inp, output_tokens=0)
        cap = req.max_tokens or 512
        out = max(1, round(rng.lognormvariate(math.log(cap * 0.36), 0.35)))
        cached = 0
        if inp >= 1024 and rng.random() < CACHE_HIT_RATE:
            cached = min(inp, 1024 + 128 * rng.randrange(0, max(1, (inp - 1024) // 128)))
        return Usage(input_tokens=inp, output_tokens=out, cached_tokens=cached)

    return usage


# --- online evaluation: two rules in the app (docs/EVALUATION.md), the judge answered by the fake provider ----------
JUDGE_MODEL = "gpt-4.1-mini"
JUDGE_KEY_ENV = "PROMPTPULSE_DEMO_JUDGE_KEY"


def evaluation_rules(openai_base_url: str) -> list[dict]:
    chat = {"operation": "chat"}
    return [
        {"name": "reply_pii", "metric": "pii", "guardrail": True, "filters": chat},
        {"name": "answer_relevance", "metric": "answer_relevance", "sampling": 0.2, "filters": chat,
         "judge": {"model": JUDGE_MODEL, "base_url": openai_base_url, "api_key_env": JUDGE_KEY_ENV,
                   "record_calls": False}},  # the judge's calls stay out of the demo's call counts
    ]


def _judge_answer(req: RequestInfo) -> str:
    score = 0.6 + (req.seq % 5) / 10  # 0.6 .. 1.0, deterministic per request
    return f'{{"score": {score:.1f}, "reason": "The answer addresses the question."}}'


def scenario(seed: int) -> Scenario:
    """The fake provider's behaviour: one sub-scenario per model (and the judge's)."""
    usage = _usage_for(seed)
    per_model = {
        name: Scenario(
            usage=usage,  # type: ignore[arg-type]
            latency=m.latency,
            ttft=m.ttft,
            inter_chunk=Latency.fixed(0.0),
            seconds_per_output_token=m.seconds_per_output_token,
            stream_chunks=12,
            response_models={name: m.response_model},
            seed=seed,
        )
        for name, m in MODELS.items()
    }
    per_model[JUDGE_MODEL] = Scenario(text=_judge_answer, output_tokens=20, latency=Latency.fixed(0.02), seed=seed)
    return Scenario(models=per_model, seed=seed, response_models={n: m.response_model for n, m in MODELS.items()})


# --- prompts ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Version:
    version: str
    weight: float  # share of the prompt's traffic
    system_tokens: int  # length of the system prompt
    max_tokens: int  # drives output length (see _usage_for)
    note: str = ""


@dataclass(frozen=True)
class PromptSpec:
    name: str
    share: float  # share of all calls
    model: str
    feature: str
    stream: float  # chance a call streams
    versions: tuple[Version, ...]
    input_tokens: tuple[int, int]  # range of the per-call content (ticket, message, query) in tokens
    timeout_s: float = 30.0
    max_retries: int = 2
    tags: tuple[str, ...] = ()
    scores: tuple[str, float] | None = None  # (score name, share of successful calls that get one)


PROMPTS: tuple[PromptSpec, ...] = (
    PromptSpec("support_reply", 0.28, "claude-sonnet-4-5", "chat", 0.85,
               (Version("3.2.0", 0.8, 1400, 360), Version("3.3.0", 0.2, 1100, 360, "shorter system prompt")),
               (40, 400), tags=("channel:web",), scores=("user_feedback", 0.12)),
    PromptSpec("summarize_ticket", 0.22, "claude-haiku-4-5", "ticket_triage", 0.0,
               (Version("1.0.0", 0.5, 350, 360), Version("2.0.0", 0.5, 520, 1100, "detailed summaries")),
               (150, 900), scores=("summary_quality", 0.4)),
    PromptSpec("classify_intent", 0.30, "gpt-4o-mini", "routing", 0.0,
               (Version("4.1.0", 1.0, 260, 16),), (10, 80), timeout_s=1.5, max_retries=1),
    PromptSpec("draft_email", 0.12, "gpt-4o", "agent_assist", 0.6,
               (Version("2.0.0", 0.5, 480, 700), Version("2.1.0", 0.5, 480, 480, "tighter length limit")),
               (100, 400)),
    PromptSpec("kb_search", 0.08, "text-embedding-3-small", "search", 0.0,
               (Version("1.0.0", 1.0, 0, 0),), (12, 120)),
)
PROMPTS_BY_NAME = {p.name: p for p in PROMPTS}

# The planted story, in words (printed by the demo).
STORY_VERSION = ("summarize_ticket", "1.0.0", "2.0.0")
BURST_MODEL = "gpt-4o-mini"
BURST_ERROR_SHARE = 0.3  # 3 in 10 calls to BURST_MODEL fail with 5xx during the burst
BURST_STATUS = 503


def burst_window(duration: float) -> tuple[float, float]:
    """When the error burst happens, in seconds from the start: ~10 s in the middle of the run (shorter runs: less)."""
    length = min(10.0, max(2.0, duration * 0.22))
    start = duration * 0.45
    return start, min(duration, start + length)


# --- users ------------------------------------------------------------------------------------------------------
PLANS = ("free", "pro", "pro", "enterprise")


@dataclass
class Users:
    rng: random.Random
    returning: list[str] = field(default_factory=list)
    new_share: float = 0.22
    _next_new: int = 0

    def __post_init__(self) -> None:
        self.returning = [f"user-{i:04d}" for i in range(1, 81)]

    def pick(self) -> tuple[str, bool]:
        """(user id, is new): new users join the returning pool; returning users are Zipf-ish (a few heavy users)."""
        if self.rng.random() < self.new_share:
            self._next_new += 1
            uid = f"new-{self._next_new:05d}"
            self.returning.append(uid)
            return uid, True
        k = min(len(self.returning) - 1, int(self.rng.paretovariate(1.2)) - 1)
        return self.returning[k], False


# --- call plan --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CallSpec:
    seq: int
    at: float  # planned start, seconds from the start of traffic
    prompt: PromptSpec
    version: Version
    user_id: str
    new_user: bool
    session_id: str
    stream: bool
    content_tokens: int
    fault: str | None  # x-fake-fault header value (the fake provider's control channel), None = healthy
    in_burst: bool
    score: float | None  # feedback to send after a successful call
    text_seed: int


def pick_fault(rng: random.Random, prompt: PromptSpec, stream: bool) -> str | None:
    """Everyday failures (per attempt, comma-separated; the last entry repeats for further retries)."""
    r = rng.random()
    if (r := r - 0.018) < 0:
        return "429:0.05,ok"  # rate limited, then the SDK's retry succeeds
    if (r := r - 0.003) < 0:
        return "429:0.05"  # rate limited on every attempt: the call fails
    if (r := r - 0.012) < 0:
        return "500:0.05,ok"  # transient server error, retried (the only 5xx that reach the app are the burst's)
    if prompt.timeout_s < 5 and (r := r - 0.008) < 0:
        return "timeout:3" if rng.random() < 0.5 else "timeout:3,ok"  # past the client's timeout
    if stream and (r := r - 0.006) < 0:
        return "cut:3"  # the stream breaks off mid-way
    return None


def pick_version(rng: random.Random, prompt: PromptSpec) -> Version:
    x = rng.random() * sum(v.weight for v in prompt.versions)
    for v in prompt.versions:
        x -= v.weight
        if x < 0:
            return v
    return prompt.versions[-1]


def pick_prompt(rng: random.Random) -> PromptSpec:
    x = rng.random() * sum(p.share for p in PROMPTS)
    for p in PROMPTS:
        x -= p.share
        if x < 0:
            return p
    return PROMPTS[-1]


def score_value(rng: random.Random, prompt: PromptSpec, version: Version) -> float | None:
    if prompt.scores is None or rng.random() >= prompt.scores[1]:
        return None
    if prompt.scores[0] == "user_feedback":
        return 1.0 if rng.random() < 0.86 else 0.0
    mean = 0.86 if version.version == "2.0.0" else 0.78  # the twist: v2 costs more, but readers like it better
    return round(min(1.0, max(0.0, rng.gauss(mean, 0.07))), 2)


# --- text -------------------------------------------------------------------------------------------------------
_VOCABULARY = ("the customer order refund invoice account password reset shipping delay tracking number subscription "
               "plan upgrade downgrade billing charge card declined error message login two-factor device app update "
               "crash sync export report dashboard team member invite permission admin policy return warranty "
               "replace damaged item address change cancel renewal discount coupon code priority support agent "
               "escalate resolve summary tone friendly concise apologise confirm next steps within business days")
_WORDS = tuple(_VOCABULARY.split(" "))


def words(rng: random.Random, tokens: int) -> str:
    """About `tokens` fake tokens (4 characters each) of plausible support vocabulary."""
    out: list[str] = []
    n = 0
    target = tokens * 4
    while n < target:
        w = rng.choice(_WORDS)
        out.append(w)
        n += len(w) + 1
    return " ".join(out)[: max(1, target)]
