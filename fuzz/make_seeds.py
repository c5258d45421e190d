#!/usr/bin/env python3
"""Writes the hand-made seeds of every fuzz target into fuzz/corpus/<target>/seed-*.

What the fuzzer later adds to a corpus (`cargo fuzz cmin` keeps the useful part) is committed
beside them; this script only makes the starting points: valid inputs of each format, and the
hostile shapes review found. Images and videos come from ffmpeg (Debian `ffmpeg`).
    python3 fuzz/make_seeds.py
"""
import hashlib
import hmac
import json
import pathlib
import struct
import subprocess
import tempfile

CORPUS = pathlib.Path(__file__).resolve().parent / "corpus"
# ferry::fuzzing's signer key and the boundary of its form targets
FUZZ_KEY = b"the fuzzing key"
BOUNDARY = "ferryfuzz"


def seeds(target, items):
    folder = CORPUS / target
    folder.mkdir(parents=True, exist_ok=True)
    for n, item in enumerate(items):
        data = item if isinstance(item, bytes) else item.encode()
        (folder / f"seed-{n:02}").write_bytes(data)


def signed(method, path, params, expires=4102444800):
    query = "".join(f"{k}={v}&" for k, v in params) + f"expires={expires}"
    sig = hmac.new(FUZZ_KEY, f"{method}\n{path}\n{query}".encode(), hashlib.sha256).hexdigest()
    return f"{method}\n{path}\n{query}&sig={sig}"


def form(fields):
    """A multipart/form-data body: (name, value) or (name, value, filename, content type)."""
    out = b""
    for field in fields:
        name, value = field[0], field[1]
        value = value if isinstance(value, bytes) else value.encode()
        disposition = f'form-data; name="{name}"'
        head = ""
        if len(field) > 2:
            disposition += f'; filename="{field[2]}"'
            head = f"Content-Type: {field[3]}\r\n"
        out += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n{head}\r\n".encode() + value + b"\r\n"
    return out + f"--{BOUNDARY}--\r\n".encode()


def ffmpeg_file(suffix, *args):
    with tempfile.TemporaryDirectory() as tmp:
        out = pathlib.Path(tmp) / f"out{suffix}"
        subprocess.run(["ffmpeg", "-v", "error", "-y", *args, str(out)], check=True)
        return out.read_bytes()


def images():
    pattern = ["-f", "lavfi", "-i", "testsrc=size=64x48:rate=1", "-frames:v", "1"]
    made = [ffmpeg_file(s, *pattern) for s in (".jpg", ".png", ".gif", ".bmp", ".tiff", ".webp")]
    made.append(ffmpeg_file(".jpg", "-f", "lavfi", "-i", "testsrc=size=700x500:rate=1", "-frames:v", "1", "-q:v", "20"))
    fixtures = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures"
    return made + [p.read_bytes() for p in sorted(fixtures.glob("*.jpg"))]


def probes():
    with tempfile.TemporaryDirectory() as tmp:
        video = pathlib.Path(tmp) / "v.mp4"
        subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=64x48:rate=5", "-t", "1",
                        "-metadata", "location=+48.8584+002.2945+035.000/", "-metadata:s:v", "rotate=90",
                        "-metadata", "creation_time=2026-05-01T10:00:00.000000Z", str(video)], check=True)
        probe = subprocess.run(["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams",
                                str(video)], check=True, capture_output=True).stdout
    hostile = {"format": {"duration": "NaN", "tags": {"location": "+91.0-181.0/", "creation_time": "yesterday"}},
               "streams": [{"codec_type": "video", "width": 0, "height": 99999999, "side_data_list": [{"rotation": -270}]}]}
    return [probe, json.dumps(hostile), '{"format": {"duration": "1e309"}}']


def main():
    seeds("media_path", ["/a.jpg", "/photos\n/photos/2026/a.jpg", "/photos\n/photos2/a.jpg", "/../etc/passwd",
                         "//x", "/a/./b", "/a/", "/a\u0001b", "/", "/été/ü.jpg"])
    total = struct.pack("<Q", 1000)
    seeds("range_header", [total + h for h in (b"bytes=0-99", b"bytes=-5", b"bytes=5-", b"bytes=9-0", b"bytes=0-1,3-4",
                                             b"bytes=18446744073709551615-", b"bytes=-0", b"items=0-1")]
          + [struct.pack("<Q", 0) + b"bytes=0-", struct.pack("<Q", 2**64 - 1) + b"bytes=-18446744073709551615"])
    sha = "a" * 64
    seeds("signed_url", [signed("PUT", "/signed/blob", [("user", "1"), ("sha256", sha)]),
                         signed("PUT", "/signed/blob", [("user", "1")]) + "&folder_id=x",
                         signed("GET", "/signed/blob/" + sha, []),
                         signed("PUT", "/signed/blob", [("user", "1")], expires=1),
                         "PUT\n/signed/blob\nuser=1&expires=9&sig=" + "0" * 64,
                         "GET\n/x\n&sig=", "HEAD\n/signed/blob\nexpires=1&sig=" + "Z" * 64 + "&folder_id=1&folder_id=2"])
    seeds("index_json", [json.dumps(e) for e in (
        [{"name": "IMG_0001.jpg", "size": 1234, "created": "2026-01-01T00:00:00Z", "media_type": "image"}],
        [{"name": "2026/été.mp4", "size": "12", "created": 1767225600}, {"name": "clip.mov", "created": 1767225600000}],
        [{"name": "../secret"}, {"name": "http://evil.example/x"}, {"name": "%2e%2e/x"}, {"name": "a/%252e%252e/b"},
         {"name": "/etc/passwd"}, {"name": "a\\b"}, {"name": ""}],
        [{"name": "big.bin", "size": 2**63, "created": -(10**17)}, {"name": "max", "created": 2**63 - 1}],
        [{"name": "x", "size": -1, "created": 1e300}, {"name": "y", "created": -(2**63)}],
        {"name": "not a list"})])
    seeds("config_file", ['listen = "127.0.0.1:8080"\ndata_dir = "/srv/ferry"\nmax_upload_size = "64GiB"\n',
                          'cors_origins = ["https://a.example", "*"]\nmedia_workers = 2\ns3_path_style = true\n',
                          'thumbnail_size = 0\nheader_timeout = "-1s"\n', 'unknown = 1\n', 'watch = [1, {a = 2}]\n',
                          'signed_url_ttl = "99999999999999999999d"\nmax_upload_size = "18446744073709551616"\n',
                          'listen = [\n', 'remote_allow = "10.0.0.0/99,::1/129"\n'])
    seeds("image_file", images())
    seeds("video_probe", probes())
    video = ffmpeg_file(".mp4", "-f", "lavfi", "-i", "testsrc=size=64x48:rate=5", "-t", "1")
    webm = ffmpeg_file(".webm", "-f", "lavfi", "-i", "testsrc=size=48x64:rate=5", "-t", "1")
    seeds("video_file", [video, webm, video[: len(video) // 2], video[:64] + b"\0" * 256])
    jpeg = ffmpeg_file(".jpg", "-f", "lavfi", "-i", "testsrc=size=32x24:rate=1", "-frames:v", "1")
    seeds("session_form", [form([("file", jpeg, "a.jpg", "image/jpeg"), ("title", "holiday"), ("folder_id", "trip")]),
                           form([("folder_id", "f1"), ("max_filesize", "10"), ("file_extensions", "jpg,png"),
                                 ("autofinish", "0"), ("file", b"0123456789abcdef", "b.txt", "text/plain")]),
                           form([("file", b"", "empty.jpg", "image/jpeg"), ("folder_id", "../x")]),
                           f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nunterminated",
                           f"--{BOUNDARY}--\r\n", "no boundary at all"])
    seeds("gallery_form", [form([("event", jpeg, "e.jpg", "image/jpeg"), ("name", "doorbell"), ("metadata", '{"zone":2}')]),
                           form([("name", "n"), ("media_type", "video"), ("has_thumbnail", "true"),
                                 ("event", b"data", "e.bin", "application/octet-stream"),
                                 ("thumbnail", jpeg, "t.jpg", "image/jpeg")]),
                           form([("name", "a\u0007b"), ("event", b"x", "e", "x/y"), ("event", b"y", "f", "x/y")]),
                           form([("name", "m"), ("metadata", "{not json"), ("media_type", "sound")]),
                           form([("name", "only a name")])])
    seeds("tus_headers", ["Upload-Length: 5\nUpload-Metadata: filename aGVsbG8udHh0,folder_id dHVz\n\nhello",
                          "Upload-Length: 5\nUpload-Checksum: sha1 qvTGHdzF6KLavt4PO0gs2a6pQ00=\n\nhello",
                          "Upload-Defer-Length: 1\nUpload-Metadata: sha256 " + "YQ==" + "\n\nabc",
                          "Upload-Length: 3\nUpload-Concat: partial\n\nabc",
                          "Upload-Concat: final;/files/01J0000000000000000000000 /files/x\n",
                          "Upload-Length: -1\nUpload-Metadata: a,a\n", "Tus-Resumable: 0.2.2\nUpload-Length: 1\n",
                          "Upload-Length: 18446744073709551616\nUpload-Checksum: md5 AAAA\n\n",
                          "Upload-Length: 4\nUpload-Metadata: device Y2Ft,folder_id eA==\n\nabcd",
                          "Upload-Length: 4\nUpload-Length: 5\n\nabcd",
                          "Upload-Length: 8\nUpload-Offset: 4\n\nabcd"])


if __name__ == "__main__":
    main()
