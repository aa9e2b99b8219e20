"""Key templates: state-dict keys with ``{name}`` placeholders."""

from __future__ import annotations

import re
from collections.abc import Mapping

from recoverkit.errors import KeymapError

__all__ = ["KeyTemplate"]

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")

#: The pattern of one placeholder: one dotted segment of a key, such as a layer index.
SEGMENT_PATTERN = r"[^.]+"


class KeyTemplate:
    """A state-dict key in which each ``{name}`` stands for one dotted segment.

    ``encoder.layer.{n}.attention.self.query.{param}`` matches
    ``encoder.layer.0.attention.self.query.weight`` with ``n="0"`` and
    ``param="weight"``. A placeholder never spans a dot. A name used twice
    must match the same text both times. A template without placeholders
    matches only the identical key.

    Parameters
    ----------
    text : str
        The template.

    Example
    -------
    >>> template = KeyTemplate("layers.{n}.{param}")
    >>> template.match("layers.3.bias")
    {'n': '3', 'param': 'bias'}
    >>> KeyTemplate("blocks.{n}.linear.{param}").fill({"n": "3", "param": "bias"})
    'blocks.3.linear.bias'
    """

    def __init__(self, text: str) -> None:
        if not isinstance(text, str):
            raise KeymapError(f"A key template must be a string, got {type(text).__name__} {text!r}.")
        self.text = text
        self.names: tuple[str, ...] = tuple(dict.fromkeys(_PLACEHOLDER.findall(text)))
        self._regex = re.compile(self._to_regex(text))

    def __repr__(self) -> str:
        return f"KeyTemplate({self.text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, KeyTemplate) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)

    @staticmethod
    def _to_regex(text: str) -> str:
        parts = []
        seen: set[str] = set()
        position = 0
        for match in _PLACEHOLDER.finditer(text):
            parts.append(re.escape(text[position : match.start()]))
            name = match.group(1)
            if name in seen:
                parts.append(f"(?P={name})")
            else:
                parts.append(f"(?P<{name}>{SEGMENT_PATTERN})")
                seen.add(name)
            position = match.end()
        parts.append(re.escape(text[position:]))
        return "".join(parts)

    def match(self, key: str) -> dict[str, str] | None:
        """Return the placeholder values if ``key`` matches the whole template, else None."""
        found = self._regex.fullmatch(key)
        return None if found is None else found.groupdict()

    def fill(self, bindings: Mapping[str, str]) -> str:
        """Return the key with every placeholder replaced by its value in ``bindings``."""
        return _PLACEHOLDER.sub(lambda match: bindings[match.group(1)], self.text)

    def check_filled_by(self, source: KeyTemplate, where: str) -> None:
        """Raise if this template uses a placeholder that ``source`` does not bind."""
        unbound = [name for name in self.names if name not in source.names]
        if unbound:
            raise KeymapError(
                f"Invalid keymap {where}: target template {self.text!r} uses "
                f"placeholder(s) {unbound} that source template {source.text!r} does "
                "not define. Use only placeholders that appear in the source template."
            )
