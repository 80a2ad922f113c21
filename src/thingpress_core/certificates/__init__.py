"""Device certificates: load, identify, name, verify and carry X.509 certificates.

```python
from pathlib import Path

from thingpress_core.certificates import load_certificates, thing_name_for

pem_bundle = Path("devices.pem").read_bytes()
for cert in load_certificates(pem_bundle, source="devices.pem"):
    print(cert.certificate_id, thing_name_for(cert))
```

Test certificates and CAs come from `thingpress_core.certificates.generate`.
"""

from __future__ import annotations

from thingpress_core._public import publish
from thingpress_core.certificates._loading import (
    DEFAULT_MAX_CERTIFICATE_BYTES,
    load_certificate,
    load_certificates,
)
from thingpress_core.certificates._model import DeviceCertificate
from thingpress_core.certificates._naming import (
    MAX_THING_NAME_LENGTH,
    THING_NAME_PATTERN,
    ThingNaming,
    ThingNamingChoice,
    is_valid_thing_name,
    thing_name_for,
)
from thingpress_core.certificates._transport import decode_transport, encode_for_transport
from thingpress_core.certificates._trust import TrustStore, VerifiedChain, check_validity, verify_certificate

__all__ = [
    "DEFAULT_MAX_CERTIFICATE_BYTES",
    "MAX_THING_NAME_LENGTH",
    "THING_NAME_PATTERN",
    "DeviceCertificate",
    "ThingNaming",
    "ThingNamingChoice",
    "TrustStore",
    "VerifiedChain",
    "check_validity",
    "decode_transport",
    "encode_for_transport",
    "is_valid_thing_name",
    "load_certificate",
    "load_certificates",
    "thing_name_for",
    "verify_certificate",
]

# Tracebacks, reprs and the API docs name this package, so the private modules can move.
publish(__name__, globals())
