"""The scenarios: which requests each one sends, in what proportions, to which candidates."""

from __future__ import annotations

from dataclasses import dataclass

# Request kinds; each maps to one URL template of the API (see ``luagen``).
LIVE, EXAM, FORM, SAVE, NAIVE = "live", "exam", "form", "save", "naive"
WRITES = frozenset({SAVE, NAIVE})


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    mix: tuple[tuple[str, int], ...]  # (request kind, weight)
    zipf: bool = False  # hot candidates (Zipf-skewed) instead of a uniform spread
    about: str = ""

    @property
    def kinds(self) -> frozenset[str]:
        return frozenset(kind for kind, _ in self.mix)

    @property
    def needs_tokens(self) -> bool:
        return self.kinds != {LIVE}

    @property
    def needs_saved_forms(self) -> bool:
        """Reading a never-saved form is a 404, which wrk counts as an error."""
        return FORM in self.kinds

    @property
    def publishes(self) -> bool:
        """Whether it feeds the broker (and so the consumers must catch up afterwards)."""
        return SAVE in self.kinds


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("ceiling", ((LIVE, 1),), about="GET /health/live: the framework's ceiling"),
        Scenario("exam", ((EXAM, 1),), about="GET exam results (cache, Redis, MySQL)"),
        Scenario("form", ((FORM, 1),), about="GET a saved form (Redis)"),
        Scenario("save", ((SAVE, 1),), about="PUT a form: Redis, broker confirm, Redis"),
        # Filing days are read-heavy: candidates look at results and their form far more
        # often than they change it, and a few candidates are much busier than the rest.
        Scenario(
            "mixed",
            ((EXAM, 4), (FORM, 4), (SAVE, 2)),
            zipf=True,
            about="40% exam, 40% form, 20% save; Zipf-skewed hot candidates",
        ),
        Scenario("naive", ((NAIVE, 1),), about="PUT a form written synchronously to MySQL"),
    )
}
DEFAULT_ORDER = ("ceiling", "exam", "form", "save", "mixed", "naive")


def parse_names(text: str) -> list[Scenario]:
    """``ceiling,save`` (or ``all``) to scenarios, in the order given."""
    names = list(DEFAULT_ORDER) if text.strip() == "all" else [n.strip() for n in text.split(",")]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown or not names:
        raise ValueError(
            f"unknown scenario(s) {', '.join(unknown) or '(none)'}; "
            f"choose from {', '.join(DEFAULT_ORDER)} or 'all'"
        )
    return [SCENARIOS[n] for n in dict.fromkeys(names)]
