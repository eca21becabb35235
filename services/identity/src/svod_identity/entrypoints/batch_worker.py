"""The worker process of one batch job attempt (started by ``service_layer.bulk.JobRunner``).

    python -m svod_identity.entrypoints.batch_worker JOB_PK ATTEMPT

Exit status 0 when the attempt ran to its end (the job succeeded, or it failed for good and says
why); anything else makes the runner queue the job for another attempt.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Sequence

from pydantic import Field

from svod_identity.domain.matching.autofit import AUTOFIT_ENV, RERESOLVE_ENV, AutoFitPolicy
from svod_identity.service_layer.batch_job import DEFAULT_WINDOW, WINDOW_ENV, run_job
from svod_identity.service_layer.bulk import WORKER_DATABASE_ENV
from svod_runtime.logs import setup_logging
from svod_runtime.settings import SettingsModel


class WorkerSettings(SettingsModel):
    database_url: str = Field(
        "",
        validation_alias=WORKER_DATABASE_ENV,
        description="The database of the job, set by the identity service that starts us.",
    )
    window: int = Field(
        DEFAULT_WINDOW,
        ge=1,
        validation_alias=WINDOW_ENV,
        description="Records an import places and writes per window (docs/bulk-import.md): "
        "the worker holds one window's engine state, not the whole import's.",
    )
    model_autofit_records: int = Field(
        0,
        ge=0,
        validation_alias=AUTOFIT_ENV,
        description="The identity service's own setting, which started us: an import fits "
        "the match model where records streamed would (service_layer/import_fits.py).",
    )
    model_autofit_reresolve_records: int = Field(
        0,
        ge=0,
        validation_alias=RERESOLVE_ENV,
        description="The identity service's own setting: an import whose fits changed the "
        "model queues a re-resolution of a graph this small (domain/matching/autofit.py).",
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2 or not all(a.isdigit() for a in args):
        print("usage: batch_worker JOB_PK ATTEMPT", file=sys.stderr)
        return 2
    settings = WorkerSettings.load()
    url = settings.database_url
    if not url:
        print(f"{WORKER_DATABASE_ENV} is not set", file=sys.stderr)
        return 2
    setup_logging("identity-batch")
    logging.getLogger(__name__).info("batch worker for job %s attempt %s", *args)
    job = run_job(
        url,
        int(args[0]),
        int(args[1]),
        window=settings.window,
        autofit=AutoFitPolicy(
            settings.model_autofit_records,
            reresolve_up_to_records=settings.model_autofit_reresolve_records,
        ),
    )
    return asyncio.run(job)


if __name__ == "__main__":
    raise SystemExit(main())
