"""Online template miner: one line in, one template id out.

Lines are masked (``detector.logs.preprocess``): ids, numbers, addresses, paths and times become
``<*>``. What is left are words, and whether a differing word is a variable (a user name, a host) or
tells two events apart (``startup`` / ``shutdown``) cannot be seen from one line. So the miner lets
the data decide:

- A line whose masked tokens equal a template's (wildcards learned so far match any word) joins it.
- A line that differs from its closest template of the same length in a few word positions (at
  most ``max_differing`` of its tokens) starts a sibling template, and the value tuples seen at
  those positions are counted under the shared pattern. When ``merge_after`` distinct values have
  been seen there, the positions are variables: the siblings merge into the oldest one, whose
  template gets wildcards there. Fewer recurring values stay apart, and so do upper-case states
  and codes, different field names (``num=`` / ``topActivity=``) and, in short lines, different
  first words.
- Anything else starts a new template.

Template ids are small integers handed out in creation order and never reused. A merged template's
id stays valid and resolves to the template it merged into (``resolve``). Ids, templates and merge
history live in the pickled state, so they are stable across restarts. An exact-match cache of
masked token tuples answers repeated shapes with one dict lookup.
"""

from __future__ import annotations

from collections import OrderedDict
from itertools import islice

from detector.logs.preprocess import EMPTY, WILDCARD, Masker, clean_text, json_message, mask_quoted

# A wildcard learned from differing words. Unlike a masked ``<*>`` (which only matches another
# masked value) it matches any token; after ``key=`` it matches any value of that field. Shown as
# ``<*>``. Its two characters are relied on below (``a[-2:] == ANY``).
ANY = "\x00*"
CACHED_LINE_CHARS = 512  # masked lines longer than this are not kept in the exact-line cache


def _covers(a: str, b: str) -> bool:
    """Template token ``a`` matches token ``b``."""
    return a == b or a == ANY or _covers_field(a, b)


def _covers_field(a: str, b: str) -> bool:
    """``key=value`` template tokens: a learned wildcard after ``key=`` takes any value; a value
    holding a masked variable (``key=<*>``, ``key=ord-<*>``) takes any other variable-looking value
    of the same field (masked, partly masked, or an id without digits)."""
    if a[-2:] == ANY:
        return b.startswith(a[:-2])
    i = a.find("=")
    if i <= 0 or not b.startswith(a[: i + 1]):
        return False
    va, vb = a[i + 1:], b[i + 1:]
    core_a, core_b = va.rstrip(_TRAIL), vb.rstrip(_TRAIL)
    if va[len(core_a):] != vb[len(core_b):]:
        return False
    if WILDCARD in core_a:
        return WILDCARD in core_b or _id_like(core_b)
    # A template made from a line whose id happened to have no digits: another random id there
    # is the same field, not a new event.
    return _random_like(core_a) and (WILDCARD in core_b or _random_like(core_b))


_TRAIL = ",;:)]}\"'"


def _random_like(v: str) -> bool:
    """Letters in no word pattern (tBtWvjEkWQqkEe, XAATPjnmzMwbpg): split at capitals, a generated
    id falls into many pieces of one or two letters, an identifier (WindowStateAnimator) into words."""
    if len(v) < 10:
        return False
    short = run = 0
    for c in v:
        if c.isupper() or not c.isalpha():
            short += 0 < run <= 2
            run = 1 if c.isupper() else 0
        else:
            run += 1
    short += 0 < run <= 2
    return short >= 3


def _id_like(v: str) -> bool:
    """Long enough and shaped like a generated id or name (txn_EreikRdyReskDu, host.example.org),
    rather than a short word such as a user or a state."""
    return len(v) >= 8 and (any(c in "_-.:/" for c in v) or not (v.islower() or v.isupper() or v.istitle()))


def _key(tok: str) -> str | None:
    """The field name of a ``key=value`` token, None for other tokens."""
    k = tok.find("=")
    return tok[:k] if k > 0 else None


def _enum_like(tok: str) -> bool:
    return tok.isupper() and len(tok) > 1


def _first_word(tokens: list[str]) -> int:
    for i, t in enumerate(tokens):
        if t != WILDCARD:
            return i
    return 0


class Template:
    __slots__ = ("id", "tokens", "count", "first_seen", "example", "merged_into")

    def __init__(self, tid: int, tokens: list[str], first_seen: float, example: str):
        self.id = tid
        self.tokens = tokens
        self.count = 0
        self.first_seen = first_seen
        self.example = example
        self.merged_into: Template | None = None

    @property
    def text(self) -> str:
        return " ".join(t.replace(ANY, WILDCARD) for t in self.tokens)

    def __getstate__(self):
        return (self.id, self.tokens, self.count, self.first_seen, self.example, self.merged_into)

    def __setstate__(self, state):
        self.id, self.tokens, self.count, self.first_seen, self.example, self.merged_into = state


class MineResult:
    """What the miner says about one line."""

    __slots__ = ("template", "is_new", "damaged", "text", "similar")

    def __init__(self, template: Template, is_new: bool, damaged: bool, text: str, similar=None):
        self.template = template
        self.is_new = is_new
        self.damaged = damaged
        self.similar = similar  # for a new template: the known one it differs from in a few words
        self.text = text  # the message as mined: decoded, cut to max_chars, control characters blanked


class _Variants:
    """Siblings that differ only at some positions, and the value tuples seen there."""

    __slots__ = ("values", "members")

    def __init__(self):
        self.values: set[tuple] = set()
        self.members: list[Template] = []


class TemplateMiner:
    def __init__(
        self,
        *,
        max_differing: float = 0.4,
        merge_after: int = 4,
        max_chars: int = 4096,
        max_tokens: int = 96,
        max_templates: int = 50_000,
        max_candidates: int = 128,
        example_chars: int = 300,
        cache_size: int = 100_000,
    ):
        self.max_differing = max_differing
        self.merge_after = merge_after
        self.max_chars = max_chars
        self.max_tokens = max_tokens
        self.max_templates = max_templates
        self.max_candidates = max_candidates
        self.example_chars = example_chars
        self.cache_size = cache_size
        self.templates: dict[int, Template] = {}  # live templates (merged ones are resolved)
        self._all: dict[int, Template] = {}  # every id ever handed out
        # Templates by token count, most recently used last: a line that misses the exact cache is
        # compared with at most ``max_candidates`` of them, newest first, so work per line stays
        # bounded however many templates a stream grows.
        self._by_length: dict[int, OrderedDict[int, Template]] = {}
        # The same, by token count and first word: the templates a line most likely belongs to
        # are looked at first, so an old template is still found after a flood of newer ones.
        self._by_word: dict[tuple[int, str], OrderedDict[int, Template]] = {}
        self._word_of: dict[int, tuple[int, str]] = {}
        self._variants: dict[tuple, _Variants] = {}
        self._next_id = 1
        self._masker = Masker(cache_size)
        self._exact: dict[tuple, Template] = {}
        self._similar: Template | None = None
        self.lines = 0
        self.damaged_lines = 0
        self.truncated_tokens = 0
        self.empty_lines = 0
        self.merges = 0
        # Past ``max_templates`` the template seen least recently is evicted to make room, one seen
        # only once first (``_once``): a flood of one-off lines then replaces its own kind, not the
        # templates that keep recurring, and a later new event still gets a template of its own.
        self._recent: OrderedDict[int, Template] = OrderedDict()  # live templates, least recently used first
        self._once: OrderedDict[int, Template] = OrderedDict()  # live templates seen once, oldest first
        self.evicted_templates = 0

    # -- the hot path -------------------------------------------------------------------------

    def tokenize(self, message) -> tuple[list[str], bool, str]:
        """Masked tokens, whether the input was damaged, and the cleaned text."""
        text, damaged = clean_text(message, self.max_chars)
        mined = text
        if text[:1] == "{" and text[-1:] == "}":
            inner = json_message(text)
            if inner is not None:
                mined, d2 = clean_text(inner, self.max_chars)
                damaged = damaged or d2
        tokens = mask_quoted(mined).split()
        if not tokens:
            self.empty_lines += 1
            return [EMPTY], damaged, text
        if len(tokens) > self.max_tokens:
            # Everything past the cap is one variable: the head of a line says what it is.
            tokens = tokens[: self.max_tokens - 1]
            tokens.append(WILDCARD)
            self.truncated_tokens += 1
            damaged = True
        return self._masker.mask(tokens), damaged, text

    def add(self, message, timestamp: float = 0.0) -> MineResult:
        """Mine one message (str or bytes) and return its template."""
        self.lines += 1
        masked, damaged, text = self.tokenize(message)
        if damaged:
            self.damaged_lines += 1
        key = tuple(masked)
        tpl = self._exact.get(key)
        is_new = False
        self._similar = None
        if tpl is not None:
            while tpl.merged_into is not None:
                tpl = tpl.merged_into
            if self.templates.get(tpl.id) is not tpl:
                tpl = None  # evicted since it was cached: the line is placed afresh
            else:
                self._touch(tpl)
        if tpl is None:
            tpl, is_new = self._place(masked, timestamp, text)
            # Only short masked lines are cached: a long one (words without digits stay unmasked)
            # seldom recurs exactly, and at up to max_chars each a full cache held hundreds of MB.
            if sum(map(len, masked)) <= CACHED_LINE_CHARS:
                if len(self._exact) >= self.cache_size:
                    self._exact.clear()
                self._exact[key] = tpl
        tpl.count += 1
        if tpl.count == 2:
            self._once.pop(tpl.id, None)
        return MineResult(tpl, is_new, damaged, text, self._similar if is_new else None)

    def _place(self, tokens: list[str], timestamp: float, text: str) -> tuple[Template, bool]:
        n = len(tokens)
        best = None
        best_diff: list[int] | None = None
        # Short lines may still differ in one word: two or three values there stay apart anyway.
        limit = max(1.0, self.max_differing * n)
        # The first word (after any leading values such as a timestamp) names the event far more
        # often than not (a verb, a component): in short lines a different first word is a
        # different event; in longer ones it may be a variable (a program name), but needs twice
        # the evidence (see _vote).
        first = _first_word(tokens)
        first_fixed = n < 6
        group = self._by_length.get(n)
        same_word = self._by_word.get((n, tokens[first]))
        candidates = []
        if same_word:
            candidates += islice(reversed(same_word.values()), self.max_candidates)
        if group:
            candidates += islice(reversed(group.values()), self.max_candidates)
        checked = set()
        for tpl in candidates:
            if tpl.id in checked:
                continue
            checked.add(tpl.id)
            diff = []
            for i, (a, b) in enumerate(zip(tpl.tokens, tokens)):
                # _covers inlined: this loop runs for every token of every line the cache misses.
                if a != b and a != ANY and not _covers_field(a, b):
                    if i == first and first_fixed:
                        break
                    diff.append(i)
                    if len(diff) > limit or (best_diff is not None and len(diff) >= len(best_diff)):
                        break
            else:
                if not diff:
                    self._touch(tpl)
                    self._settle_fields(tpl, tokens)
                    return tpl, False
                if best_diff is None or len(diff) < len(best_diff):
                    best, best_diff = tpl, diff
        new = self._create(tokens, timestamp, text)
        self._similar = best
        if best is not None and new.merged_into is None:
            merged = self._vote(best, new, best_diff)
            if merged is not None:
                return merged, False
        return new, True

    @staticmethod
    def _settle_fields(tpl: Template, tokens: list[str]) -> None:
        """Where a literal field value matched another value (two generated ids), the template
        shows the field as a variable from now on."""
        tt = tpl.tokens
        for i, (a, b) in enumerate(zip(tt, tokens)):
            if a != b and a[-2:] != ANY and a != ANY and WILDCARD not in a:
                k = a.find("=")
                core = a[k + 1:].rstrip(_TRAIL)
                tt[i] = a[: k + 1] + WILDCARD + a[k + 1 + len(core):]

    def _vote(self, anchor: Template, new: Template, diff: list[int]) -> Template | None:
        """Count ``new``'s values at ``diff`` among the siblings of ``anchor``; merge the siblings
        once enough distinct values were seen. Returns the merged template, or None."""
        if all(_enum_like(anchor.tokens[i]) and _enum_like(new.tokens[i]) for i in diff):
            # Upper-case words (RUNNING, LOOKING, CBS_E_INVALID_PACKAGE) are states and codes:
            # a fixed vocabulary whose members are different events, not values of a variable.
            return None
        if any(_key(anchor.tokens[i]) != _key(new.tokens[i]) for i in diff):
            return None  # "num=3" and "topActivity=x" name different fields: different events
        shape = list(anchor.tokens)
        for i in diff:
            shape[i] = ANY
        key = (len(shape), tuple(shape))
        var = self._variants.get(key)
        if var is None:
            var = self._variants[key] = _Variants()
            var.values.add(tuple(anchor.tokens[i] for i in diff))
            var.members.append(anchor)
        var.values.add(tuple(new.tokens[i] for i in diff))
        var.members.append(new)
        needed = self.merge_after * 2 if _first_word(new.tokens) in diff else self.merge_after
        if len(var.values) < needed:
            if len(self._variants) > self.max_templates:
                self._variants.clear()  # bounded bookkeeping; worst case some variables merge later
            return None
        del self._variants[key]
        live = {}
        for m in var.members:
            while m.merged_into is not None:
                m = m.merged_into
            if self.templates.get(m.id) is m:  # not evicted meanwhile
                live[m.id] = m
        target = min(live.values(), key=lambda t: t.id)
        for i in diff:
            # A field keeps its name: "topActivity=<*>" must not swallow "num=3".
            key = _key(target.tokens[i])
            target.tokens[i] = ANY if key is None else f"{key}={ANY}"
        for m in live.values():
            if m is not target:
                self._absorb(target, m)
        # Templates the generalised one now covers are the same event: fold them in too, so one
        # event does not keep two templates with the same text.
        tt = target.tokens
        for other in list(self._by_length[len(tt)].values()):
            if other is not target and all(_covers(a, b) for a, b in zip(tt, other.tokens)):
                self._absorb(target, other)
        return target

    def _absorb(self, target: Template, other: Template) -> None:
        other.merged_into = target
        target.count += other.count
        if target.count > 1:
            self._once.pop(target.id, None)
        self._unlink(other)
        self.merges += 1

    def _unlink(self, tpl: Template) -> None:
        """Take a template out of the live indexes (merged or evicted)."""
        del self.templates[tpl.id]
        self._recent.pop(tpl.id, None)
        self._once.pop(tpl.id, None)
        group = self._by_length[len(tpl.tokens)]
        del group[tpl.id]
        if not group:
            del self._by_length[len(tpl.tokens)]
        word = self._word_of.pop(tpl.id, None)
        if word is not None:
            bucket = self._by_word[word]
            del bucket[tpl.id]
            if not bucket:
                del self._by_word[word]

    def _evict(self) -> Template:
        """Make room for a new template: the oldest template seen only once, else the one seen least
        recently. Its id is never reused; lines like it later start a new template."""
        victim = next(iter(self._once.values() or self._recent.values()))
        self._unlink(victim)
        del self._all[victim.id]
        self.evicted_templates += 1
        return victim

    def _touch(self, tpl: Template) -> None:
        """Mark a template as just used (the candidate lists are searched newest first)."""
        self._recent.move_to_end(tpl.id)
        self._by_length[len(tpl.tokens)].move_to_end(tpl.id)
        word = self._word_of.get(tpl.id)
        if word is not None:
            self._by_word[word].move_to_end(tpl.id)

    def _create(self, tokens: list[str], timestamp: float, text: str) -> Template:
        if len(self.templates) >= self.max_templates:
            self._evict()  # memory stays bounded whatever the input
        tpl = Template(self._next_id, list(tokens), timestamp, text[: self.example_chars])
        self._next_id += 1
        self.templates[tpl.id] = tpl
        self._all[tpl.id] = tpl
        self._recent[tpl.id] = tpl
        self._once[tpl.id] = tpl
        self._by_length.setdefault(len(tokens), OrderedDict())[tpl.id] = tpl
        word = (len(tokens), tokens[_first_word(tokens)])
        self._by_word.setdefault(word, OrderedDict())[tpl.id] = tpl
        self._word_of[tpl.id] = word
        return tpl

    # -- inspection and persistence ------------------------------------------------------------

    def get(self, tid: int) -> Template | None:
        """The live template behind an id, following merges; None once it was evicted."""
        tpl = self._all.get(tid)
        while tpl is not None and tpl.merged_into is not None:
            tpl = tpl.merged_into
        return tpl if tpl is not None and self.templates.get(tpl.id) is tpl else None

    def resolve(self, tid: int) -> int:
        tpl = self.get(tid)
        return tpl.id if tpl is not None else tid

    def template_list(self) -> list[dict]:
        return [
            {"id": t.id, "template": t.text, "count": t.count, "first_seen": t.first_seen}
            for t in self.templates.values()
        ]

    def __len__(self) -> int:
        return len(self.templates)

    def __getstate__(self):
        state = self.__dict__.copy()
        # Caches are rebuilt on demand: they would only make checkpoints bigger.
        state["_exact"] = {}
        state["_masker"] = None
        state["_similar"] = None
        return state

    def __setstate__(self, state):
        if "_recent" not in state:
            # Saved before templates were evicted at the cap: the recency order is rebuilt from
            # the candidate lists (creation order across lengths is the best guess left).
            live = state["templates"]
            state["_recent"] = OrderedDict(sorted(live.items()))
            state["_once"] = OrderedDict((k, t) for k, t in sorted(live.items()) if t.count == 1)
            state["evicted_templates"] = 0
            state.pop("overflow_lines", None)
        self.__dict__.update(state)
        self._masker = Masker(self.cache_size)
        for tpl in [t for t in self.templates.values() if all(x == ANY for x in t.tokens)]:
            # The all-wildcard catch-all an older version made at the cap would take every line of
            # its length: dropped, so those lines find or start templates of their own again.
            self._unlink(tpl)
            del self._all[tpl.id]
