"""gunicorn settings for Slipway's web process (the container image's default command).

Every value can be tuned through an environment variable without rebuilding the image.
The defaults suit a container limited to about one CPU and 1 GiB of memory:

- ``gthread`` workers: Slipway's requests wait on PostgreSQL, Redis and sometimes
  MLflow; threads overlap that waiting at a fraction of a process's memory.
- ``timeout`` bounds a stuck request. Nothing slow runs in a request (git and the
  cluster are the worker's business), so 60 s is generous; /readyz bounds itself to a
  few seconds.
- ``max_requests`` (with jitter, so workers do not all restart together) recycles a
  worker now and then, which caps any slow leak.
- Heartbeat files in /dev/shm (memory), not on a disk that may be slow or read-only.
- No control socket (gunicorn 25.1+ otherwise creates one under $HOME, which is
  read-only in the Kubernetes manifests).

Prometheus: ``PROMETHEUS_MULTIPROC_DIR`` is set here, before any worker imports
prometheus_client, and emptied at start-up, so /metrics sums request counters over all
workers (controlplane/prometheus.py). ``child_exit`` tells prometheus_client a worker is
gone.
"""

import os
import shutil

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
wsgi_app = "controlplane.wsgi:application"
worker_class = "gthread"
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
# Longer than the load balancer's idle timeout in front of it, or the balancer may reuse
# a connection gunicorn has just closed (a 502 for the user).
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "75"))
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "2000"))
max_requests_jitter = int(os.environ.get("GUNICORN_MAX_REQUESTS_JITTER", "200"))
worker_tmp_dir = os.environ.get("GUNICORN_WORKER_TMP_DIR", "/dev/shm")  # noqa: S108 - heartbeats
control_socket_disable = True
# Request bodies are small (MAX_REQUEST_BODY_BYTES); keep header limits at their defaults.
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None  # "-" for stdout
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
# X-Forwarded-Proto is read by Django itself (SECURE_PROXY_SSL_HEADER); gunicorn only
# needs to trust the proxy for REMOTE_ADDR-style headers, which Slipway does not use.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")

os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", "/tmp/slipway-prometheus")  # noqa: S108


def on_starting(server):
    """Start every container with empty metric files: counters begin at zero, as
    Prometheus expects of a restarted target."""
    path = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path, exist_ok=True)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
