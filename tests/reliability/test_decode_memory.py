"""Small hostile images against a real gateway process: its peak RSS stays bounded (issue 14,
finding 2). Before the fix one 441 kB PNG raised the gateway to 2.1 GiB (reliability.decode_memory).

The gateway runs with production defaults (1 GiB pod, DRG_DECODE_MEMORY_BUDGET_BYTES 640 MiB)
in front of the package's TF Serving stand-in serving the tiny export; the corpus is written in
the test, row by row (reliability/hostile_images.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from gateway.settings import Settings
from harness.gateway_stack import Stack, running_stack
from reliability.decode_memory import SIDE, Case, Upload, corpus_at_once, hostile_corpus, measure

MIB = 1024 * 1024
POD_LIMIT_MIB = 1024
"""k8s/base/gateway: the gateway container's memory limit."""
SLACK_MIB = 128
"""Request bodies, responses and allocator slack beyond the decode budget. The corpus at once
peaked at 599-646 MiB (idle 115) on the development machine and at 879 MiB (idle 141) in one CI
run, 2 MiB over the 96 MiB first chosen; the pod limit (minus 64 MiB) stays the hard bound."""


@pytest.fixture(scope="module")
def gateway(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A fresh gateway (production defaults) on the package's stand-in, so no earlier test's
    memory is resident in it."""
    workdir = tmp_path_factory.mktemp("decode-memory")
    with running_stack(stack.model_root, workdir, server=stack.server) as fresh:
        yield fresh


@pytest.fixture(scope="module")
def corpus() -> dict[str, bytes]:
    """The hostile files (a few hundred kB each)."""
    return hostile_corpus()


def test_the_reviews_png_alone_and_as_an_exam_is_413(
    gateway: Stack, corpus: dict[str, bytes]
) -> None:
    hostile = corpus["png16_rgba"]
    assert len(hostile) < 500 * 1024
    for upload in (Upload(hostile), Upload(hostile, exam=True)):
        with httpx.Client(timeout=60) as client:
            assert upload.send(client, gateway.gateway.url) == (413, "image_too_large")


def test_peak_rss_stays_bounded_for_a_hostile_corpus_sent_at_once(
    gateway: Stack, corpus: dict[str, bytes]
) -> None:
    """Everything at once (reliability.decode_memory.corpus_at_once): two admitted 7000 x 7000
    deflate TIFFs and a 16-bit gray TIFF are decoded within the budget (one waits for
    another); the rest is refused from headers."""
    case = corpus_at_once(corpus)
    row = measure(gateway, case)
    budget_mib = Settings.model_fields["decode_memory_budget_bytes"].default / MIB
    bound = min(POD_LIMIT_MIB - 64, row.idle_rss_mib + budget_mib + SLACK_MIB)
    assert row.peak_rss_mib <= bound, row
    # refused from headers: the 16-bit PNGs (392 MB declared), the 16-bit RGB TIFF (294 MB),
    # the TIFF exam (two eyes' working set above the whole budget); the rest decoded
    assert row.statuses == (413, 413, 413, 413, 200, 200, 413, 200), row
    assert set(row.codes) == {"image_too_large", "-"}


def test_the_largest_admitted_png_still_grades_within_the_budget(
    gateway: Stack, corpus: dict[str, bytes]
) -> None:
    """A 7000 x 7000 8-bit RGB PNG (147 MB decoded, under both bounds) is graded, twice at once."""
    png8 = Upload(corpus["png_rgb8"])
    row = measure(gateway, Case(f"png_rgb8_{SIDE}_x2", (png8, png8)))
    assert row.statuses == (200, 200), row
    budget_mib = Settings.model_fields["decode_memory_budget_bytes"].default / MIB
    assert row.peak_rss_mib <= row.idle_rss_mib + budget_mib + SLACK_MIB, row


def test_no_500_when_many_arrive(gateway: Stack, corpus: dict[str, bytes]) -> None:
    """More large images than the budget and the queue hold: each is graded, refused 413, or
    refused 503 with Retry-After, never a 500."""
    data = corpus["tiff16_gray"]
    headers = {**gateway.auth_headers, "Content-Type": "image/tiff"}
    with httpx.Client(timeout=120) as client, ThreadPoolExecutor(4) as pool:
        responses = list(
            pool.map(
                lambda _: client.post(gateway.grade_url, content=data, headers=headers), range(4)
            )
        )
    for response in responses:
        assert response.status_code in (200, 503), response.text
        if response.status_code == 503:
            assert response.headers.get("retry-after")


def test_corpus_is_small(corpus: dict[str, bytes]) -> None:
    assert max(len(data) for data in corpus.values()) < 500 * 1024
