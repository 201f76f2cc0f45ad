"""Creates a blob container in Azurite (the Azure Storage emulator) with its well-known
development account and key (Shared Key authorization), for scripts/lib.sh's
start_throwaway_azurite. Usage: azurite-container.py BLOB_URL CONTAINER. Standard library
only."""
import base64
import hashlib
import hmac
import sys
import urllib.error
import urllib.request
from email.utils import formatdate

ACCOUNT = "devstoreaccount1"
# Azurite's published development key (not a secret).
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
VERSION = "2021-08-06"

blob_url, container = sys.argv[1].rstrip("/"), sys.argv[2]
date = formatdate(usegmt=True)
headers = {"x-ms-date": date, "x-ms-version": VERSION}
canonical_headers = "".join(f"{k}:{headers[k]}\n" for k in sorted(headers))
resource = f"/{ACCOUNT}/{ACCOUNT}/{container}\nrestype:container"
# Fields: verb, encoding, language, length (empty for 0), MD5, type, date, four conditions,
# range; urllib sends a Content-Type with any body, so it is set and signed.
content_type = "application/octet-stream"
fields = ["PUT", "", "", "", "", content_type, "", "", "", "", "", ""]
string_to_sign = "\n".join(fields) + "\n" + canonical_headers + resource
signature = base64.b64encode(
    hmac.new(base64.b64decode(KEY), string_to_sign.encode(), hashlib.sha256).digest()
).decode()
request = urllib.request.Request(
    f"{blob_url}/{ACCOUNT}/{container}?restype=container",
    method="PUT",
    data=b"",
    headers={
        **headers,
        "Authorization": f"SharedKey {ACCOUNT}:{signature}",
        "Content-Length": "0",
        "Content-Type": content_type,
    },
)
try:
    urllib.request.urlopen(request, timeout=30)
except urllib.error.HTTPError as e:
    if e.code != 409:  # 409: it exists already
        sys.exit(f"creating container {container}: {e.code} {e.read().decode(errors='replace')}")
print(f"container {container} ready")
