"""A config generation: one loaded config and everything derived from it, swapped whole
on reload (exchanges in flight keep the one they started with).

Its two caches live here, so a reload drops them by construction and nothing else ever
asks whether a cached answer is still current:

- ``requests``: what a fast-lane request head means, by the raw head (``RequestPlan``);
  worst case 16 MiB (``REQUEST_BYTES``) in 1,024 plans; a head over 4 KiB, or not ASCII,
  is never cached;
- ``responses``: the client's response fields, by the upstream head without its ``Date``
  and the CORS decision (``ResponsePlan``); worst case 8 MiB (``RESPONSE_BYTES``) in
  1,024 plans; a plan estimated over 128 KiB is never cached.

tests/test_generation.py measures that each entry's estimate bounds what it holds, and
that a cache never passes its budget.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, NamedTuple, TypeVar

from proxy.config.model import Config, UpstreamTarget
from proxy.export.report import enforced_and_candidate
from proxy.http.downstream import Fields, Replay
from proxy.http.fastlane import MAX_FIELDS, Head
from proxy.http.upstream import UpstreamClient
from proxy.log.record import LineStart
from proxy.policy.cors import ActualDecision, CorsPolicy, PreflightDecision
from proxy.policy.headers import response_head

K = TypeVar("K")
V = TypeVar("V")

# The caches' bounds, in entries and bytes. An entry's size is an upper bound on the
# memory its key and value hold (tests/test_generation.py measures each estimate).
REQUESTS = 1024  # request plans (distinct heads: a dev session sends a few dozen)
REQUEST_BYTES = 16 << 20  # for all of them: the request cache's worst case
LARGEST_HEAD = 4096  # bytes: a longer request head is parsed and planned each time
RESPONSES = 1024  # response plans (distinct upstream heads and decisions)
RESPONSE_BYTES = 8 << 20  # for all of them: the response cache's worst case
LARGEST_RESPONSE = 128 << 10  # estimated bytes: a larger plan is made each time


class Cache(Generic[K, V]):
    """A memo table bounded in entries and in bytes.

    ``put`` takes each entry's size: an upper bound, in bytes, on the memory its key and
    value hold. An entry larger than ``largest`` is never cached, so what a hostile client
    sends is computed each time and never stays. When an entry would take the table past
    ``entries`` entries or ``budget`` bytes, the table is emptied at once: cheaper per hit
    than an LRU, and endless distinct inputs only make lookups miss. Worst case:
    ``budget`` bytes, plus the dict's own (about 100 bytes per entry)."""

    __slots__ = ("_table", "budget", "entries", "get", "largest", "size")

    def __init__(self, *, entries: int, budget: int, largest: int) -> None:
        self._table: dict[K, V] = {}
        # ``get(key)``: the value or None; the dict's own method (the hot path's lookup)
        self.get: Callable[[K], V | None] = self._table.get
        self.entries = entries
        self.budget = budget
        self.largest = largest
        self.size = 0  # the sizes of the entries held

    def __len__(self) -> int:
        return len(self._table)

    def items(self) -> list[tuple[K, V]]:
        """What the cache holds now (for tests and debugging)."""
        return list(self._table.items())

    def __repr__(self) -> str:
        return f"<Cache {len(self._table)}/{self.entries} entries, {self.size}/{self.budget} B>"

    def put(self, key: K, value: V, size: int) -> V:
        """Keep ``value`` under ``key`` unless ``size`` is over ``largest``; ``value`` back."""
        if size <= self.largest:
            table = self._table
            if len(table) >= self.entries or self.size + size > self.budget:
                table.clear()
                self.size = 0
            table[key] = value
            self.size += size
        return value


class RequestPlan:
    """What one fast-lane request head means under one generation, each part worked out
    at most once: the parsed head, its CORS decision, the upstream request head (for the
    last client address), the request part of its log line, and for an allowed
    preflight the whole answer. Cached in ``Generation.requests`` by the raw head."""

    __slots__ = ("actual", "generation", "head", "line", "preflight", "replay", "upstream")

    def __init__(self, generation: Generation, head: Head) -> None:
        self.generation = generation
        self.head = head
        # a forwarded request's Origin (joined, cut) and CORS decision
        self.actual: tuple[str | None, ActualDecision] | None = None
        self.preflight: PreflightDecision | None = None  # a preflight's
        self.line: LineStart | None = None
        self.upstream: tuple[str, bytes] | None = None  # (client address, head sent upstream)
        self.replay: Replay | None = None  # set by the fast lane from ``answer_now``


def request_plan_size(head_bytes: int, fields: int) -> int:
    """An upper bound on the bytes a plan for a head of ``head_bytes`` with ``fields``
    fields holds, its key included, once every part is worked out (measured:
    tests/test_generation.py). Its strings are ASCII, one byte a character: only ASCII
    heads are cached."""
    return 8 * head_bytes + 400 * fields + 4096


class ResponsePlan(NamedTuple):
    """The client's response fields for one upstream head (without ``Date``) and one
    CORS decision: what ``policy.headers.response_head`` makes of them."""

    fields: Fields  # the upstream's, filtered, then CORS, then Vary; serialized once
    cookies: tuple[str, ...]  # the upstream's Set-Cookie values, in order
    upstream_cors: tuple[tuple[str, str], ...]  # its own Access-Control-* fields
    size: int  # characters in ``fields`` (the inspector keeps small ones by reference)


def response_plan_size(fields: Sequence[tuple[str, str]], client_origin: str) -> int:
    """An upper bound on the bytes a response plan and its key hold (measured:
    tests/test_generation.py), the decision in its key included. Upstream fields are
    latin-1, one byte a character."""
    text = sum(len(name) + len(value) for name, value in fields)
    return 4 * text + 300 * len(fields) + 4 * len(client_origin) + 3072


@dataclass(frozen=True)
class Generation:
    """One loaded config and everything derived from it; swapped whole on reload."""

    number: int
    config: Config
    policy: CorsPolicy
    client: UpstreamClient  # shared with the previous generation when the upstream is the same
    candidate: CorsPolicy | None = None  # report-only rules: refusals logged, not enforced
    requests: Cache[bytes, RequestPlan] = field(
        default_factory=lambda: Cache(
            entries=REQUESTS,
            budget=REQUEST_BYTES,
            largest=request_plan_size(LARGEST_HEAD, MAX_FIELDS),
        ),
        repr=False,
    )
    responses: Cache[tuple[object, ...], ResponsePlan] = field(
        default_factory=lambda: Cache(
            entries=RESPONSES, budget=RESPONSE_BYTES, largest=LARGEST_RESPONSE
        ),
        repr=False,
    )

    @property
    def target(self) -> UpstreamTarget:
        return self.config.target

    @classmethod
    def build(cls, number: int, config: Config, client: UpstreamClient) -> Generation:
        rules, candidate = enforced_and_candidate(config)
        return cls(
            number=number,
            config=config,
            policy=CorsPolicy(rules),
            client=client,
            candidate=CorsPolicy(candidate) if candidate is not None else None,
        )

    def plan(self, raw: bytes, head: Head) -> RequestPlan:
        """A new plan for the head ``raw``, cached in ``requests`` when it is small and
        ASCII (a longer or non-ASCII head, rare, is planned each time)."""
        plan = RequestPlan(self, head)
        if len(raw) <= LARGEST_HEAD and raw.isascii():
            self.requests.put(raw, plan, request_plan_size(len(raw), len(head.headers)))
        return plan

    def response_plan(
        self, headers: Sequence[tuple[str, str]], decision: ActualDecision, client_origin: str
    ) -> tuple[ResponsePlan, str | None]:
        """The response plan for the upstream's ``headers``, and the upstream's ``Date``
        value (which the plan leaves out: the key repeats, the date does not)."""
        date = None
        fields: Sequence[tuple[str, str]] = headers
        at = [i for i, (name, _) in enumerate(headers) if len(name) == 4 and name.lower() == "date"]
        if len(at) == 1:
            date = headers[at[0]][1]
            fields = [*headers[: at[0]], *headers[at[0] + 1 :]]
        key = (decision, client_origin, *fields)
        plan = self.responses.get(key)
        if plan is None:
            config = self.config
            head = response_head(
                fields,
                decision,
                override=config.upstream_cors == "override",
                upstream_origins=config.target.aliases,
                client_origin=client_origin,
            )
            plan = ResponsePlan(Fields(head.fields), head.cookies, head.upstream_cors, head.size)
            self.responses.put(key, plan, response_plan_size(fields, client_origin))
        return plan, date
