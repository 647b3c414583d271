"""Hooks for the fuzzer (tests/fuzz/run.sh loads them through SCHEMATHESIS_HOOKS).

Generated `Idempotency-Key` values are short and repeat ("0", "A"), and Till rightly answers
a key reused with another request 422 `idempotency_key_reused`: almost every POST would end
there and the fuzzer would never reach a payment. So a valid generated key gets a suffix
derived from the request it is sent with: the same request with the same key stays the same
(and is replayed), another request gets another key. Invalid keys are sent as generated.
"""

import hashlib
import json

import schemathesis

KEY_LEN_MAX = 255
SUFFIX_LEN = 13  # "." and 12 hex digits


def valid_key(key):
    return isinstance(key, str) and 1 <= len(key) <= KEY_LEN_MAX and all(" " <= c <= "~" for c in key)


@schemathesis.hook
def before_call(context, case, kwargs):
    headers = case.headers or {}
    for name in list(headers):
        if name.lower() != "idempotency-key" or not valid_key(headers[name]):
            continue
        request = json.dumps([case.method, case.formatted_path, case.body], sort_keys=True, default=str)
        digest = hashlib.sha256(request.encode()).hexdigest()[:12]
        headers[name] = f"{headers[name][: KEY_LEN_MAX - SUFFIX_LEN]}.{digest}"
