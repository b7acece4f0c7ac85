"""Persistent containers for the run state: a change makes a new version that shares all
but one short path with the old one, so a change costs the same however big the state is,
and every earlier version stays as it was (the interpreter never changes its input).

"Persistent" in the functional sense; this module has nothing to do with the disk.

- `StepMap`: a mapping (a hash trie of 32-way nodes) that remembers insertion order like
  a dict, and can tell which entries changed since an earlier version of itself.
- `Slots`: a list of fixed length (a 32-way trie) whose items are set one at a time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Generic, TypeVar, overload

K = TypeVar("K")
V = TypeVar("V")
T = TypeVar("T")

_BITS = 5
_WIDTH = 1 << _BITS
_MASK = _WIDTH - 1
_HASH_BITS = 64

Node = dict[int, Any]  # slot -> _Entry | Node | tuple of _Entry (keys whose hashes collide)


class _Entry:
    """One key and its value; `order` numbers insertions, so iteration follows it."""

    __slots__ = ("hash", "key", "order", "value")

    def __init__(self, key: Any, hashed: int, value: Any, order: int) -> None:
        self.key, self.hash, self.value, self.order = key, hashed, value, order


class StepMap(Mapping[K, V]):
    """An immutable mapping whose `set` and `remove` return a new version in O(log n)."""

    __slots__ = ("_next", "_root", "_size")

    def __init__(self, items: Iterable[tuple[K, V]] = ()) -> None:
        self._root: Node = {}
        self._size = 0
        self._next = 0
        for key, value in items:
            self._root, added, self._next = _put(self._root, key, value, self._next)
            self._size += added

    @classmethod
    def _made(cls, root: Node, size: int, order: int) -> StepMap[K, V]:
        made: StepMap[K, V] = cls.__new__(cls)
        made._root, made._size, made._next = root, size, order
        return made

    def set(self, key: K, value: V) -> StepMap[K, V]:
        root, added, order = _put(self._root, key, value, self._next)
        return self._made(root, self._size + added, order)

    def remove(self, key: K) -> StepMap[K, V]:
        """This map without `key` (itself when the key is absent)."""
        if key not in self:
            return self
        return self._made(_drop(self._root, key, _hash(key), 0), self._size - 1, self._next)

    def __getitem__(self, key: K) -> V:
        entry = _find(self._root, key)
        if entry is None:
            raise KeyError(key)
        value: V = entry.value
        return value

    def get(self, key: K, default: Any = None) -> Any:
        entry = _find(self._root, key)
        return default if entry is None else entry.value

    def __contains__(self, key: object) -> bool:
        return _find(self._root, key) is not None

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[K]:
        return (entry.key for entry in self._entries())

    def items(self) -> Any:
        return [(entry.key, entry.value) for entry in self._entries()]

    def values(self) -> Any:
        return [entry.value for entry in self._entries()]

    def _entries(self) -> list[_Entry]:
        found: list[_Entry] = []
        _collect(self._root, found)
        found.sort(key=lambda entry: entry.order)
        return found

    def changed_since(self, before: StepMap[K, V]) -> list[tuple[K, V]]:
        """Entries set since the version `before` (removed ones are not listed), in order;
        only the paths where the two versions differ are visited."""
        found: list[_Entry] = []
        _differing(self._root, before._root, found)
        changed = [entry for entry in found if _find(before._root, entry.key) is not entry]
        changed.sort(key=lambda entry: entry.order)
        return [(entry.key, entry.value) for entry in changed]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, StepMap) and other._root is self._root:
            return True
        if not isinstance(other, Mapping):
            return NotImplemented
        return len(self) == len(other) and all(
            key in other and other[key] == value for key, value in self.items()
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"StepMap({dict(self.items())!r})"


def _hash(key: Any) -> int:
    return hash(key) & ((1 << _HASH_BITS) - 1)


def _find(node: Node, key: Any) -> _Entry | None:
    hashed, shift = _hash(key), 0
    while True:
        child = node.get((hashed >> shift) & _MASK)
        if child is None or isinstance(child, _Entry):
            return child if child is not None and child.key == key else None
        if isinstance(child, tuple):
            return next((entry for entry in child if entry.key == key), None)
        node, shift = child, shift + _BITS


def _put(root: Node, key: Any, value: Any, order: int) -> tuple[Node, int, int]:
    """(the new root, 1 if the key is new else 0, the next insertion number)."""
    existing = _find(root, key)
    if existing is not None:
        entry = _Entry(key, existing.hash, value, existing.order)
        return _placed(root, entry, 0), 0, order
    return _placed(root, _Entry(key, _hash(key), value, order), 0), 1, order + 1


def _placed(node: Node, entry: _Entry, shift: int) -> Node:
    """A copy of `node` with `entry` in it (replacing the entry with the same key)."""
    slot = (entry.hash >> shift) & _MASK
    child = node.get(slot)
    copy = dict(node)
    if child is None or (isinstance(child, _Entry) and child.key == entry.key):
        copy[slot] = entry
    elif isinstance(child, dict):
        copy[slot] = _placed(child, entry, shift + _BITS)
    elif isinstance(child, tuple):
        copy[slot] = (*(old for old in child if old.key != entry.key), entry)
    elif child.hash == entry.hash or shift + _BITS >= _HASH_BITS:
        copy[slot] = (child, entry)
    else:
        copy[slot] = _placed({(child.hash >> (shift + _BITS)) & _MASK: child}, entry, shift + _BITS)
    return copy


def _drop(node: Node, key: Any, hashed: int, shift: int) -> Node:
    """A copy of `node` without `key` (which is in it)."""
    slot = (hashed >> shift) & _MASK
    child = node[slot]
    copy = dict(node)
    if isinstance(child, dict):
        inner = _drop(child, key, hashed, shift + _BITS)
        lone = next(iter(inner.values())) if len(inner) == 1 else None
        copy[slot] = lone if isinstance(lone, _Entry | tuple) else inner
    elif isinstance(child, tuple):
        rest = tuple(entry for entry in child if entry.key != key)
        copy[slot] = rest[0] if len(rest) == 1 else rest
    else:
        del copy[slot]
    return copy


def _collect(node: Node, found: list[_Entry]) -> None:
    for child in node.values():
        if isinstance(child, _Entry):
            found.append(child)
        elif isinstance(child, tuple):
            found.extend(child)
        else:
            _collect(child, found)


def _differing(node: Node, before: Any, found: list[_Entry]) -> None:
    """Entries under `node` that are not shared with `before` (possibly a few more)."""
    for slot, child in node.items():
        other = before.get(slot) if isinstance(before, dict) else None
        if child is other:
            continue
        if isinstance(child, dict):
            _differing(child, other, found)
        elif isinstance(child, tuple):
            found.extend(child)
        else:
            found.append(child)


# --- a list of fixed length ----------------------------------------------------------------


class Slots(Sequence[T], Generic[T]):
    """A list of fixed length whose items start as None; `set` returns a new version."""

    __slots__ = ("_depth", "_length", "_root")

    def __init__(self, length: int, items: Iterable[T] = ()) -> None:
        self._length = length
        self._depth = 0
        while _WIDTH ** (self._depth + 1) < length:
            self._depth += 1
        self._root: tuple[Any, ...] | None = None
        for index, item in enumerate(items):
            if item is not None:
                self._root = _slot_set(self._root, self._depth, index, item)

    def set(self, index: int, value: T) -> Slots[T]:
        if not 0 <= index < self._length:
            raise IndexError(index)
        made: Slots[T] = Slots.__new__(Slots)
        made._length, made._depth = self._length, self._depth
        made._root = _slot_set(self._root, self._depth, index, value)
        return made

    @overload
    def __getitem__(self, index: int) -> T: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[T]: ...

    def __getitem__(self, index: int | slice) -> T | Sequence[T]:
        if isinstance(index, slice):
            return self.to_list()[index]
        if not 0 <= index < self._length:
            raise IndexError(index)
        node, depth = self._root, self._depth
        while node is not None and depth > 0:
            node, depth = node[(index >> (_BITS * depth)) & _MASK], depth - 1
        value: T = None if node is None else node[index & _MASK]  # type: ignore[assignment]
        return value

    def __len__(self) -> int:
        return self._length

    def to_list(self) -> list[T]:
        items: list[T] = []
        _slot_items(self._root, self._depth, items, self._length)
        return items

    def __iter__(self) -> Iterator[T]:
        return iter(self.to_list())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Slots):
            return self._length == other._length and self.to_list() == other.to_list()
        if isinstance(other, list):
            return self.to_list() == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Slots({self.to_list()!r})"


def _slot_set(node: tuple[Any, ...] | None, depth: int, index: int, value: Any) -> tuple[Any, ...]:
    items = list(node) if node is not None else [None] * _WIDTH
    slot = (index >> (_BITS * depth)) & _MASK
    items[slot] = value if depth == 0 else _slot_set(items[slot], depth - 1, index, value)
    return tuple(items)


def _slot_items(node: tuple[Any, ...] | None, depth: int, items: list[Any], length: int) -> None:
    """Append the items under `node` to `items`, up to `length` items in all."""
    room = length - len(items)
    if node is None:
        items.extend([None] * min(room, _WIDTH ** (depth + 1)))
    elif depth == 0:
        items.extend(node[:room])
    else:
        for child in node:
            if len(items) >= length:
                return
            _slot_items(child, depth - 1, items, length)
