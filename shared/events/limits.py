"""Explicit size limits on what arrives, each from the documented limit of the service that sends it.

A payload over a limit can never succeed, so it is refused with a problem naming the field and the limit
(recorded as rejected and acknowledged) instead of failing later, deeper and retryably (a 1.1 MB event id
made Firestore refuse the ledger write on every redelivery until the message was dead-lettered).
"""

from __future__ import annotations

# Pub/Sub resource limits (cloud.google.com/pubsub/quotas#resource_limits) ---------------------------------

#: Message size (the data field): 10 MB.
MAX_MESSAGE_DATA_BYTES = 10 * 1024 * 1024
#: Attributes per message.
MAX_ATTRIBUTES = 100
#: Attribute key size.
MAX_ATTRIBUTE_KEY_BYTES = 256
#: Attribute value size.
MAX_ATTRIBUTE_VALUE_BYTES = 1024
#: Ordering key size.
MAX_ORDERING_KEY_BYTES = 1024
#: A push request: the data base64-encoded (4/3 of 10 MB) plus attributes and the envelope's fields.
#: (Cloud Run refuses requests over 32 MiB before they reach the function.)
MAX_PUSH_BODY_BYTES = 16 * 1024 * 1024

# Ids that become ledger keys -------------------------------------------------------------------------------

#: Message ids, event ids, delivery ids, run ids, CloudEvent ids, build ids, nonces. Real ones are short
#: (a UUID is 36 bytes, a Pub/Sub message id about 17 digits); the bound keeps every key built from one
#: (``notify/EVENT_ID/CHANNEL``, ``RUN_ID/STEP``) well inside Firestore's 1,500-byte limits on document ids
#: and indexed string values.
MAX_ID_BYTES = 512
#: Short names that travel with an id: an event ``type``, a ``schema_version``, a build ``status``.
MAX_NAME_BYTES = 256

# Labels -----------------------------------------------------------------------------------------------

#: Google Cloud labels (resource labels, alert policy user labels, our notification labels): at most 64,
#: keys and values at most 63 characters and 128 bytes each.
MAX_LABELS = 64
MAX_LABEL_CHARS = 63
MAX_LABEL_BYTES = 128
#: Cloud Monitoring metric and monitored-resource labels: keys up to 100 characters, values up to 1,024.
MAX_METRIC_LABEL_KEY_BYTES = 100
MAX_METRIC_LABEL_VALUE_BYTES = 1024

# Cloud Storage (cloud.google.com/storage/docs/objects, .../buckets) ----------------------------------

#: Object names: 1 to 1,024 bytes of UTF-8.
MAX_OBJECT_NAME_BYTES = 1024
#: Bucket names: up to 222 characters (63 without dots).
MAX_BUCKET_NAME_BYTES = 222
#: Custom metadata: 8 KiB in total, keys and values together.
MAX_OBJECT_METADATA_BYTES = 8 * 1024

# JSON -------------------------------------------------------------------------------------------------

#: Nesting depth of any JSON we read. Real payloads nest fewer than 10 levels (a Build resource about 6);
#: 64 is generous and far from Python's recursion limit, so no later recursive step (canonical JSON,
#: templates, the Firestore client) can overflow the stack on what a parser accepted.
MAX_JSON_DEPTH = 64
