"""The image's HEALTHCHECK: exit 0 only when `golive serve` answers GET /healthz with 200.

Standard library only (the image has no curl); /healthz is 200 only when the database answers.
"""

import os
import sys
import urllib.error
import urllib.request

url = f"http://127.0.0.1:{os.environ.get('PORT', '3000')}/healthz"
try:
    with urllib.request.urlopen(url, timeout=4) as resp:
        sys.exit(0 if resp.status == 200 else 1)
except (urllib.error.URLError, OSError) as e:
    print(f"{url}: {e}", file=sys.stderr)
    sys.exit(1)
