"""The package's shape: every module imports only downward (no cycle, counting imports
inside functions too), and importing a module registers nothing as a side effect."""

import ast

import torch

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


def test_item_table_key_switches_the_preset_table_and_survives_a_checkpoint(ml1m_slice, fast_settings):
    """``--model=SASRecJPQ --item_table=dense`` builds DenseSASRec's network, seeded alike, and a
    served checkpoint of it rebuilds the dense table (the key is read back from its config)."""
    import recbole_pq
    from recbole_pq.items.dense import DenseItemEmbedding
    from recbole_pq.pipeline import setup
    from recbole_pq.serving.recommender import Recommender

    settings = {**fast_settings, "data_path": str(ml1m_slice)}
    _, _, switched, _ = setup("SASRecJPQ", "ml-1m", config_dict={**settings, "item_table": "dense"})
    _, _, dense, _ = setup("DenseSASRec", "ml-1m", config_dict=settings)
    assert isinstance(switched.items, DenseItemEmbedding) and switched.scorer.name == "default"
    assert switched.state_dict().keys() == dense.state_dict().keys()
    assert all(torch.equal(a, b) for a, b in zip(switched.state_dict().values(), dense.state_dict().values()))

    result = recbole_pq.run("SASRecJPQ", "ml-1m", config_dict={**settings, "item_table": "dense"})
    served = Recommender.load(result["saved_model_file"])
    assert isinstance(served.model.items, DenseItemEmbedding)
    _, _, codes, _ = setup("DenseSASRec", "ml-1m", config_dict={**settings, "item_table": "codes"})
    assert codes.items.compressed and codes.scorer.name == "pqtopk"
