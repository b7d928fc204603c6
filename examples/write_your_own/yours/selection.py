from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class LeastTried:
    """The clients tried least often so far, lowest ids first; ``skip`` are never chosen."""

    skip: tuple[int, ...] = ()

    def build(self) -> "LeastTriedSelector":
        return LeastTriedSelector(self.skip)


class LeastTriedSelector:
    def __init__(self, skip: tuple[int, ...]):
        self.skip = list(skip)

    def select(self, count, view, draw):
        tries = {c: view.records[c].tries if c in view.records else 0
                 for c in view.candidates() if c not in self.skip}
        return sorted(tries, key=lambda c: (tries[c], c))[:count]
