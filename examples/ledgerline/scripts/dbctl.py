"""Create or drop the database named in LL_DB_DSN (run inside the api image, piped in).

    python3 - create|drop < dbctl.py
"""
import os
import re
import sys

import psycopg

action = sys.argv[1]
dsn = re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql://", os.environ["LL_DB_DSN"])
info = psycopg.conninfo.conninfo_to_dict(dsn)
name = info.get("dbname") or "ledgerline"
info["dbname"] = "postgres"
quoted = '"{}"'.format(name.replace('"', '""'))
with psycopg.connect(psycopg.conninfo.make_conninfo(**info), autocommit=True,
                     connect_timeout=5) as c:
    exists = c.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    if action == "create" and not exists:
        c.execute("CREATE DATABASE " + quoted)
        print(f"[ledgerline] database {name} created")
    elif action == "drop" and exists:
        c.execute(f"DROP DATABASE {quoted} WITH (FORCE)")
        print(f"[ledgerline] database {name} dropped")
    else:
        print(f"[ledgerline] database {name} {'exists' if exists else 'does not exist'}")
