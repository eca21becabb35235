"""Look-alike lift, measured through segmentation's API on the two synthetic bases.

    python -m benchmarks.lookalike.measure --customers 20000

For each base: its customers are announced to segmentation (ApplyProfileChanges), a seed
segment is defined (the visible four fifths of the planted seed), and a look-alike of it
over the base is created with size = a tenth of the non-seed customers: its members are the
top decile of the ranking. Lift = (hidden seed members in the top decile / hidden members) /
(top decile / non-seed customers): 1.0 is what a random ranking gets, printed beside it (a
random tenth of the same customers, drawn with a fixed seed). Figures go to
benchmarks/results/lookalike.json.
"""

from __future__ import annotations

import argparse
import json
import random
import secrets
import time
from pathlib import Path

from benchmarks.lookalike.bases import BASES
from svod.segmentation.v1 import segmentation_pb2 as pb
from svod_runtime.retries import retry_options

RESULTS = Path(__file__).resolve().parents[1] / "results" / "lookalike.json"
BATCH = 500
T = 120.0


def _field(name: str, value: str) -> pb.RuleNode:
    return pb.RuleNode(field=pb.FieldCondition(field=name, operator="eq", values=[value]))


def _members(stub, segment_id: str) -> set[str]:
    out: set[str] = set()
    token = ""
    while True:
        page = stub.ListMembers(
            pb.ListMembersRequest(segment_id=segment_id, page_size=1000, page_token=token),
            timeout=T,
        )
        out.update(m.customer_id for m in page.members)
        token = page.next_page_token
        if not token:
            return out


def measure(stub, base: str, customers: int, seed: int) -> dict[str, object]:
    """Loads a base into segmentation and measures its look-alike's lift."""
    tag = f"lal-{base}-{secrets.token_hex(3)}"
    people = BASES[base](customers, seed)
    started = time.perf_counter()
    requests = [p.request(tag) for p in people]
    for start in range(0, len(requests), BATCH):
        reply = stub.ApplyProfileChanges(
            pb.ApplyProfileChangesRequest(changes=requests[start : start + BATCH]), timeout=T
        )
        failed = [r for r in reply.results if r.HasField("error") and r.error.code]
        assert not failed, failed[0].error.message
    loaded_s = time.perf_counter() - started
    population = stub.CreateSegment(
        pb.CreateSegmentRequest(
            segment=pb.Segment(segment_id=f"{tag}-base", rule=_field("attributes.lal_base", tag))
        ),
        timeout=T,
    )
    seed_segment = stub.CreateSegment(
        pb.CreateSegmentRequest(
            segment=pb.Segment(
                segment_id=f"{tag}-seed",
                rule=pb.RuleNode(
                    all=pb.RuleGroup(
                        nodes=[
                            _field("attributes.lal_base", tag),
                            _field("attributes.lal_seed", "yes"),
                        ]
                    )
                ),
            )
        ),
        timeout=T,
    )
    visible = {p.customer_id for p in people if p.in_seed and not p.hidden}
    hidden = {p.customer_id for p in people if p.hidden}
    candidates = [p.customer_id for p in people if p.customer_id not in visible]
    size = len(candidates) // 10
    started = time.perf_counter()
    lookalike = stub.CreateSegment(
        pb.CreateSegmentRequest(
            segment=pb.Segment(
                segment_id=f"{tag}-like",
                builtin="lookalike",
                builtin_parameters={
                    "seed": seed_segment.segment_id,
                    "population": population.segment_id,
                    "size": str(size),
                },
            )
        ),
        timeout=T,
    )
    create_s = time.perf_counter() - started
    chosen = _members(stub, lookalike.segment_id)
    state = json.loads(lookalike.builtin_state)
    share = size / len(candidates)
    random_top = set(random.Random(seed).sample(candidates, size))
    return {
        "base": base,
        "customers": customers,
        "seed_visible": len(visible),
        "seed_hidden": len(hidden),
        "top_decile": size,
        "chosen": len(chosen),
        "hidden_found": len(chosen & hidden),
        "lift": round(len(chosen & hidden) / len(hidden) / share, 2),
        "random_lift": round(len(random_top & hidden) / len(hidden) / share, 2),
        "seed_in_lookalike": len(chosen & visible),
        "load_seconds": round(loaded_s, 2),
        "create_seconds": round(create_s, 2),
        "training_seconds": state.get("training_seconds"),
        "drivers": [d["feature"] for d in state.get("drivers", [])[:5]],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.lookalike.measure")
    parser.add_argument("--customers", type=int, default=20000, help="per base")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    import grpc

    from benchmarks.harness import scratch_database
    from svod.segmentation.v1 import segmentation_pb2_grpc
    from svod_cli.suite import InProcessSuite

    with scratch_database("svod_bench_lookalike") as db_url:
        suite = InProcessSuite(
            db_url, services=("segmentation",), extra_env={"SVOD_LOG_LEVEL": "WARNING"}
        ).start()
        try:
            with grpc.insecure_channel(
                suite.target("segmentation"), options=retry_options()
            ) as channel:
                stub = segmentation_pb2_grpc.SegmentationServiceStub(channel)
                results = [measure(stub, base, args.customers, args.seed) for base in BASES]
        finally:
            suite.stop()
    for r in results:
        print(
            f"{r['base']:>9}: {r['customers']} customers, seed {r['seed_visible']} visible + "
            f"{r['seed_hidden']} hidden; top decile {r['top_decile']} holds "
            f"{r['hidden_found']} hidden: lift {r['lift']}x (random ranking "
            f"{r['random_lift']}x); training {r['training_seconds']} s, create "
            f"{r['create_seconds']} s; drivers {', '.join(r['drivers'])}"
        )
    RESULTS.write_text(json.dumps({"runs": results}, ensure_ascii=False, indent=2) + "\n")
    return 0 if all(r["lift"] >= 3.0 for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
