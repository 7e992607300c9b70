"""Every generation, fork, regeneration and continuation of one prompt, kept as a tree of token runs.

The tree is a trie over the generated tokens: a node holds a run of steps, its children the
different ways the text went on from there. Adding a session's steps walks the trie and makes
a node only where the text takes a new turn, so the same text is never stored twice. A branch
is the path from the root to a leaf; its log-probability is the sum of its steps' log p.

The last additions can be undone and redone; the tree saves to and loads from JSON (a session
file a speaker prepares before a talk). Nothing here is pickled.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from llmtui.engine.settings import SamplingSettings

if TYPE_CHECKING:  # generation imports torch; the app's shell must draw before torch loads
    from llmtui.engine.generation import Step

SESSION_FORMAT = "llmtui-branches"
SESSION_VERSION = 1
ROOT = 0


@dataclass
class Node:
    id: int
    parent: int | None  # None for the root (the prompt)
    steps: list[Step]  # the tokens this node adds after its parent's
    name: str = ""
    children: list[int] = field(default_factory=list)
    ends: bool = False  # a generation ended here (a split leaves a node that only joins others)


@dataclass(frozen=True)
class Branch:
    """A path from the prompt to a node, as a tree view lists it."""

    node: int
    name: str
    steps: tuple[Step, ...]
    text: str
    logprob: float  # sum of log p of its tokens under the model (raw): how likely the model found this text
    # (nan where a served model's text was taken unscored: its probability is unknown, not zero)
    sampled_logprob: float | None  # the same under the knobs it was drawn with (-inf where a fork took a cut token;
    # None where a served model's list leaves a probability after the knobs undecided)

    @property
    def length(self) -> int:
        return len(self.steps)

    @property
    def logprob_per_token(self) -> float:
        return self.logprob / self.length if self.steps else 0.0

    @property
    def token_ids(self) -> list[int]:
        return [s.token_id for s in self.steps]


def _known(value: float) -> float | None:
    """A number for JSON: None where it is unknown (nan is not JSON)."""
    return None if math.isnan(value) else value


def _log(p: float) -> float:
    return math.log(p) if p > 0 else -math.inf


class BranchTree:
    """The branches grown from one prompt. `decode` turns token ids into text (the model's tokenizer)."""

    def __init__(self, prompt_ids: Sequence[int], decode: Callable[[list[int]], str], *, model: str = "") -> None:
        self.prompt_ids = list(prompt_ids)
        self.decode = decode
        self.model = model
        self.nodes: dict[int, Node] = {ROOT: Node(ROOT, None, [], "prompt")}
        self.current = ROOT  # the node the user is on
        self._next_id = 1
        self._undo: list[tuple[int, int]] = []  # (node added, the node current before)
        self._redo: list[tuple[int, list[Node], int]] = []  # (node removed by undo, it and what grew on it, current then)

    # --- growing -------------------------------------------------------------------

    def add(self, steps: Sequence[Step]) -> int:
        """Record a generation's steps (all of them, from the first token); return the node where they end.

        Shared beginnings are shared nodes; a node is split where the new text leaves it."""
        node, i = self.nodes[ROOT], 0
        created: int | None = None
        while i < len(steps):
            child = next((self.nodes[c] for c in node.children if self.same_token(self.nodes[c].steps[0], steps[i])), None)
            if child is None:
                created = self._new(node, list(steps[i:]))
                node, i = self.nodes[created], len(steps)
                break
            j = 0
            while j < len(child.steps) and i + j < len(steps) and self.same_token(child.steps[j], steps[i + j]):
                j += 1
            if j < len(child.steps):
                child = self._split(child, j)
            node, i = child, i + j
        if created is not None:
            self._undo.append((created, self.current))
            self._redo.clear()
        node.ends = node.id != ROOT
        self.current = node.id
        return node.id

    def same_token(self, a: Step, b: Step) -> bool:
        """Whether two steps took the same token (and so share a node)."""
        return a.token_id == b.token_id

    def text_of(self, steps: Sequence[Step]) -> str:
        """A branch's text: its tokens decoded together (a character may span two byte tokens)."""
        return self.decode([s.token_id for s in steps])

    @property
    def prompt_text(self) -> str:
        return self.decode(self.prompt_ids)

    def _new(self, parent: Node, steps: list[Step], name: str = "") -> int:
        node = Node(self._next_id, parent.id, steps, name)
        self._next_id += 1
        self.nodes[node.id] = node
        parent.children.append(node.id)
        return node.id

    def _split(self, node: Node, at: int) -> Node:
        """Cut a node's run at `at`: a new node holds the first part, the old one (and its id) the rest."""
        parent = self.nodes[node.parent]  # type: ignore[index]  # never the root: the root has no steps
        head = Node(self._next_id, parent.id, node.steps[:at], "", [node.id])
        self._next_id += 1
        self.nodes[head.id] = head
        parent.children[parent.children.index(node.id)] = head.id
        node.parent, node.steps = head.id, node.steps[at:]
        return head

    # --- reading -------------------------------------------------------------------

    def path(self, node_id: int) -> list[Node]:
        node, out = self._node(node_id), []
        while node.parent is not None:
            out.append(node)
            node = self.nodes[node.parent]
        return out[::-1]

    def steps(self, node_id: int) -> list[Step]:
        """Every step from the first generated token to the end of this node: what reopening it restores."""
        return [s for n in self.path(node_id) for s in n.steps]

    def branch(self, node_id: int) -> Branch:
        steps = tuple(self.steps(node_id))
        return Branch(node_id, self._node(node_id).name, steps, self.text_of(steps),
                      math.nan if any(math.isnan(s.raw_prob) for s in steps) else sum(_log(s.raw_prob) for s in steps),
                      None if any(s.prob is None for s in steps) else sum(_log(s.prob) for s in steps))

    def leaves(self) -> list[int]:
        """The branches' ends, in the order they were made."""
        return sorted(n.id for n in self.nodes.values() if not n.children and n.id != ROOT)

    def branches(self) -> list[Branch]:
        return [self.branch(n) for n in self.leaves()]

    def _node(self, node_id: int) -> Node:
        if node_id not in self.nodes:
            raise KeyError(f"no branch {node_id}")
        return self.nodes[node_id]

    # --- editing -------------------------------------------------------------------

    def rename(self, node_id: int, name: str) -> None:
        self._node(node_id).name = name

    def delete(self, node_id: int) -> None:
        """Remove a node and everything grown from it; the user moves to where it hung if they were inside it."""
        if node_id == ROOT:
            raise ValueError("the prompt is the root of every branch: it can't be deleted")
        removed, hung_from = self._detach(self._node(node_id))
        gone = {n.id for n in removed}
        if self.current in gone:
            self.current = hung_from
        self._undo = [(n, c if c not in gone else ROOT) for n, c in self._undo if n not in gone]
        self._redo.clear()

    def _detach(self, node: Node) -> tuple[list[Node], int]:
        """Take a node and what grew on it out of the tree, with the joins above it that then lead nowhere
        (nodes no generation ended at, left without children). Returns them parents first, so they can be
        put back in order, and the node they hung from."""
        removed = [self.nodes.pop(i) for i in self._subtree(node.id)]
        parent = self.nodes[node.parent]  # type: ignore[index]
        parent.children.remove(node.id)
        while parent.id != ROOT and not parent.children and not parent.ends:
            removed.insert(0, self.nodes.pop(parent.id))
            parent = self.nodes[parent.parent]  # type: ignore[index]
            parent.children.remove(removed[0].id)
        return removed, parent.id

    def _subtree(self, node_id: int) -> list[int]:
        """The node and everything grown from it, parents before children."""
        out = [node_id]
        for i in out:
            out += self.nodes[i].children
        return out

    def reopen(self, node_id: int) -> list[Step]:
        """Make a branch the current one; its steps, to continue or fork it."""
        self.current = self._node(node_id).id
        return self.steps(node_id)

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    def undo(self) -> int:
        """Take back the last new branch (fork, regeneration or continuation); return the node now current."""
        if not self._undo:
            raise ValueError("nothing to undo")
        node_id, before = self._undo.pop()
        removed, _ = self._detach(self.nodes[node_id])  # what grew on it goes too, and comes back with redo
        self._redo.append((node_id, removed, self.current))
        self.current = before if before in self.nodes else ROOT
        return self.current

    def redo(self) -> int:
        if not self._redo:
            raise ValueError("nothing to redo")
        node_id, removed, current = self._redo.pop()
        for node in removed:  # top first: each one's parent is back before it
            self.nodes[node.id] = node
            if node.id not in self.nodes[node.parent].children:  # type: ignore[index]
                self.nodes[node.parent].children.append(node.id)  # type: ignore[index]
        self._undo.append((node_id, self.current))
        self.current = current if current in self.nodes else node_id
        return self.current

    # --- saving ----------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        def step(s: Step) -> dict[str, Any]:
            return {**s.to_json(), "settings": s.settings.to_json()}

        return {
            "format": SESSION_FORMAT,
            "version": SESSION_VERSION,
            "model": self.model,
            "prompt_ids": self.prompt_ids,
            "prompt": self.prompt_text,
            "current": self.current,
            "nodes": [{"id": n.id, "parent": n.parent, "name": n.name, "children": n.children, "ends": n.ends,
                       "steps": [step(s) for s in n.steps]} for n in self.nodes.values()],
            "branches": [{"node": b.node, "name": b.name, "text": b.text, "length": b.length,
                          "logprob": _known(b.logprob), "logprob_per_token": _known(b.logprob_per_token)}
                         for b in self.branches()],
        }

    @classmethod
    def from_json(cls, data: Any, decode: Callable[[list[int]], str]) -> BranchTree:
        """A tree from `to_json`; ValueError with one line when the data is not a session of ours."""
        try:
            if data.get("format") != SESSION_FORMAT:
                raise ValueError("not an llmtui branches session")
            if data.get("version") != SESSION_VERSION:
                raise ValueError(f"session version {data.get('version')!r}; this llmtui reads {SESSION_VERSION}")
            tree = cls._empty_from_json(data, decode)
            raw_nodes = list(data["nodes"])
            if not raw_nodes or int(raw_nodes[0]["id"]) != ROOT or raw_nodes[0]["parent"] is not None:
                raise ValueError("the session's first node must be the prompt")
            tree.nodes[ROOT].name = str(raw_nodes[0].get("name", "prompt"))
            for raw in raw_nodes[1:]:
                steps = [_step_from_json(s) for s in raw["steps"]]
                if not steps:
                    raise ValueError(f"node {raw['id']} holds no tokens")
                node = Node(int(raw["id"]), int(raw["parent"]), steps, str(raw.get("name", "")), ends=bool(raw["ends"]))
                if node.id in tree.nodes:
                    raise ValueError(f"node {node.id} appears twice")
                tree.nodes[node.id] = node
            for raw in raw_nodes:
                children = [int(c) for c in raw["children"]]
                node = tree.nodes[int(raw["id"])]
                if any(c not in tree.nodes or tree.nodes[c].parent != node.id for c in children):
                    raise ValueError(f"node {node.id}'s children do not hang from it")
                node.children = children
            if len(tree._subtree(ROOT)) != len(tree.nodes):
                raise ValueError("some nodes hang from nothing: the session is damaged")
            tree._next_id = max(tree.nodes) + 1
            current = int(data.get("current", ROOT))
            tree.current = current if current in tree.nodes else ROOT
            return tree
        except (KeyError, TypeError, AttributeError) as err:
            raise ValueError(f"the session file is incomplete or damaged ({type(err).__name__}: {err})") from None

    @classmethod
    def _empty_from_json(cls, data: Any, decode: Callable[[list[int]], str]) -> BranchTree:
        """The tree a session's nodes are put in: its prompt and model, no branches yet."""
        if data.get("served"):
            raise ValueError("that session was made on a served model: open it with --endpoint")
        return cls([int(i) for i in data["prompt_ids"]], decode, model=str(data.get("model", "")))

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, path: Path, decode: Callable[[list[int]], str]) -> BranchTree:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"can't read the session {Path(path).name}: {err}") from None
        return cls.from_json(data, decode)


def _step_from_json(s: dict[str, Any]) -> Step:
    """A step as to_json wrote it. A served model's steps may lack ids (the server sent texts only: stand-ins,
    one per text, as session.py makes them) and probabilities after the knobs (undecided: None)."""
    from llmtui.engine.generation import Candidate, Step

    stand_ins: dict[str, int] = {}

    def token_id(value: Any, text: str) -> int:
        return int(value) if value is not None else stand_ins.setdefault(text, -1 - len(stand_ins))

    def prob(value: Any) -> float | None:
        return None if value is None else float(value)

    candidates = tuple(Candidate(token_id(c["id"], str(c["text"])), str(c["text"]), float(c["raw_prob"]), prob(c["prob"]),
                                 c["cut_by"] if isinstance(c["cut_by"], str) else None) for c in s["candidates"])
    text = str(s["token"]["text"])
    return Step(
        index=int(s["index"]),
        position=int(s["position"]),
        token_id=token_id(s["token"]["id"], text),
        text=text,
        raw_prob=math.nan if s["raw_prob"] is None else float(s["raw_prob"]),  # None: a typed text a server didn't score
        prob=prob(s["prob"]),
        candidates=candidates,
        settings=SamplingSettings.from_json(s["settings"]),
        forced=bool(s["forced"]),
        unlisted=prob(s.get("unlisted")),
    )
