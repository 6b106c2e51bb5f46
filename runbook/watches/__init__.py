"""Post-cutover watches: measurements, their Argo-style verdict, and the sources they read.

The pure core is ``analysis`` (``step``) and ``burnrate``; the shell builds and schedules
``runbook.watches.watchset.WatchSet`` (imported from there: it pulls in httpx, psycopg and the
Docker SDK, which this package's import must not).
"""
