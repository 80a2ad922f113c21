"""`QuotaReader`: the account's AWS IoT Core quotas, read from the Service Quotas API.

Fleet operators raise their IoT quotas before a large import (RegisterCertificateWithoutCA
from 10 to 100 TPS, say). The rate limiter's defaults are AWS's published defaults, so without
being told it would hold the import at a tenth of what the account may do. `QuotaReader.read`
asks the Service Quotas API (service code ``iotcore``) for the quotas of the operations the
import and its verify/rollback use, and returns `AccountQuotas`: per operation the quota found
and the rate limits to configure.

How a quota is found, per operation:

1. ``ListServiceQuotas`` (every page): the values applied to this account, raised or not.
   AWS leaves out a quota whose applied value it does not know, so then
2. ``ListAWSDefaultServiceQuotas`` (every page, only when something is still missing): AWS's
   default for the region.
3. Neither: the built-in default (`DEFAULT_RATE_LIMITS`), marked ``builtin``.

A quota is matched by its quota code where the code is known (`QUOTA_CODES`), else by its
name, ``"<Operation> API TPS"`` (case and spacing ignored). The codes come from a public
snapshot of the Service Quotas API's ``iotcore`` listing (November 2025); the thing-registry
ones agree with an older dump used for `DEFAULT_RATE_LIMITS`. A renumbered quota is still
found by name.

Reading the quotas must never stop an import: without permission
(``servicequotas:ListServiceQuotas``, ``servicequotas:ListAWSDefaultServiceQuotas``) or on any
other error the result holds the built-in defaults, says it fell back and why, and one WARNING
is logged. Every call takes the one call path (``service-quotas.ListServiceQuotas``, ...;
unlimited by default, each with its own breaker). boto3 is imported on first use.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from thingpress_core.errors import AwsServiceError, ConfigurationError, InvalidRequestError
from thingpress_core.services._call import ServiceFacade

if TYPE_CHECKING:
    from thingpress_core.clients import ClientFactory
    from thingpress_core.resilience import CircuitBreakerRegistry, RateLimiter, ResilienceSettings
    from thingpress_core.resilience._concurrency import ConcurrencyPlan
    from thingpress_core.settings import ThingpressSettings

__all__ = ["QUOTA_CODES", "SERVICE_CODE", "AccountQuotas", "OperationQuota", "QuotaReader", "QuotaSource"]

SERVICE_CODE = "iotcore"
"""The Service Quotas service code of AWS IoT Core's control-plane API quotas."""

#: Quota codes of the ``iotcore`` API TPS quotas, by ``service.Operation``.
QUOTA_CODES: Mapping[str, str] = {
    # certificates and policies
    "iot.RegisterCertificateWithoutCA": "L-4671C7C8",
    "iot.RegisterCertificate": "L-8C0011A3",
    "iot.DescribeCACertificate": "L-E72BB356",
    "iot.DescribeCertificate": "L-FC864907",
    "iot.UpdateCertificate": "L-77B523DC",
    "iot.DeleteCertificate": "L-EEB8F0B1",
    "iot.AttachPolicy": "L-CA7D4E3E",
    "iot.DetachPolicy": "L-EC88D510",
    "iot.ListAttachedPolicies": "L-B2DA2A45",
    "iot.GetPolicy": "L-5CE9072D",
    # things, thing groups and thing types
    "iot.CreateThing": "L-64CBACAC",
    "iot.UpdateThing": "L-211F680E",
    "iot.DescribeThing": "L-0EF0F5EE",
    "iot.DeleteThing": "L-889800F7",
    "iot.AttachThingPrincipal": "L-F64D1AA6",
    "iot.DetachThingPrincipal": "L-B5EE4A16",
    "iot.ListThingPrincipals": "L-FC3EF4D9",
    "iot.ListPrincipalThings": "L-C481616A",
    "iot.AddThingToThingGroup": "L-2904683A",
    "iot.RemoveThingFromThingGroup": "L-2A81A394",
    "iot.ListThingGroupsForThing": "L-75F129AD",
    "iot.DescribeThingGroup": "L-52E1E197",
    "iot.DescribeThingType": "L-DDCF8E97",
    "iot.DescribeBillingGroup": "L-23DF46E7",
    "iot.AddThingToBillingGroup": "L-1F4BE39E",
}

QuotaSource = Literal["applied", "default", "builtin"]
"""Where a rate came from: the account's applied quota, AWS's default quota, or the built-in
default (the quota was not found, or the reading fell back)."""

_PAGE_SIZE = 100  # the most ListServiceQuotas returns per page
_MAX_PAGES = 50  # iotcore has about 220 quotas: 3 pages; a token that never ends is a fault
_SECONDS = {
    "MICROSECOND": 1e-6,
    "MILLISECOND": 1e-3,
    "SECOND": 1.0,
    "MINUTE": 60.0,
    "HOUR": 3600.0,
    "DAY": 86400.0,
    "WEEK": 604800.0,
}
_SPACES = re.compile(r"\s+")


class OperationQuota(BaseModel):
    """The quota of one operation, as found.

    Attributes:
        operation: the ``service.Operation`` key (``iot.AttachPolicy``).
        rate: requests per second for the whole account (the quota's value over its period,
            or the built-in default), or None when neither exists (the operation is unlimited).
        source: ``applied``, ``default`` or ``builtin`` (see `QuotaSource`).
        quota_code: the quota's code as AWS gave it, or None when not found.
        quota_name: the quota's name as AWS gave it, or None when not found.
        value: the quota's value as AWS gave it (per ``period_seconds``), or None.
        period_seconds: the period ``value`` counts over (1 for TPS).
        matched_by: ``code`` or ``name``; None when not found.
    """

    model_config: ClassVar[ConfigDict] = ConfigDict(frozen=True, extra="forbid")

    operation: str
    rate: float | None = Field(default=None, gt=0)
    source: QuotaSource
    quota_code: str | None = None
    quota_name: str | None = None
    value: float | None = None
    period_seconds: float = Field(default=1.0, gt=0)
    matched_by: Literal["code", "name"] | None = None

    def line(self) -> str:
        """One English line for a person, e.g. ``iot.AttachPolicy 15/s (applied, L-CA7D4E3E)``."""
        rate = "unlimited" if self.rate is None else f"{self.rate:g}/s"
        if self.source == "builtin":
            return f"{self.operation} {rate} (built-in default)"
        return f"{self.operation} {rate} ({self.source}, {self.quota_code}, matched by {self.matched_by})"


class AccountQuotas(BaseModel):
    """The quotas `QuotaReader.read` found, and the rate limits they give.

    Attributes:
        quotas: one `OperationQuota` per operation asked about, by ``service.Operation``.
        quota_share: the share of each quota this process may use (from the settings).
        fell_back: True when the quotas could not be read and the built-in defaults stand.
        reason: why it fell back (one line), else None.
    """

    model_config: ClassVar[ConfigDict] = ConfigDict(frozen=True, extra="forbid")

    quotas: dict[str, OperationQuota]
    quota_share: float = Field(gt=0, le=1)
    fell_back: bool = False
    reason: str | None = None

    @property
    def account_rate_limits(self) -> dict[str, float]:
        """Requests per second for the whole account, per operation (unlimited ones left out):
        what ``ResilienceSettings.rate_limits`` holds, before ``quota_share``."""
        return {op: q.rate for op, q in sorted(self.quotas.items()) if q.rate is not None}

    @property
    def rate_limits(self) -> dict[str, float]:
        """Requests per second this process may send: each account rate x ``quota_share``
        (what the rate limiter enforces once `apply` configured it)."""
        return {op: rate * self.quota_share for op, rate in self.account_rate_limits.items()}

    def found(self) -> dict[str, OperationQuota]:
        """The quotas read from the account (applied or default), without built-in ones."""
        return {op: q for op, q in self.quotas.items() if q.source != "builtin"}

    def apply(self, resilience: ResilienceSettings) -> ResilienceSettings:
        """``resilience`` with the rates found in the account replacing its rate limits.

        Only operations found in the account change (an operation the account did not answer
        for keeps its configured rate); ``quota_share`` is left to the limiter, so do not
        multiply again. After a fallback nothing changes.
        """
        found = {op: q.rate for op, q in self.found().items() if q.rate is not None}
        if not found:
            return resilience
        return resilience.model_copy(update={"rate_limits": {**resilience.rate_limits, **found}})

    def plan(
        self, calls_per_certificate: Mapping[str, float], *, latency: float, cap: int | None = None
    ) -> ConcurrencyPlan:
        """The worker count for these rate limits (see `plan_concurrency`)."""
        from thingpress_core.resilience._concurrency import DEFAULT_CONCURRENCY_CAP, plan_concurrency

        return plan_concurrency(
            calls_per_certificate,
            self.rate_limits,
            latency=latency,
            cap=DEFAULT_CONCURRENCY_CAP if cap is None else cap,
        )

    def lines(self) -> list[str]:
        """What was found, for a person: a header, then one line per operation."""
        if self.fell_back:
            head = f"IoT quotas: using the built-in defaults ({self.reason})"
        else:
            found = len(self.found())
            head = f"IoT quotas read from the account: {found} of {len(self.quotas)} operations found"
        if self.quota_share != 1.0:
            head += f"; this process uses {self.quota_share:g} of each"
        missing = "" if self.fell_back else ": not found in the account"
        ordered = sorted(self.quotas.items())
        body = [f"  {q.line()}{missing if q.source == 'builtin' else ''}" for _, q in ordered]
        return [head, *body]


class QuotaReader(ServiceFacade):
    """Reads the account's IoT Core quotas through the one call path.

    Args:
        factory: the `ClientFactory` (share it with `IoTService`).
        settings: the settings; the factory's when omitted.
        registry: the circuit breakers (share them with `IoTService`).
        limiter: the rate limiter (share it with `IoTService`).
        client: a ready-made ``service-quotas`` boto3 client (tests, custom auth). When omitted
            the factory's (``factory.client("service-quotas")``: its session, botocore config,
            region and endpoint).

    Examples:
        ```python
        from thingpress_core import ClientFactory, ThingpressSettings
        from thingpress_core.services import QuotaReader

        settings = ThingpressSettings()
        quotas = QuotaReader(ClientFactory(settings)).read()
        resilience = quotas.apply(settings.resilience)
        settings = settings.model_copy(update={"resilience": resilience})
        ```
    """

    _service = "service-quotas"
    _logger_name = "thingpress_core.services.quotas"

    def __init__(
        self,
        factory: ClientFactory | None = None,
        *,
        settings: ThingpressSettings | None = None,
        registry: CircuitBreakerRegistry | None = None,
        limiter: RateLimiter | None = None,
        client: Any = None,
    ) -> None:
        super().__init__(factory, settings=settings, registry=registry, limiter=limiter)
        self._client = client

    def read(self, operations: Iterable[str] | None = None) -> AccountQuotas:
        """The quotas of ``operations`` (default: every ``iot.*`` operation the settings limit,
        and those of `QUOTA_CODES`). Never raises for an AWS or setup failure: falls back."""
        from thingpress_core.resilience import DEFAULT_RATE_LIMITS

        resilience = self.settings.resilience
        configured = {**DEFAULT_RATE_LIMITS, **resilience.rate_limits}
        wanted = _operations(operations, configured)
        try:
            found = self._lookup(wanted)
        except Exception as exc:  # any failure: a quota reading must never stop an import
            reason = _one_line(exc)
            self._log.warning(
                "could not read the account's IoT quotas, using the built-in defaults: %s",
                reason,
                extra={"operation": f"{self._service}.ListServiceQuotas"},
            )
            return _builtin(wanted, configured, resilience.quota_share, reason)
        quotas = {op: found.get(op) or _builtin_quota(op, configured) for op in wanted}
        return AccountQuotas(quotas=quotas, quota_share=resilience.quota_share)

    # -- the two listings ------------------------------------------------------------------

    def _lookup(self, wanted: list[str]) -> dict[str, OperationQuota]:
        client = self._quotas_client()
        found: dict[str, OperationQuota] = {}
        listings: tuple[tuple[str, QuotaSource, Any], ...] = (
            ("ListServiceQuotas", "applied", client.list_service_quotas),
            ("ListAWSDefaultServiceQuotas", "default", client.list_aws_default_service_quotas),
        )
        for operation, source, method in listings:
            missing = [op for op in wanted if op not in found]
            if not missing:
                break
            found.update(_match(missing, self._listing(operation, method), source))
        self._log.debug("found %d of %d IoT quotas in the account", len(found), len(wanted))
        return found

    def _listing(self, operation: str, method: Any) -> list[Mapping[str, Any]]:
        """Every quota of one listing, page by page, each page one call on the call path.

        Errors are declared expected so the call path logs them at DEBUG: `read` logs the
        one WARNING of a fallback. The breaker still hears of a throttle or a 5xx.
        """
        entries: list[Mapping[str, Any]] = []
        params: dict[str, Any] = {"ServiceCode": SERVICE_CODE, "MaxResults": _PAGE_SIZE}
        for _ in range(_MAX_PAGES):
            page = self._call_path().call(operation, method, params, expected=(AwsServiceError,))
            entries.extend(page.get("Quotas") or ())
            token = page.get("NextToken")
            if not token:
                return entries
            params["NextToken"] = token
        raise InvalidRequestError(
            f"{operation} returned more than {_MAX_PAGES} pages of {SERVICE_CODE} quotas",
            service=self._service,
            operation=operation,
        )

    def _quotas_client(self) -> Any:
        """The Service Quotas client: as given, else the factory's (cached, built once)."""
        if self._client is None:
            client = _build_client(self.factory)
            with self._lock:
                if self._client is None:
                    self._client = client
        return self._client


def _build_client(factory: ClientFactory) -> Any:
    """The factory's ``service-quotas`` client; a botocore setup error becomes
    `ConfigurationError` (the factory's own setup errors already are)."""
    from botocore.exceptions import BotoCoreError

    try:
        return factory.client("service-quotas")
    except BotoCoreError as exc:
        raise ConfigurationError(
            f"cannot build a Service Quotas client: {exc}", variable="region", value=factory.region
        ) from exc


# -- matching -----------------------------------------------------------------------------


def _operations(operations: Iterable[str] | None, configured: Mapping[str, float]) -> list[str]:
    if operations is None:
        names = {op for op in configured if op.startswith("iot.")} | set(QUOTA_CODES)
    else:
        names = set()
        for op in operations:
            if not op.startswith("iot.") or "." in op[4:] or len(op) == 4:
                raise ConfigurationError(
                    "operations must be IoT 'service.Operation' names such as 'iot.CreateThing'",
                    variable="operations",
                    value=op,
                )
            names.add(op)
    return sorted(names)


def _normal(name: str) -> str:
    return _SPACES.sub(" ", name.strip()).lower()


def _match(
    wanted: list[str], entries: list[Mapping[str, Any]], source: QuotaSource
) -> dict[str, OperationQuota]:
    """The quotas of ``wanted`` among ``entries``: by code first, by name for the rest."""
    by_code: dict[str, Mapping[str, Any]] = {}
    by_name: dict[str, Mapping[str, Any]] = {}
    for listed in entries:
        if _rate_of(listed) is None:  # no value (an ErrorReason instead): as if not listed
            continue
        code, name = listed.get("QuotaCode"), listed.get("QuotaName")
        if isinstance(code, str):
            by_code.setdefault(code, listed)
        if isinstance(name, str):
            by_name.setdefault(_normal(name), listed)
    found: dict[str, OperationQuota] = {}
    for op in wanted:
        code = QUOTA_CODES.get(op)
        entry: Mapping[str, Any] | None = by_code.get(code) if code is not None else None
        matched_by: Literal["code", "name"] = "code"
        if entry is None:
            entry = by_name.get(_normal(f"{op.split('.', 1)[1]} API TPS"))
            matched_by = "name"
        usable = _rate_of(entry) if entry is not None else None
        if entry is None or usable is None:
            continue
        rate, period = usable
        found[op] = OperationQuota(
            operation=op,
            rate=rate,
            source=source,
            quota_code=str(entry.get("QuotaCode")) if entry.get("QuotaCode") else None,
            quota_name=str(entry.get("QuotaName")) if entry.get("QuotaName") else None,
            value=float(entry["Value"]),
            period_seconds=period,
            matched_by=matched_by,
        )
    return found


def _rate_of(entry: Mapping[str, Any]) -> tuple[float, float] | None:
    """(requests per second, period in seconds) of one quota, or None when it has no usable value."""
    value = entry.get("Value")
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        return None
    period = 1.0
    stated = entry.get("Period")
    if isinstance(stated, Mapping):
        unit = _SECONDS.get(str(stated.get("PeriodUnit", "SECOND")).upper())
        count = stated.get("PeriodValue", 1)
        if unit is None or not isinstance(count, int) or count <= 0:
            return None
        period = unit * count
    return float(value) / period, period


# -- the built-in defaults ------------------------------------------------------------------


def _builtin_quota(op: str, configured: Mapping[str, float]) -> OperationQuota:
    rate = configured.get(op)
    usable = rate is not None and math.isfinite(rate) and rate > 0
    return OperationQuota(operation=op, rate=rate if usable else None, source="builtin")


def _builtin(wanted: list[str], configured: Mapping[str, float], share: float, reason: str) -> AccountQuotas:
    quotas = {op: _builtin_quota(op, configured) for op in wanted}
    return AccountQuotas(quotas=quotas, quota_share=share, fell_back=True, reason=reason)


def _one_line(exc: BaseException) -> str:
    text = _SPACES.sub(" ", str(exc)).strip() or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."
