"""Where a Milvus Lite search spends its time, on the Reuters collection bench/engines.py wrote.

    .venv/bin/python bench/engines.py                 # once: writes the Reuters corpus and its Milvus twin
    .venv/bin/python bench/milvus_lite_profile.py     # prints only; about a minute

Two measurements on the FLAT twin (41,091 passages):
1. Headlines through Assistant.search (k=5), with the time of each engine call the search makes: how many
   Milvus calls a question costs and what each costs.
2. The dense channel's search run on Milvus Lite's own Collection object, in this process (no gRPC), under
   cProfile: which of Milvus Lite's functions take the time.
Milvus Lite serves the collection from a thread of this process, so both see the same data.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import statistics
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import rag


def timed_calls(target: object, names: list[str], spent: defaultdict, calls: Counter) -> None:
    """Wrap target's methods so that each call adds its seconds to spent[name]."""
    for name in names:
        method = getattr(target, name)

        def wrapper(*args, _method=method, _name=name, **kwargs):
            started = time.perf_counter()
            try:
                return _method(*args, **kwargs)
            finally:
                spent[_name] += time.perf_counter() - started
                calls[_name] += 1

        setattr(target, name, wrapper)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/rag-bench-engines"), help="bench/engines.py --work")
    parser.add_argument("--questions", type=int, default=50)
    args = parser.parse_args()
    reuters = args.work / "reuters"
    if not (reuters / "milvus-flat").is_dir():
        print(f"No Milvus twin in {reuters}: run `.venv/bin/python bench/engines.py --work {args.work}` first.")
        return 1
    index = {"path": str(reuters / "milvus-flat"), "engine": "milvus"}
    config = rag.load_config({"corpus": {"path": str(reuters / "corpus")}, "index": index})
    assistant = rag.Assistant(config)
    engine = assistant.index().engine
    files = sorted((reuters / "corpus").glob("*.txt"))
    sample = random.Random(0).sample(files, args.questions)
    headlines = [f.read_text(encoding="utf-8").split("\n", 1)[0] for f in sample]

    spent: defaultdict = defaultdict(float)
    calls: Counter = Counter()
    timed_calls(engine, ["dense_search", "lexical_search", "lexical_scores_at", "vectors_at"], spent, calls)
    timed_calls(engine._client, ["search", "get"], spent, calls)
    timed_calls(assistant.embedder, ["encode_queries"], spent, calls)
    totals = []
    warm_up = 3
    for i, headline in enumerate(headlines):
        if i == warm_up:
            spent.clear()
            calls.clear()
        started = time.perf_counter()
        assistant.search(headline, k=5)
        if i >= warm_up:
            totals.append(time.perf_counter() - started)
    n = len(totals)
    print(f"Assistant.search over {n} Reuters headlines: p50 {1000 * statistics.median(totals):.1f} ms")
    print("per question: mean ms, calls (engine methods include the Milvus calls they make)")
    for name, seconds in sorted(spent.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<18} {1000 * seconds / n:7.1f} ms  {calls[name] / n:5.1f} calls")

    from milvus_lite.server_manager import server_manager_instance  # only this bench reaches into Milvus Lite

    (_, lite, _), *_ = server_manager_instance._servers.values()
    collection = lite.get_collection(engine.collection)
    vectors = assistant.embedder.encode_queries(headlines)
    profile = cProfile.Profile()
    each = []
    profiled = vectors[:20]
    for vector in profiled:
        started = time.perf_counter()
        profile.enable()
        collection.search([vector.tolist()], top_k=40, anns_field="dense", output_fields=["row"], expr='lang in ["en"]')
        profile.disable()
        each.append(time.perf_counter() - started)
    p50 = 1000 * statistics.median(each)
    print(f"\nMilvus Lite Collection.search, dense, in process, {len(profiled)} calls: p50 {p50:.1f} ms")
    stats = pstats.Stats(profile)
    rows = [
        (cumulative / len(profiled), f"{Path(file).parent.name}/{Path(file).name}:{function}")
        for (file, _, function), (_, _, _, cumulative, _) in stats.stats.items()
        if "milvus_lite" in file
    ]
    for seconds, where in sorted(rows, reverse=True)[:8]:
        print(f"  {1000 * seconds:7.1f} ms  {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
