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
        def compose_mapping_node(self, anchor: Any) -> Any:
            # Checked as written, before any merge: merging a mapping rewrites its
            # entries in place, and it may be merged before it is itself constructed.
            node = super().compose_mapping_node(anchor)
            seen: set[Any] = set()
            for key_node, _value in node.value:
                # A list or a mapping as a key: SafeLoader's own error names it.
                if not isinstance(key_node, yaml.ScalarNode):
                    continue
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"the key {key!r} is written twice", key_node.start_mark
                    )
                seen.add(key)
            return node

        def flatten_mapping(self, node: Any) -> None:
            # SafeLoader keeps every entry a merge (`<<:`) brings in, repeated keys too, so
            # merging a merge ten times over, level upon level, multiplies them: a few
            # lines would take gigabytes and minutes. Only a key's last entry counts (the
            # mapping's own, then the first mapping merged): keep that one alone.
            super().flatten_mapping(node)
            last: dict[tuple[str, Any], int] = {}
            for index, (key_node, _value) in enumerate(node.value):
                if isinstance(key_node, yaml.ScalarNode):
                    last[(key_node.tag, key_node.value)] = index
            if len(last) < len(node.value):
                node.value = [
                    (key_node, value)
                    for index, (key_node, value) in enumerate(node.value)
                    if not isinstance(key_node, yaml.ScalarNode)
                    or last[(key_node.tag, key_node.value)] == index
                ]

    return StrictLoader
