"""Uploads one file with tuspy, the tus project's Python client, as a user would: for Ferry's
API tests (tests/api/tus_clients.rs). Prints {"url": ..., "offset": ...} when done.

Arguments: --endpoint URL --token TOKEN --file PATH [--chunk-size BYTES]
[--metadata KEY=VALUE ...] [--storage PATH (URL storage, to resume across runs)]
[--retries N --retry-delay SECONDS] [--checksum (Upload-Checksum: sha1 on every PATCH)]
"""
import argparse
import json

from tusclient import client
from tusclient.storage import filestorage

parser = argparse.ArgumentParser()
parser.add_argument("--endpoint", required=True)
parser.add_argument("--token", required=True)
parser.add_argument("--file", required=True)
parser.add_argument("--chunk-size", type=int, default=None)
parser.add_argument("--metadata", action="append", default=[])
parser.add_argument("--storage")
parser.add_argument("--retries", type=int, default=0)
parser.add_argument("--retry-delay", type=float, default=1)
parser.add_argument("--checksum", action="store_true")
args = parser.parse_args()

tus = client.TusClient(args.endpoint, headers={"Authorization": "Bearer " + args.token})
storage = filestorage.FileStorage(args.storage) if args.storage else None
options = {}
if args.chunk_size:
    options["chunk_size"] = args.chunk_size
uploader = tus.uploader(
    file_path=args.file,
    metadata=dict(item.split("=", 1) for item in args.metadata),
    store_url=storage is not None,
    url_storage=storage,
    retries=args.retries,
    retry_delay=args.retry_delay,
    upload_checksum=args.checksum,
    **options,
)
uploader.upload()
print(json.dumps({"url": uploader.url, "offset": uploader.offset}))
