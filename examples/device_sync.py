#!/usr/bin/env python3
"""Sync a local folder into a Ferry volume through the device grant family (/device/1).

Written from API.md section 1 alone, with the Python 3.11 standard library only.

    python3 examples/device_sync.py --server http://127.0.0.1:PORT --key DEVICE_SESSION_KEY \
        --folder DIR [--delete RELPATH]

Prints one JSON line: {"uploaded": N, "skipped": N, "media": N, "deleted": N}.
Exits non-zero with a message on stderr on any unexpected HTTP status.
"""

import argparse
import datetime
import hashlib
import json
import os
import stat
import sys
import urllib.error
import urllib.parse
import urllib.request

MIB = 1 << 20
READ_SIZE = MIB
SINGLE_MAX = 16 * MIB
FIRST_CHUNK = 8 * MIB
MAX_CHUNKS = 900


class SyncError(Exception):
    pass


# ---------------------------------------------------------------- hashing


def chunk_size_for(size):
    """0 for single-hash files, else the chunk size of API.md's "File hashing" rule."""
    if size <= SINGLE_MAX:
        return 0
    chunk = FIRST_CHUNK
    while -(-size // chunk) > MAX_CHUNKS:
        chunk *= 2
    return chunk


def hash_file(path, size):
    """Returns (file_hash, chunk_size, parts); parts is [(part_num, offset, part_size, part_hash)]."""
    chunk = chunk_size_for(size)
    with open(path, "rb") as f:
        if chunk == 0:
            digest = hashlib.sha256()
            read = 0
            while True:
                block = f.read(READ_SIZE)
                if not block:
                    break
                digest.update(block)
                read += len(block)
            if read != size:
                raise SyncError(f"{path}: changed while hashing")
            return digest.hexdigest(), 0, []
        parts = []
        outer = hashlib.sha256()
        offset = 0
        part_num = 1
        while offset < size:
            part_size = min(chunk, size - offset)
            digest = hashlib.sha256()
            left = part_size
            while left > 0:
                block = f.read(min(READ_SIZE, left))
                if not block:
                    raise SyncError(f"{path}: changed while hashing")
                digest.update(block)
                left -= len(block)
            outer.update(digest.digest())
            parts.append((part_num, offset, part_size, digest.hexdigest()))
            offset += part_size
            part_num += 1
        return outer.hexdigest(), chunk, parts


def file_range(path, offset, length):
    """Yields the bytes [offset, offset + length) of a file in 1 MiB reads."""
    with open(path, "rb") as f:
        f.seek(offset)
        left = length
        while left > 0:
            block = f.read(min(READ_SIZE, left))
            if not block:
                raise SyncError(f"{path}: shorter than expected")
            left -= len(block)
            yield block


# ---------------------------------------------------------------- HTTP


class Client:
    def __init__(self, server, key):
        self.server = server.rstrip("/")
        self.key = key

    def request(self, method, url, body=None, headers=None, expect=(200,)):
        """Sends a request; returns (status, headers, parsed JSON or raw bytes).

        `body` is a dict (sent as JSON), an iterable of bytes (headers must carry
        Content-Length) or None. A status outside `expect` raises SyncError.
        """
        headers = dict(headers or {})
        data = None
        if isinstance(body, dict):
            data = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        elif body is not None:
            data = body
            headers.setdefault("Content-Type", "application/octet-stream")
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=300) as resp:
                status, resp_headers, raw = resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as err:
            status, resp_headers, raw = err.code, err.headers, err.read()
        except urllib.error.URLError as err:
            raise SyncError(f"{method} {redact(url)}: {err.reason}") from err
        parsed = raw
        content_type = (resp_headers.get("Content-Type") or "") if resp_headers else ""
        if raw and "json" in content_type:
            try:
                parsed = json.loads(raw)
            except ValueError:
                pass
        elif not raw:
            parsed = None
        if status not in expect:
            shown = raw.decode("utf-8", "replace")[:500] if raw else ""
            raise SyncError(f"{method} {redact(url)}: unexpected HTTP {status} (expected {list(expect)}): {shown}")
        return status, resp_headers, parsed

    def device(self, method, path, body=None, expect=(200,)):
        """A device-family call with the key in the JSON body."""
        payload = dict(body or {})
        payload["device_session_key"] = self.key
        status, _, parsed = self.request(method, f"{self.server}/device/1{path}", payload, expect=expect)
        if not isinstance(parsed, dict):
            raise SyncError(f"{method} /device/1{path}: HTTP {status} without a JSON object body: {parsed!r}")
        return status, parsed


def redact(url):
    """Hides query strings (signatures, keys) in messages."""
    return url.split("?", 1)[0] + ("?…" if "?" in url else "")


# ---------------------------------------------------------------- sync


def iso_utc(seconds):
    stamp = datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def scan(folder):
    """Every regular file under `folder`, sorted by relative path ("/"-separated)."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in files:
            path = os.path.join(root, name)
            st = os.lstat(path)
            if not stat.S_ISREG(st.st_mode):
                continue
            rel = os.path.relpath(path, folder).replace(os.sep, "/")
            found.append({"path": path, "rel": rel, "stat": st, "size": st.st_size})
    found.sort(key=lambda f: f["rel"])
    return found


def media_path_for(prefix, rel):
    if prefix in ("", "/"):
        return "/" + rel
    return prefix.rstrip("/") + "/" + rel


def upload_multipart(client, grant_path, entry):
    """Multipart flow for a large file; returns True when bytes were sent, False when skipped."""
    body = {
        "file_size": entry["size"],
        "file_hash": entry["hash"],
        "part_list": [
            {"part_num": num, "part_size": size, "part_hash": digest} for num, _, size, digest in entry["parts"]
        ],
    }
    status, started = client.device("POST", f"{grant_path}/multipart", body, expect=(200, 409))
    if status == 409:
        if started.get("skip_upload") is True:
            return False
        raise SyncError(f"POST multipart for {entry['rel']}: 409 without skip_upload: {started}")
    for field in ("upload_id", "s3_bucket_id", "signed_url_list"):
        if field not in started:
            raise SyncError(f"POST multipart for {entry['rel']}: no {field} in {started}")
    urls = started["signed_url_list"]
    if len(urls) != len(entry["parts"]):
        raise SyncError(f"POST multipart for {entry['rel']}: {len(urls)} URLs for {len(entry['parts'])} parts")
    by_num = {u.get("part_num"): u.get("url") for u in urls}
    done = []
    for index, (num, offset, size, _) in enumerate(entry["parts"]):
        url = by_num.get(num) or urls[index]["url"]
        _, headers, _ = client.request(
            "PUT", url, file_range(entry["path"], offset, size), headers={"Content-Length": str(size)}
        )
        etag = headers.get("ETag")
        if not etag:
            raise SyncError(f"PUT part {num} of {entry['rel']}: no ETag header")
        done.append({"part_num": num, "etag": etag})
    complete = {
        "file_size": entry["size"],
        "file_hash": entry["hash"],
        "s3_bucket_id": started["s3_bucket_id"],
        "upload_id": started["upload_id"],
        "part_list": done,
    }
    client.device("POST", f"{grant_path}/multipart_complete", complete, expect=(201,))
    return True


def upload_small(client, grant_path, entries):
    """One batch for every small file; returns the set of (hash, size) whose bytes were sent."""
    keys = []
    for e in entries:
        key = (e["hash"], e["size"])
        if key not in keys:
            keys.append(key)
    if not keys:
        return set()
    file_list = [{"file_hash": h, "file_size": s} for h, s in keys]
    _, answer = client.device("POST", f"{grant_path}/upload", {"file_list": file_list})
    upload_list = answer.get("upload_list")
    if not isinstance(upload_list, list):
        raise SyncError(f"POST upload: no upload_list in {answer}")
    by_key = {(u.get("file_hash"), u.get("file_size")): u for u in upload_list}
    if answer.get("upload_disabled") and any(not by_key.get(k, {}).get("skip_upload") for k in keys):
        raise SyncError("uploads are disabled for this device")
    sent = set()
    paths = {(e["hash"], e["size"]): e["path"] for e in entries}
    for key in keys:
        item = by_key.get(key)
        if item is None:
            raise SyncError(f"POST upload: no answer for {key[0]}")
        if item.get("skip_upload") is True:
            continue
        opts = item.get("signed_opts")
        if not isinstance(opts, dict) or "url" not in opts:
            raise SyncError(f"POST upload: no signed_opts for {key[0]}: {item}")
        if "s3_bucket_id" not in item:
            raise SyncError(f"POST upload: no s3_bucket_id for {key[0]}: {item}")
        headers = dict(opts.get("headers") or {})
        headers["Content-Length"] = str(key[1])
        method = (opts.get("method") or "PUT").upper()
        client.request(method, opts["url"], file_range(paths[key], 0, key[1]), headers=headers)
        client.device(
            "POST",
            f"{grant_path}/s3_object",
            {"s3_bucket_id": item["s3_bucket_id"], "file_hash": key[0], "file_size": key[1]},
        )
        sent.add(key)
    return sent


def sync(args):
    client = Client(args.server, args.key)

    _, current = client.device("POST", "/current")
    if current.get("is_disabled"):
        raise SyncError(f"device {current.get('device_name')} is disabled")
    _, grants = client.device("POST", "/media_grant")
    grant = next((g for g in grants.get("media_grant_list", []) if not g.get("is_disabled")), None)
    if grant is None:
        raise SyncError("no enabled media grant for this device")
    grant_path = "/media_grant/" + urllib.parse.quote(str(grant["media_grant_id"]), safe="")
    prefix = grant.get("prefix_path") or "/"

    files = scan(args.folder)
    if args.delete is not None:
        wanted = args.delete.replace(os.sep, "/").lstrip("/")
        if not any(f["rel"] == wanted for f in files):
            raise SyncError(f"--delete {args.delete}: no such file in {args.folder}")
    for f in files:
        f["hash"], f["chunk"], f["parts"] = hash_file(f["path"], f["size"])

    uploaded = skipped = 0
    small = [f for f in files if f["chunk"] == 0]
    sent = upload_small(client, grant_path, small)
    counted = set()
    for f in small:
        key = (f["hash"], f["size"])
        if key in sent and key not in counted:
            uploaded += 1
            counted.add(key)
        else:
            skipped += 1
    for f in files:
        if f["chunk"] == 0:
            continue
        if upload_multipart(client, grant_path, f):
            uploaded += 1
        else:
            skipped += 1

    media_ids = {}
    for f in files:
        st = f["stat"]
        body = {
            "media_path": media_path_for(prefix, f["rel"]),
            "file_hash": f["hash"],
            "file_size": f["size"],
            "ctime": iso_utc(st.st_ctime),
            "mtime": iso_utc(st.st_mtime),
        }
        status, made = client.device("POST", f"{grant_path}/media", body, expect=(200, 409))
        if status == 409:
            raise SyncError(f"POST media {body['media_path']}: path holds other content: {made}")
        if "media_id" not in made:
            raise SyncError(f"POST media {body['media_path']}: no media_id in {made}")
        media_ids[f["rel"]] = made["media_id"]

    if args.delete is not None:
        media_id = media_ids[args.delete.replace(os.sep, "/").lstrip("/")]
        query = urllib.parse.urlencode({"device_session_key": client.key})
        url = f"{client.server}/device/1{grant_path}/media/{media_id}?{query}"
        client.request("DELETE", url)

    items = []
    cursor = None
    for _ in range(100_000):
        body = {"limit": 2}
        if cursor is not None:
            body["cursor"] = cursor
        _, page = client.device("POST", f"{grant_path}/media_list", body)
        if not isinstance(page.get("media_list"), list) or "has_more" not in page or "next_cursor" not in page:
            raise SyncError(f"POST media_list: unexpected body {page}")
        items.extend(page["media_list"])
        if not page["has_more"]:
            break
        if page["next_cursor"] is None or page["next_cursor"] == cursor:
            raise SyncError(f"POST media_list: has_more without a new cursor: {page}")
        cursor = page["next_cursor"]
    else:
        raise SyncError("POST media_list: too many pages")

    deleted = sum(1 for item in items if item.get("is_deleted") is True)
    return {"uploaded": uploaded, "skipped": skipped, "media": len(items), "deleted": deleted}


def main():
    parser = argparse.ArgumentParser(description="Sync a folder into a Ferry volume as a device.")
    parser.add_argument("--server", required=True, help="base URL, e.g. http://127.0.0.1:8080")
    parser.add_argument("--key", required=True, help="the device_session_key")
    parser.add_argument("--folder", required=True, help="folder to sync")
    parser.add_argument("--delete", metavar="RELPATH", help="soft-delete this file's media afterwards")
    args = parser.parse_args()
    if not os.path.isdir(args.folder):
        print(f"device_sync: {args.folder} is not a folder", file=sys.stderr)
        return 2
    try:
        result = sync(args)
    except (SyncError, OSError) as err:
        print(f"device_sync: {err}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
