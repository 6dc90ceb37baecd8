"""The Celery app both sides build from settings: API processes send `process_job` tasks with
it, `celery -A api.worker worker` runs them. Celery's own mechanisms carry the rules:

- `acks_late` + `task_reject_on_worker_lost`: a message is acknowledged only once its job has
  finished, so a worker host that disappears loses no message; a pool process killed mid-job
  has its message requeued, and the redelivered task fails the job (it never runs twice).
- prefetch multiplier 1: a worker reserves no more messages than it has pool processes, so
  jobs go to idle workers and none waits behind another worker's long job.
- hard time limit = JOB_TIMEOUT_S: the pool process is killed and replaced; the task's
  `on_failure` (in the worker's main process) fails the job with a message.
- `worker_max_memory_per_child`: a pool process that grew past it is replaced after its task.
- RabbitMQ closes a channel whose delivery is unacknowledged past its consumer timeout (30 min
  by default), which with acks_late means a long job; the consumer argument
  `x-consumer-timeout` (RabbitMQ 3.12+) sets it per consumer to outlast any job.
"""

from __future__ import annotations

from celery import Celery
from kombu import Queue

from api.core.config import Settings

PROCESS_JOB_TASK = "pixelgate.process_job"
JOBS_QUEUE = "pixelgate.jobs"
# RabbitMQ's own default consumer timeout; ours is never shorter.
BROKER_CONSUMER_TIMEOUT_S = 30 * 60
# A delivered message may wait in the worker for one job before its own runs.
CONSUMER_TIMEOUT_JOBS = 3
PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5}


def consumer_timeout_ms(settings: Settings) -> int:
    seconds = max(BROKER_CONSUMER_TIMEOUT_S, CONSUMER_TIMEOUT_JOBS * settings.job_timeout_s)
    return int(seconds * 1000)


def make_celery(settings: Settings) -> Celery:
    if settings.celery_broker_url is None:
        raise ValueError("CELERY_BROKER_URL is not set")
    app = Celery("pixelgate", broker=settings.celery_broker_url.get_secret_value())
    memory_kib = settings.worker_max_memory_per_child_mb * 1024
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,  # the jobs table is the truth: no result backend
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure=True,
        task_acks_on_timeout=True,
        task_time_limit=settings.job_timeout_s,
        task_default_queue=JOBS_QUEUE,
        task_queues=[
            Queue(
                JOBS_QUEUE,
                routing_key=JOBS_QUEUE,
                durable=True,
                consumer_arguments={"x-consumer-timeout": consumer_timeout_ms(settings)},
            )
        ],
        task_publish_retry_policy=PUBLISH_RETRY_POLICY,
        # Publisher confirms: a task counts as sent once the broker has it.
        broker_transport_options={"confirm_publish": True},
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=5,
        worker_prefetch_multiplier=1,
        worker_concurrency=settings.process_workers,
        worker_max_memory_per_child=memory_kib or None,
        worker_hijack_root_logger=False,
        worker_cancel_long_running_tasks_on_connection_loss=False,
    )
    return app
