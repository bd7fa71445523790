"""Online template miner: one line in, one template id out.

Lines are masked (``detector.logs.preprocess``), then grouped with templates of the same token
count. A line joins the template it differs from in the fewest positions, when the share of
differing positions is at most ``similarity`` ... (see ``_fits``); the positions where they differ
become wildcards. Otherwise the line starts a new template. An exact-match cache of masked token
tuples answers repeated shapes with a single dict lookup.

Template ids are small integers handed out in creation order and never reused; they live in the
pickled state, so they are stable across restarts.
"""

from __future__ import annotations

from detector.logs.preprocess import EMPTY, WILDCARD, Masker, clean_text, json_message


class Template:
    __slots__ = ("id", "tokens", "count", "first_seen", "example")

    def __init__(self, tid: int, tokens: list[str], first_seen: float, example: str):
        self.id = tid
        self.tokens = tokens
        self.count = 0
        self.first_seen = first_seen
        self.example = example

    @property
    def text(self) -> str:
        return " ".join(self.tokens)

    def __getstate__(self):
        return (self.id, self.tokens, self.count, self.first_seen, self.example)

    def __setstate__(self, state):
        self.id, self.tokens, self.count, self.first_seen, self.example = state


class MineResult:
    """What the miner says about one line."""

    __slots__ = ("template", "is_new", "damaged", "text")

    def __init__(self, template: Template, is_new: bool, damaged: bool, text: str):
        self.template = template
        self.is_new = is_new
        self.damaged = damaged
        self.text = text  # the message as mined: decoded, cut to max_chars, control characters blanked


class TemplateMiner:
    def __init__(
        self,
        *,
        max_differing: float = 0.4,
        max_chars: int = 4096,
        max_tokens: int = 96,
        max_templates: int = 50_000,
        example_chars: int = 300,
        cache_size: int = 100_000,
    ):
        self.max_differing = max_differing
        self.max_chars = max_chars
        self.max_tokens = max_tokens
        self.max_templates = max_templates
        self.example_chars = example_chars
        self.cache_size = cache_size
        self.templates: dict[int, Template] = {}
        self._by_length: dict[int, list[Template]] = {}
        self._next_id = 1
        self._masker = Masker(cache_size)
        self._exact: dict[tuple, Template] = {}
        self.lines = 0
        self.damaged_lines = 0
        self.truncated_tokens = 0
        self.empty_lines = 0
        self.overflow_lines = 0  # lines that found no template once the template cap was reached

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
        tokens = mined.split()
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
        if tpl is None:
            tpl = self._match(masked)
            if tpl is None:
                tpl = self._create(masked, timestamp, text)
                is_new = True
            if len(self._exact) >= self.cache_size:
                self._exact.clear()
            self._exact[key] = tpl
        tpl.count += 1
        return MineResult(tpl, is_new, damaged, text)

    def _match(self, tokens: list[str]) -> Template | None:
        n = len(tokens)
        best = None
        best_diff = n + 1
        limit = self.max_differing * n
        for tpl in self._by_length.get(n, ()):
            diff = 0
            for a, b in zip(tpl.tokens, tokens):
                if a != b and a != WILDCARD:
                    diff += 1
                    if diff > limit or diff >= best_diff:
                        break
            else:
                if diff < best_diff:
                    best, best_diff = tpl, diff
                    if diff == 0:
                        break
        if best is None:
            return None
        if best_diff:
            best.tokens = [a if a == b else WILDCARD for a, b in zip(best.tokens, tokens)]
        return best

    def _create(self, tokens: list[str], timestamp: float, text: str) -> Template:
        if len(self.templates) >= self.max_templates:
            # Past the cap, unmatched lines share one overflow template per length, so memory
            # stays bounded whatever the input.
            self.overflow_lines += 1
            tokens = [WILDCARD] * len(tokens)
            for tpl in self._by_length.get(len(tokens), ()):
                if tpl.tokens == tokens:
                    return tpl
        tpl = Template(self._next_id, list(tokens), timestamp, text[: self.example_chars])
        self._next_id += 1
        self.templates[tpl.id] = tpl
        self._by_length.setdefault(len(tokens), []).append(tpl)
        return tpl

    # -- inspection and persistence ------------------------------------------------------------

    def get(self, tid: int) -> Template | None:
        return self.templates.get(tid)

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
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._masker = Masker(self.cache_size)
