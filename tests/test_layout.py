"""The package's shape: every module imports only downward (no cycle, counting imports
inside functions too), and importing a module registers nothing as a side effect."""

import ast

from recbole_pq.data.paths import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "recbole_pq"


def import_graph() -> dict[str, set[str]]:
    """module -> the package's modules it imports anywhere in its file."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PROJECT_ROOT).with_suffix("").parts)
        modules[name.removesuffix(".__init__")] = path
    graph = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            # a package's __init__ importing its own modules (and a module its parent package) is structure
            graph[name] |= {t for t in targets if t in modules and t != name
                            and not name.startswith(t + ".") and not t.startswith(name + ".")}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, " -> ".join(cycle)


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_plugin_models_are_an_explicit_mapping():
    from recbole_pq.models import PLUGIN_MODELS

    assert sorted(PLUGIN_MODELS) == ["DenseSASRec", "SASRecJPQ", "SASRecLISA", "gBERT4Rec", "gBERT4RecJPQ"]
    assert all(cls.__name__ == name for name, cls in PLUGIN_MODELS.items())


def test_presets_are_siblings_not_subclasses_of_each_other():
    """A compressed preset is not an instance of its dense twin (they share a network class)."""
    from recbole_pq.models import DenseSASRec, SASRecJPQ, gBERT4Rec, gBERT4RecJPQ

    for dense, codes in ((DenseSASRec, SASRecJPQ), (gBERT4Rec, gBERT4RecJPQ)):
        assert not issubclass(codes, dense) and not issubclass(dense, codes)
        assert dense.__mro__[1] is codes.__mro__[1]  # the one network class
        assert (dense.item_table, codes.item_table) == ("dense", "codes")
        assert dense.compressed_twin == codes.__name__
