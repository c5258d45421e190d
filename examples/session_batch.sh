#!/usr/bin/env bash
# Batch upload with the upload-session family (API.md §3), curl only:
#   examples/session_batch.sh SERVER TOKEN FOLDER FILE...
# Registers a session that stays open (autofinish=0), POSTs each file to it, then finishes
# it and prints the finish answer (the list of files) as the last line.
set -euo pipefail
if [ $# -lt 4 ]; then
    echo "usage: $0 SERVER TOKEN FOLDER FILE..." >&2
    exit 2
fi
server=$1 token=$2 folder=$3
shift 3
auth="Authorization: Bearer $token"
session=$(curl -sf -H "$auth" -d "folder_id=$folder" -d autofinish=0 "$server/api/upload/id")
ulid=$(printf '%s' "$session" | python3 -c 'import json,sys; print(json.load(sys.stdin)["ulid"])')
for file in "$@"; do
  curl -sf -H "$auth" -F "file=@$file" "$server/api/file/$ulid"
  echo
done
curl -sf -H "$auth" -X DELETE "$server/api/upload/id/$ulid"
echo
