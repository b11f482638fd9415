"""CLI layer: ``fakedet scan --engine local|ray`` and the Ray engine's options.

The local engine is :func:`fakedet.inference.stream.load_and_score`; the Ray engine is
:mod:`fakedet.ray`, imported (with Ray) only when asked for.
"""

from __future__ import annotations

import os
import stat

import click

from fakedet.cli.common import EXIT_USAGE, err


def engine_options(f):
    """--engine, --ray-address, --ray-workers, --ray-s3-endpoint."""
    for option in reversed((
        click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
                     help="Where to score: this process, or a Ray cluster (needs the ray extra; "
                          "PATHs may then also be URIs: s3://, gs://, hdfs://)."),
        click.option("--ray-address", metavar="ADDR", default=None,
                     help="The Ray cluster to join  [default: the one RAY_ADDRESS names, else a "
                          "local Ray started for the scan]."),
        click.option("--ray-workers", type=click.IntRange(min=1), default=None, metavar="N",
                     help="Scoring actors, each loading the model once  [default: one per GPU with "
                          "--device cuda, else one per 4 CPUs of the cluster, at least one]."),
        click.option("--ray-s3-endpoint", metavar="URL", default=None,
                     help="An S3-compatible endpoint for s3:// URIs  [default: AWS_ENDPOINT_URL, "
                          "else AWS]."),
    )):
        f = option(f)
    return f


def check(ctx: click.Context, opts: dict, fmt: str, output, faces: bool, report_path) -> None:
    """Refuses what the chosen engine and format cannot do, before anything starts."""
    if fmt == "parquet":
        if output in (None, "-"):
            raise click.UsageError("--format parquet needs -o FILE")
        try:
            mode = os.stat(output).st_mode
        except (OSError, ValueError):
            mode = 0  # made by the scan
        if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):  # /dev/stdout into a pipe: found at the first write
            raise click.UsageError(f"--format parquet needs -o FILE, a file it can seek in, and {output} is a pipe")
        try:
            import pyarrow.parquet  # noqa: F401
        except ImportError:
            from fakedet.data.writers import PARQUET_HINT

            err(PARQUET_HINT)
            ctx.exit(EXIT_USAGE)
    if opts.get("engine") != "ray":
        for name in ("ray_address", "ray_workers", "ray_s3_endpoint"):
            if opts.get(name) is not None:
                raise click.UsageError(f"--{name.replace('_', '-')} needs --engine ray")
        return
    if faces:
        raise click.UsageError("--faces is not available with --engine ray yet")
    if report_path is not None:
        raise click.UsageError("--report is not available with --engine ray yet")
    from fakedet import ray as fray

    if not fray.available():
        err(fray.INSTALL_HINT)
        ctx.exit(EXIT_USAGE)


def ray_stream(items, weights, opts: dict, *, device, threshold, batch_size, provenance, filt, crop=True,
               several=True):
    """The Ray engine's Result batches (:class:`fakedet.ray.RayScan`; ``several``: more than one
    input, so that a URI reached twice is told, as :func:`fakedet.data.sources.iter_items` tells a
    local file)."""
    from fakedet import ray as fray

    return fray.scan_items(items, weights, address=opts.get("ray_address"), device=device,
                           threshold=threshold, batch_size=batch_size, workers=opts.get("ray_workers"),
                           provenance=provenance, s3_endpoint=opts.get("ray_s3_endpoint"), filt=filt,
                           crop=crop, several=several)
