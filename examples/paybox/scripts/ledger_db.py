"""Create or drop the ledger database named in PAYBOX_DATABASE_URL (run inside the app image).

    python3 - create|drop <tag> < ledger_db.py      (up.sh / down.sh pipe it in)
"""
import os
import re
import sys

import psycopg

action, tag = sys.argv[1], sys.argv[2]
url = re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql://", os.environ["PAYBOX_DATABASE_URL"])
info = psycopg.conninfo.conninfo_to_dict(url)
name = info.get("dbname") or "paybox"
info["dbname"] = "postgres"
quoted = '"%s"' % name.replace('"', '""')
with psycopg.connect(psycopg.conninfo.make_conninfo(**info), autocommit=True,
                     connect_timeout=5) as c:
    exists = c.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    if action == "create" and not exists:
        c.execute("CREATE DATABASE " + quoted)
        print(f"[{tag}] database {name} created")
    elif action == "drop" and exists:
        c.execute(f"DROP DATABASE {quoted} WITH (FORCE)")
        print(f"[{tag}] dropped database {name}")
    else:
        print(f"[{tag}] database {name} {'exists' if exists else 'does not exist'}")
