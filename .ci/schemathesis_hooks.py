"""Loaded by .ci/schemathesis (SCHEMATHESIS_HOOKS): tus sends raw bytes as
application/offset+octet-stream, which schemathesis can generate once it knows the type is
bytes like application/octet-stream."""

import schemathesis

schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")
