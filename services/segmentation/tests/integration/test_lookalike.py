"""Look-alike audiences find hidden seed members: on two differently generated synthetic
bases, the top decile of the ranking holds at least 3x the hidden fifth of the seed that a
random ranking would (the full-scale measurement is benchmarks/lookalike/measure.py)."""

from __future__ import annotations

import grpc
import pytest

from benchmarks.lookalike.measure import measure
from services.segmentation.tests.helpers import T, create, seg_id, tagged
from svod.segmentation.v1 import segmentation_pb2 as pb

# Small enough to load and train in seconds, large enough for a stable decile.
CUSTOMERS = 1500


@pytest.mark.parametrize("base", ["personas", "latent"])
def test_lookalike_lift_in_the_top_decile(suite, base: str) -> None:
    result = measure(suite.segmentation, base, CUSTOMERS, seed=11)
    assert result["chosen"] == result["top_decile"]
    assert result["seed_in_lookalike"] == 0
    assert result["drivers"], "the features that drove it are shown"
    assert result["lift"] >= 3.0, result


def test_lookalike_definitions_are_checked(suite, tag) -> None:
    stub = suite.segmentation
    with pytest.raises(grpc.RpcError) as refused:
        stub.CreateSegment(
            pb.CreateSegmentRequest(
                segment=pb.Segment(
                    segment_id=seg_id("lal"),
                    builtin="lookalike",
                    builtin_parameters={"size": "0", "classes": "x"},
                )
            ),
            timeout=T,
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "builtin_parameters[seed]" in refused.value.details()
    tiny = create(stub, seg_id("tiny-seed"), tagged(tag))  # nobody: too small to learn from
    with pytest.raises(grpc.RpcError) as refused:
        stub.CreateSegment(
            pb.CreateSegmentRequest(
                segment=pb.Segment(
                    segment_id=seg_id("lal"),
                    builtin="lookalike",
                    builtin_parameters={"seed": tiny.segment_id},
                )
            ),
            timeout=T,
        )
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
