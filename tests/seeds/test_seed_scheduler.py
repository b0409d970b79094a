"""The seeds' SchedulerPlugin examples, ported mechanically (camelCase → snake_case, ``new X({...})``
→ ``X(...)``, ``await`` dropped, ``async (db) => {...}`` → ``async def action(db): ...``).

The Scheduler halves of "Production Stack" and "E-commerce Workflow" (the same in both guides);
the whole examples, every plugin they name, are ported in ``test_seed_combinations.py``.
"""

from __future__ import annotations

import datetime as dt

import s3db_nb
from s3db_nb.plugins import SchedulerPlugin
from tests.conftest import FakeClock

MIDNIGHT = dt.datetime(2025, 3, 1, tzinfo=dt.UTC).timestamp()


def test_quick_reference_imports_the_scheduler_by_its_class_name():
    # import { SchedulerPlugin } from 's3db.js'
    assert s3db_nb.SchedulerPlugin is SchedulerPlugin and SchedulerPlugin.__name__ == "SchedulerPlugin"


def test_production_stack_daily_cleanup_runs_at_three_in_the_morning(db):
    ran = []

    async def daily_cleanup(db):
        # Daily maintenance tasks
        ran.append(db)

    scheduler = SchedulerPlugin(jobs={"daily_cleanup": {"schedule": "0 3 * * *", "action": daily_cleanup}})
    db.use_plugin(scheduler)
    status = scheduler.get_job_status("daily_cleanup")
    next_run = dt.datetime.fromisoformat(status["next_run"].replace("Z", "+00:00"))
    assert (next_run.hour, next_run.minute) == (3, 0) and dt.timedelta(0) < next_run - dt.datetime.now(dt.UTC) <= dt.timedelta(days=1)
    assert scheduler.run_job("daily_cleanup")["status"] == "success" and ran == [db]


def test_ecommerce_workflow_jobs_over_one_simulated_day(db):
    clock = FakeClock(MIDNIGHT)
    runs = {"inventory_sync": 0, "daily_reports": 0}

    async def inventory_sync(db):
        # Sync inventory every 15 minutes
        runs["inventory_sync"] += 1

    async def daily_reports(db):
        # Generate daily sales reports
        runs["daily_reports"] += 1

    scheduler = SchedulerPlugin(
        jobs={
            "inventory_sync": {"schedule": "*/15 * * * *", "action": inventory_sync},
            "daily_reports": {"schedule": "0 9 * * *", "action": daily_reports},
        },
        clock=clock,  # a simulated day instead of a real one
        poll_interval=0,
    )
    db.use_plugin(scheduler)
    for _ in range(24 * 4):
        clock.advance(15 * 60)
        scheduler.run_pending(wait=True)
    assert runs == {"inventory_sync": 96, "daily_reports": 1}
    (report,) = scheduler.get_job_history("daily_reports")
    assert report["start_time"] == "2025-03-01T09:00:00.000Z" and report["status"] == "success"
    assert len(scheduler.get_job_history("inventory_sync", limit=200)) == 96
