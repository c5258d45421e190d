#!/usr/bin/env python3
"""Upload a file with the presigned multipart API (API.md §2), parts in parallel.

Standard library only. Usage:
    multipart_upload.py --server URL --token TOKEN --file PATH [--file-id ID] [--parts N]
                        [--content-type video/mp4] [--workers 8]
Prints the completion answer (id, location, etag, filesize, checksum) as one JSON line and
exits non-zero if the server's checksum differs from the file's SHA-256.
"""
import argparse
import concurrent.futures
import hashlib
import json
import os
import sys
import urllib.request


def call(method, url, token=None, body=None, headers=None):
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    request.add_header("Accept", "application/json; version=1")
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        sys.exit(f"{method} {url.split('?')[0]} -> {error.code}: {error.read().decode()}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--file", required=True)
    parser.add_argument("--file-id")
    parser.add_argument("--parts", type=int, default=20)
    parser.add_argument("--content-type", default="video/mp4")
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args()

    size = os.path.getsize(args.file)
    file_id = args.file_id or os.path.basename(args.file).replace(".", "_")[:64]
    # every part but the last must be at least 5 MiB
    part_size = max(-(-size // args.parts), 5 * 1024 * 1024)
    parts = max(1, -(-size // part_size))
    query = f"part_count={parts}&content_type={args.content_type}"
    _, _, body = call("GET", f"{args.server}/api/users/multipart_upload_start/{file_id}?{query}", args.token)
    start = json.loads(body)

    def put_part(index):
        with open(args.file, "rb") as f:
            f.seek(index * part_size)
            chunk = f.read(part_size)
        _, headers, _ = call("PUT", start["presigned_urls"][index], body=chunk,
                             headers={"Content-Length": str(len(chunk))})
        return {"part_number": index + 1, "etag": headers.get("ETag") or headers.get("etag")}

    with concurrent.futures.ThreadPoolExecutor(max_workers=args.workers) as pool:
        done = list(pool.map(put_part, range(parts)))

    payload = json.dumps({"upload_id": start["upload_id"], "parts": done}).encode()
    _, _, body = call("POST", f"{args.server}/api/users/multipart_upload_complete/{file_id}", args.token,
                      payload, {"Content-Type": "application/json"})
    answer = json.loads(body)
    digest = hashlib.sha256()
    with open(args.file, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    print(json.dumps(answer))
    if answer["checksum"] != digest.hexdigest() or answer["filesize"] != size:
        sys.exit("the server's checksum or size differs from the file's")


if __name__ == "__main__":
    main()
