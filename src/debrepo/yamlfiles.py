"""YAML as the configuration files need it: safe, and a key written twice is an error
(plain YAML keeps the last value without a word, so a second `section:` would quietly
win over the first)."""

from __future__ import annotations

from functools import cache
from typing import Any


@cache
def strict_loader() -> Any:
    """yaml.SafeLoader refusing duplicate keys (yaml imported only when needed)."""
    import yaml

    class StrictLoader(yaml.SafeLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            seen: set[Any] = set()
            for key_node, _value in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=deep)
                try:
                    hash(key)
                except TypeError:  # a list as a key: SafeLoader's own error names it
                    continue
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"the key {key!r} is written twice", key_node.start_mark
                    )
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    return StrictLoader
