"""The queue rules of DESIGN.md hold in the configured Celery app."""

from django.conf import settings

from webapp.celery import app


def test_tasks_are_acked_late_one_at_a_time_and_requeued_if_the_worker_dies():
    assert app.conf.task_acks_late is True
    assert app.conf.worker_prefetch_multiplier == 1
    assert app.conf.task_reject_on_worker_lost is True


def test_each_kind_of_task_goes_to_its_queue():
    router = app.amqp.router
    assert router.route({}, "classifier.tasks.classify_observations")["queue"].name == "inference"
    assert router.route({}, "classifier.tasks.train_model")["queue"].name == "training"
    assert router.route({}, "observations.tasks.send_alerts")["queue"].name == "default"


def test_the_redis_visibility_timeout_is_above_the_longest_hard_time_limit():
    if settings.REDIS_URL:
        timeout = app.conf.broker_transport_options["visibility_timeout"]
        assert timeout > settings.CELERY_TRAINING_TIME_LIMIT > settings.CELERY_TASK_TIME_LIMIT
    else:
        assert app.conf.broker_url.startswith("filesystem://")
