"""gunicorn for the reference deployment (docs/deployment.md): behind nginx (deploy/nginx.conf).

    gunicorn -c deploy/gunicorn.conf.py          # from the repository root

nginx buffers every request and response, so gunicorn only ever sees whole requests from one
well-behaved client on the loopback: a few threads per worker are enough, and a slow IM-side
client never holds one. Never expose this port to the network: slow clients would hold its
threads (the reason nginx is in front), and it believes X-Forwarded-* from its peer.

Everything can be overridden with the environment (or gunicorn's own command-line options).
"""

import os

# The example project, with the deployment's settings (TRUSTED_PROXIES, DEBUG off: deploy/settings.py).
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deploy.settings")
wsgi_app = "project.wsgi:application"

# Loopback only, where nginx's upstream points (fd://N and unix:PATH work too).
bind = [os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")]
# gthread: keep-alive connections from nginx's upstream pool park in the worker's poller instead
# of holding a thread (sync workers close every connection).
worker_class = "gthread"
workers = int(os.environ.get("GUNICORN_WORKERS", "3"))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
# A request that takes longer than this is stuck: the worker is restarted (nginx answers 502,
# as JSON; the delivery was stored first or not at all).
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 30
# Longer than nginx's upstream keepalive_timeout (30 s): nginx closes an idle connection first,
# so it never sends a POST on a connection gunicorn is closing (nginx does not retry POSTs: 502).
keepalive = 75
# X-Forwarded-Proto from nginx decides wsgi.url_scheme.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
# The worker heartbeat file on tmpfs (a disk-backed /tmp can stall it under I/O load).
if os.path.isdir("/dev/shm"):
    worker_tmp_dir = "/dev/shm"
# gunicorn 25+'s control socket (gunicornc) defaults to one path per user
# ($XDG_RUNTIME_DIR/gunicorn.ctl or ~/.gunicorn/gunicorn.ctl), shared by every gunicorn that user
# runs: off unless GUNICORN_CONTROL_SOCKET names this instance's own.
if os.environ.get("GUNICORN_CONTROL_SOCKET"):
    control_socket = os.environ["GUNICORN_CONTROL_SOCKET"]
else:
    control_socket_disable = True
# Access logs are nginx's; errors go to stderr (the service manager's journal).
accesslog = None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
