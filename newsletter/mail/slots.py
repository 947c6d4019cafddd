"""Per-recipient slots in a once-rendered template.

A template marks per-recipient values with slot('name'). Rendering puts a
random, alphanumeric sentinel there (it survives Jinja escaping and MJML
compilation untouched, and no stored content can guess it); `split` then cuts
the output into static chunks and slot names. Filling a recipient's copy is
string joining only: no template render, no MJML compile.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from markupsafe import Markup


class SlotMarker:
    """Callable handed to templates as `slot`; remembers the names it was asked for."""

    def __init__(self) -> None:
        self.nonce = secrets.token_hex(8)
        self.names: list[str] = []
        self.pattern = re.compile(rf"wvslot{self.nonce}n(\d+)x")

    def __call__(self, name: str) -> Markup:
        if name not in self.names:
            self.names.append(name)
        return Markup(f"wvslot{self.nonce}n{self.names.index(name)}x")

    def split(self, rendered: str) -> "Slotted":
        parts = self.pattern.split(rendered)
        statics = parts[0::2]
        slots = [self.names[int(index)] for index in parts[1::2]]
        return Slotted(statics, slots)


@dataclass(frozen=True)
class Slotted:
    """statics[0] slot[0] statics[1] slot[1] … statics[-1]."""

    statics: list[str]
    slots: list[str]

    def fill(self, values: Mapping[str, str], escape: Callable[[str], str] = str) -> str:
        out = [self.statics[0]]
        for name, static in zip(self.slots, self.statics[1:]):
            out.append(escape(values[name]))
            out.append(static)
        return "".join(out)

    @property
    def names(self) -> set[str]:
        return set(self.slots)
